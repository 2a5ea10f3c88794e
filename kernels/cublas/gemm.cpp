// GEMM on cuBLAS (contract: kernels/gemm.h): row-major C = alpha·op(A)·op(B) + beta·C, f32 (TF32 tensor
// cores when the context allows them) and f64.
#include "kernels/gemm.h"

#include <cublas_v2.h>

#include "kernels/cuda/check.h"

namespace scpn::cublas {

namespace {

// C = beta·C over the m×n block (rows ldc apart) without reading A or B: the whole GEMM when k = 0 or
// alpha = 0. beta = 0 writes zeros over anything C held, NaN included; the scaling is T(beta)·c, as on the CPU.
template <class T>
void scale_c(const ExecContext& ctx, const GemmArgs& g) {
  const auto handle = static_cast<cublasHandle_t>(ctx.blas);
  const auto stream = static_cast<cudaStream_t>(ctx.stream);
  T* c = static_cast<T*>(g.c);
  if (g.beta == 1.0) return;
  if (g.beta == 0.0) {
    SCPN_CUDA_CHECK(cudaMemset2DAsync(c, size_t(g.ldc) * sizeof(T), 0, size_t(g.n) * sizeof(T), size_t(g.m), stream));
    return;
  }
  const T beta = T(g.beta);
  auto scal = [&](int64_t count, T* x) {
    if constexpr (sizeof(T) == sizeof(float))
      SCPN_CUBLAS_CHECK(cublasSscal_64(handle, count, &beta, x, 1));
    else
      SCPN_CUBLAS_CHECK(cublasDscal_64(handle, count, &beta, x, 1));
  };
  // Rows padded beyond n must keep their padding: one call per row then (a rare path: k = 0 or alpha = 0).
  if (g.ldc == g.n) {
    scal(g.m * g.n, c);
  } else {
    for (int64_t i = 0; i < g.m; ++i) scal(g.n, c + i * g.ldc);
  }
}

}  // namespace

void gemm(const ExecContext& ctx, DType t, const GemmArgs& g) {
  if (t != DType::f32 && t != DType::f64)
    throw Error(cat("gemm: dtype ", dtype_name(t), " is not supported on CUDA (f32 or f64)"));
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0 || g.alpha == 0.0) {
    if (t == DType::f32)
      scale_c<float>(ctx, g);
    else
      scale_c<double>(ctx, g);
    return;
  }
  const auto handle = static_cast<cublasHandle_t>(ctx.blas);
  // cuBLAS is column-major. A row-major matrix with leading dimension ld is, read column-major, its
  // transpose with the same ld, so the row-major C = op(A)·op(B) is the column-major
  // Cᵀ (n×m) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m): B first, then A, m and n swapped, each transpose flag kept.
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (t == DType::f32) {
    const float alpha = float(g.alpha), beta = float(g.beta);
    // FAST_TF32 rounds the inputs to TF32 on the tensor cores; plain 32F keeps full f32 products (the
    // handle's default math mode never enables TF32 by itself).
    const cublasComputeType_t compute = ctx.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    SCPN_CUBLAS_CHECK(cublasGemmEx_64(handle, op_b, op_a, g.n, g.m, g.k, &alpha, g.b, CUDA_R_32F, g.ldb, g.a,
                                      CUDA_R_32F, g.lda, &beta, g.c, CUDA_R_32F, g.ldc, compute, CUBLAS_GEMM_DEFAULT));
  } else {
    const double alpha = g.alpha, beta = g.beta;
    SCPN_CUBLAS_CHECK(cublasDgemm_64(handle, op_b, op_a, g.n, g.m, g.k, &alpha, static_cast<const double*>(g.b),
                                     g.ldb, static_cast<const double*>(g.a), g.lda, &beta, static_cast<double*>(g.c),
                                     g.ldc));
  }
}

}  // namespace scpn::cublas
