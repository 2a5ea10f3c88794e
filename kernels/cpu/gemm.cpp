// CPU GEMM. Placeholder-free simple version: i-k-j loops parallelised over rows of C; the optimized
// cache-blocked kernel replaces the body of gemm_ours.
#include "kernels/gemm.h"

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void gemm_ours(const ExecContext&, DType t, const GemmArgs& g) {
  with_float_type(t, "gemm", [&](auto zero) {
    using T = decltype(zero);
    const T* A = static_cast<const T*>(g.a);
    const T* B = static_cast<const T*>(g.b);
    T* C = static_cast<T*>(g.c);
    T alpha = T(g.alpha), beta = T(g.beta);
#pragma omp parallel for if (g.m * g.n * g.k > kParallelGrain)
    for (int64_t i = 0; i < g.m; ++i) {
      T* c = C + i * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
      for (int64_t p = 0; p < g.k; ++p) {
        T a = alpha * (g.trans_a ? A[p * g.lda + i] : A[i * g.lda + p]);
        if (g.trans_b) {
          for (int64_t j = 0; j < g.n; ++j) c[j] += a * B[j * g.ldb + p];
        } else {
          const T* b = B + p * g.ldb;
          for (int64_t j = 0; j < g.n; ++j) c[j] += a * b[j];
        }
      }
    }
  });
}

}  // namespace scpn::cpu
