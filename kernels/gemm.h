// Contract of the GEMM family: C = alpha · op(A) · op(B) + beta · C, row-major, with leading dimensions
// (elements between consecutive rows). op(X) is X or Xᵀ. op(A) is m×k, op(B) is k×n, C is m×n.
// beta = 0 overwrites C (whatever it held, NaN included); beta = 1 accumulates.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

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

using GemmFn = void (*)(const ExecContext&, DType, const GemmArgs&);

}  // namespace scpn
