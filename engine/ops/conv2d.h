// Differentiable 2-D convolution over NCHW tensors (cross-correlation, as PyTorch's conv2d), with
// stride, zero padding and groups. The kernels behind it are the conv2d family (kernels/conv2d.h).
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace scpn {

struct Conv2dOptions {
  // A (height, width) pair; one integer means the same for both: {.stride = 2, .padding = {1, 0}}.
  struct HW {
    int64_t h = 0, w = 0;
    HW(int64_t both = 0) : h(both), w(both) {}  // NOLINT: implicit so `.stride = 2` reads naturally
    HW(int64_t height, int64_t width) : h(height), w(width) {}
  };
  HW stride = 1;    // >= 1
  HW padding = 0;   // >= 0, zeros on both sides
  int64_t groups = 1;  // divides C and K; groups == C == K is a depthwise convolution
};

// y = conv2d(x, weight) + bias.
//   x      [N, C, H, W]              (f32 or f64)
//   weight [K, C/groups, R, S]       same dtype and device as x
//   bias   [K] or an undefined Tensor (no bias)
//   y      [N, K, P, Q], P = (H + 2·padding.h − R) / stride.h + 1, Q likewise (floor division)
//   y[n,k,p,q] = bias[k] + Σ_{c in group(k), r, s} x[n, c, p·stride.h − padding.h + r, q·stride.w − padding.w + s]
//                · weight[k, c − first channel of the group, r, s]     (x outside the image is 0)
// Gradients, each computed only when that input requires grad (first order only: the backward runs
// raw kernels, so it records no graph of its own):
//   ∂L/∂x[n,c,h,w]  = Σ over (k, r, s, p, q) whose window reads (h, w) of ∂L/∂y[n,k,p,q] · weight[k,c',r,s]
//   ∂L/∂weight[k,c',r,s] = Σ_{n,p,q} ∂L/∂y[n,k,p,q] · x[n, c, p·stride.h − padding.h + r, q·stride.w − padding.w + s]
//   ∂L/∂bias[k]     = Σ_{n,p,q} ∂L/∂y[n,k,p,q]
// Errors name conv2d and the shapes: wrong ranks, channel counts that do not match the weight, groups
// not dividing C or K, stride < 1, padding < 0, an output smaller than 1x1, dtype or device mismatch.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});

}  // namespace scpn
