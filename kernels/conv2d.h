// Contract of the conv2d family: 2-D convolution (cross-correlation, as every DL framework computes it)
// over NCHW tensors with grouped weights [K, C/groups, R, S], and its three backward kernels.
// All operands are contiguous buffers of one dtype (f32 or f64 on the CPU).
#pragma once
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/context.h"

namespace scpn {

// Geometry of one convolution. Input x [N, C, H, W], weight [K, C/groups, R, S], output y [N, K, P, Q]
// with P = (H + 2·pad_h − R) / stride_h + 1 and Q likewise (floor division). Channel c of x belongs to
// group c / (C/groups), output channel k to group k / (K/groups); a group only sees its own channels.
// The front-end guarantees: N >= 0, every other size >= 1, strides >= 1, pads >= 0, groups divides C
// and K, and P, Q >= 1.
struct Conv2dParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // output channels, kernel height and width
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t groups = 1;
  // The most scratch memory (bytes) a kernel may allocate for one call (im2col columns on the CPU,
  // algorithm workspace for cuDNN); 0 lets the backend choose. A backend needing one image's worth more
  // than this still processes one image at a time, so the limit shapes speed, never correctness.
  int64_t workspace_limit_bytes = 0;

  SCPN_HD int64_t P() const { return (H + 2 * pad_h - R) / stride_h + 1; }
  SCPN_HD int64_t Q() const { return (W + 2 * pad_w - S) / stride_w + 1; }
  SCPN_HD int64_t channels_per_group() const { return C / groups; }
  SCPN_HD int64_t filters_per_group() const { return K / groups; }
};

// y[n,k,p,q] = bias[k] + Σ_{c in group(k), r, s} x[n, c, p·stride_h − pad_h + r, q·stride_w − pad_w + s]
//              · w[k, c − first channel of the group, r, s]   (x outside the image reads as 0).
// bias may be null (no bias). Overwrites y [N, K, P, Q].
using Conv2dForwardFn = void(const ExecContext&, DType, const Conv2dParams&, const void* x,
                             const void* w, const void* bias, void* y);

// dx = ∂L/∂x given dy = ∂L/∂y: dx[n,c,h,w] = Σ over (k, r, s) whose window covers (h, w) of
// dy[n,k,p,q] · w[k,c',r,s]. Overwrites dx [N, C, H, W] (pixels no window covers get 0).
using Conv2dBackwardDataFn = void(const ExecContext&, DType, const Conv2dParams&, const void* dy,
                                  const void* w, void* dx);

// dw = ∂L/∂w: dw[k,c',r,s] = Σ_{n,p,q} dy[n,k,p,q] · x[n, c, p·stride_h − pad_h + r, q·stride_w − pad_w + s].
// Overwrites dw [K, C/groups, R, S] (N = 0 gives zeros).
using Conv2dBackwardFilterFn = void(const ExecContext&, DType, const Conv2dParams&, const void* dy,
                                    const void* x, void* dw);

// db = ∂L/∂bias: db[k] = Σ_{n,p,q} dy[n,k,p,q]. Overwrites db [K].
using Conv2dBackwardBiasFn = void(const ExecContext&, DType, const Conv2dParams&, const void* dy,
                                  void* db);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/conv2d.cpp
Conv2dForwardFn conv2d_forward;
Conv2dBackwardDataFn conv2d_backward_data;
Conv2dBackwardFilterFn conv2d_backward_filter;
Conv2dBackwardBiasFn conv2d_backward_bias;
}  // namespace cpu

namespace cudnn {  // kernels/cudnn/conv2d.cpp: algorithms found once per shape
Conv2dForwardFn conv2d_forward;
Conv2dBackwardDataFn conv2d_backward_data;
Conv2dBackwardFilterFn conv2d_backward_filter;
}  // namespace cudnn

namespace cuda {  // kernels/cuda/conv2d.cu
Conv2dBackwardBiasFn conv2d_backward_bias;
}  // namespace cuda

}  // namespace scpn
