// Compact copies of the channels a channel-pruned subnetwork keeps, and the way their gradients return to
// the dense tensors (kernels: kernels/sparse_channel.h; why the gradients equal the masked path's:
// docs/sparse_channel.md). A kept-channel index is an i32 tensor [kept], ascending, on the data's device.
#pragma once
#include "engine/tensor.h"

namespace scpn {

// The positions of a 0/1 mask [K] that are set, as a kept-channel index on the mask's device (the mask is
// read on the host: K is a layer's filter count).
Tensor kept_index_from_mask(const Tensor& mask);

// The channels of `t` along `dim` that `kept_index` lists, in its order: shape[dim] becomes kept.
// Backward: the gradient goes to the kept channels, zeros to the others.
Tensor gather_channels(const Tensor& t, int64_t dim, const Tensor& kept_index);

// The kept filters (dim 0) of a channel-scored weight [K, ...] with the straight-through estimator to its
// score [K]: equals gather_channels(masked_weight(W, S, M), 0, kept) for the mask M that `kept_index`
// lists, gradients included (∂L/∂W and ∂L/∂S zero on pruned filters; ∂L/∂S_k = sign(S_k)·Σ W ⊙ ∂L/∂W_k).
Tensor gather_filters(const Tensor& weight, const Tensor& score, const Tensor& kept_index);

// In place, outside autograd: dense's kept channels along `dim` take compact's values; its other channels
// are multiplied by others_scale. Compact BatchNorm returns its running statistics this way.
void scatter_channels_(const Tensor& dense, int64_t dim, const Tensor& kept_index, const Tensor& compact,
                       double others_scale);

}  // namespace scpn
