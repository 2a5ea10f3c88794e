// Contract of the softmax family: row-wise log-softmax of a contiguous [rows, cols] matrix (softmax over
// dim 1), forward and backward. Numerically stable: each row is shifted by its maximum before exp, so
// logits of ±1000 give finite results. NaN or +inf in a row make that row's outputs NaN (no error).
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

struct SoftmaxParams {
  int64_t rows = 0;  // N
  int64_t cols = 0;  // C, the dimension the softmax runs over
};

// y[r, c] = x[r, c] − m_r − log Σ_j exp(x[r, j] − m_r),  m_r = max_j x[r, j].  Overwrites y.
using LogSoftmaxForwardFn = void(const ExecContext&, DType, const SoftmaxParams&, const void* x, void* y);

// gx[r, c] = gy[r, c] − exp(y[r, c]) · Σ_j gy[r, j]   (y = the forward's output).  Overwrites gx.
using LogSoftmaxBackwardFn = void(const ExecContext&, DType, const SoftmaxParams&, const void* y,
                                  const void* gy, void* gx);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/softmax.cpp
LogSoftmaxForwardFn log_softmax_forward;
LogSoftmaxBackwardFn log_softmax_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/softmax.cu
LogSoftmaxForwardFn log_softmax_forward;
LogSoftmaxBackwardFn log_softmax_backward;
}  // namespace cuda

}  // namespace scpn
