// Differentiable pooling over NCHW tensors: max pooling (the ResNet stem: kernel 3, stride 2, padding 1)
// and global average pooling (the ResNet head).
#pragma once
#include "engine/tensor.h"

namespace scpn {

// x: f32/f64 [N, C, H, W] -> [N, C, (H + 2·padding - kernel) / stride + 1, same for W] (floor), square
// windows. Padding counts as -inf (never the maximum); padding <= kernel / 2, as in PyTorch.
// A NaN in a window is its maximum (NaN propagates).
// Gradient: each output's gradient goes to the input that was its maximum (the first one on ties);
// an input that is the maximum of several overlapping windows receives the sum of their gradients.
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);

// x: f32/f64 [N, C, H, W] -> [N, C, 1, 1], the mean of each H×W plane.
// Gradient: dx[n, c, h, w] = g[n, c] / (H·W).
Tensor adaptive_avg_pool2d_1x1(const Tensor& x);

// adaptive_avg_pool2d_1x1 flattened to [N, C]: the features the classifier head reads.
Tensor global_avg_pool(const Tensor& x);

}  // namespace scpn
