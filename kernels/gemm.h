// Contract of the GEMM family (C = alpha · op(A) · op(B) + beta · C on row-major operands) and the
// backends' implementations: ours and OpenBLAS on the CPU, cuBLAS on CUDA.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// C = alpha · op(A) · op(B) + beta · C, row-major, with leading dimensions lda, ldb, ldc (elements between
// consecutive rows). op(X) is X, or Xᵀ when trans_a / trans_b. op(A) is m×k, op(B) is k×n, C is m×n.
// beta = 0 overwrites C (whatever it held, NaN included); beta = 1 accumulates. k = 0 or alpha = 0 give
// C = beta·C without reading A or B. f32 and f64.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  double beta = 0.0;
  void* c = nullptr;
  int64_t ldc = 0;
};

// The arguments for densely stored row-major operands (each row right after the previous one): A is m×k
// (k×m when trans_a), B is k×n (n×k when trans_b), C is m×n; beta = 0 overwrites C.
inline GemmArgs dense_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                           void* c) {
  return GemmArgs{.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k, .alpha = 1.0,
                  .a = a, .lda = trans_a ? m : k, .b = b, .ldb = trans_b ? k : n, .beta = 0.0, .c = c, .ldc = n};
}

// GemmFn, the function type, is declared in kernels/context.h: the CPU context carries the GEMM that
// GEMM-based kernels (conv2d) call.

// The backends' implementations (registered in engine/register_cpu.cpp and engine/cuda/register.cpp).
namespace cpu {
GemmFn gemm_ours;      // kernels/cpu/gemm.cpp
GemmFn gemm_openblas;  // kernels/cpu/blas/gemm_openblas.cpp, defined only in builds with OpenBLAS
// The GEMM to register, as SCPN_CPU_GEMM (read once at start-up) asks: "openblas" is OpenBLAS (an error in
// a build without it), "ours" ours; `openblas` is nullptr in a build without it. The default is ours:
// inside the training step (many mid-sized GEMMs between OpenMP loops) it measured about 2x faster than
// OpenBLAS on the 2-core machines (docs/benchmarks.md).
GemmFn* select_gemm(GemmFn* ours, GemmFn* openblas);
}  // namespace cpu

namespace cublas {
GemmFn gemm;  // kernels/cublas/gemm.cpp: cublasGemmEx, TF32 tensor cores for f32 when the context allows
}  // namespace cublas

}  // namespace scpn
