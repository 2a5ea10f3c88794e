// Contract of the pooling family: 2-D max pooling with saved argmax indices, and adaptive average
// pooling to 1x1 (the mean over each [H, W] plane). Tensors are contiguous NCHW of one dtype (f32 or f64
// on the CPU); a "plane" is one (n, c) pair's H·W values.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// x [n, c, h, w] -> y [n, c, out_h, out_w] with out = (in + 2·pad - kernel) / stride + 1 (floor).
// Padding counts as -inf, so it is never the maximum; the front-end keeps pad <= kernel / 2 so every
// window holds at least one real value.
struct MaxPool2dParams {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
};

// Forward: y = max over each window; indices[n, c, oh, ow] = ih·w + iw of the maximum inside its plane
// (the first one in row-major window order on ties; a NaN wins, so NaN propagates). Overwrites y and
// indices (i32: an index inside one plane always fits).
using MaxPool2dForwardFn = void(const ExecContext&, DType, const MaxPool2dParams&, const void* x, void* y,
                                int32_t* indices);

// Backward: grad_x = 0, then grad_x[plane][indices[o]] += grad_y[o] for every output o — overlapping
// windows accumulate into a shared maximum. Overwrites grad_x.
using MaxPool2dBackwardFn = void(const ExecContext&, DType, const MaxPool2dParams&, const void* grad_y,
                                 const int32_t* indices, void* grad_x);

// Adaptive average pooling to 1x1 over `planes` planes of `hw` values each:
// forward y[p] = Σ x[p, i] / hw (accumulated in double); backward grad_x[p, i] = grad_y[p] / hw.
// Both overwrite their output.
using AvgPool1x1ForwardFn = void(const ExecContext&, DType, int64_t planes, int64_t hw, const void* x,
                                 void* y);
using AvgPool1x1BackwardFn = void(const ExecContext&, DType, int64_t planes, int64_t hw,
                                  const void* grad_y, void* grad_x);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/pool.cpp
MaxPool2dForwardFn max_pool2d_forward;
MaxPool2dBackwardFn max_pool2d_backward;
AvgPool1x1ForwardFn avg_pool_1x1_forward;
AvgPool1x1BackwardFn avg_pool_1x1_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/pool.cu
MaxPool2dForwardFn max_pool2d_forward;
MaxPool2dBackwardFn max_pool2d_backward;
AvgPool1x1ForwardFn avg_pool_1x1_forward;
AvgPool1x1BackwardFn avg_pool_1x1_backward;
}  // namespace cuda

}  // namespace scpn
