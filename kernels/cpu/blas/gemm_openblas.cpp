// CPU GEMM through OpenBLAS (contract: kernels/gemm.h): row-major cblas_sgemm / cblas_dgemm, compiled only
// when the build finds OpenBLAS.
#include <cblas.h>

#include "kernels/cpu/dtype_switch.h"
#include "kernels/gemm.h"

namespace scpn::cpu {

void gemm_openblas(const ExecContext&, DType t, const GemmArgs& g) {
  SCPN_CHECK(g.m >= 0 && g.n >= 0 && g.k >= 0, "gemm: negative size m=", g.m, " n=", g.n, " k=", g.k);
  if (g.m == 0 || g.n == 0) return;
  // BLAS wants leading dimensions >= 1 even for empty operands (k = 0).
  auto ld = [](int64_t v) { return blasint(v < 1 ? 1 : v); };
  const CBLAS_TRANSPOSE ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = g.trans_b ? CblasTrans : CblasNoTrans;
  with_float_type(t, "gemm", [&](auto zero) {
    using T = decltype(zero);
    // The contract says alpha = 0 or k = 0 must not read A or B (a NaN there stays out of C); OpenBLAS
    // reads them, so C = beta·C is done here (beta = 0 overwrites, NaN in C included).
    if (g.alpha == 0.0 || g.k == 0) {
      for (int64_t i = 0; i < g.m; ++i) {
        T* row = static_cast<T*>(g.c) + i * g.ldc;
        for (int64_t j = 0; j < g.n; ++j) row[j] = g.beta == 0.0 ? T(0) : T(g.beta) * row[j];
      }
      return;
    }
    if constexpr (sizeof(T) == sizeof(float)) {
      cblas_sgemm(CblasRowMajor, ta, tb, blasint(g.m), blasint(g.n), blasint(g.k), float(g.alpha),
                  static_cast<const float*>(g.a), ld(g.lda), static_cast<const float*>(g.b), ld(g.ldb),
                  float(g.beta), static_cast<float*>(g.c), ld(g.ldc));
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, blasint(g.m), blasint(g.n), blasint(g.k), g.alpha,
                  static_cast<const double*>(g.a), ld(g.lda), static_cast<const double*>(g.b), ld(g.ldb),
                  g.beta, static_cast<double*>(g.c), ld(g.ldc));
    }
  });
}

}  // namespace scpn::cpu
