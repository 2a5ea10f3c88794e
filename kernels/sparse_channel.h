// Contract of the sparse-channel family: the compact copies a channel-pruned subnetwork computes with
// (kept channels of a weight, a BatchNorm vector, running statistics) and the scatter of their gradients
// back into dense slots (docs/sparse_channel.md). Indices are int32, ascending, in [0, channels).
#pragma once
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/context.h"

namespace scpn {

// A tensor viewed as [outer, channels, inner] whose middle axis is selected: a conv weight's filters are
// outer = 1, channels = K, inner = C·R·S; its input channels outer = K, channels = C, inner = R·S; a
// per-channel vector outer = 1, inner = 1. `kept` of the `channels` survive.
struct ChannelSelection {
  int64_t outer = 1, channels = 0, inner = 1, kept = 0;
  SCPN_HD int64_t dense_numel() const { return outer * channels * inner; }
  SCPN_HD int64_t compact_numel() const { return outer * kept * inner; }
};

// compact[o, j, i] = dense[o, kept_index[j], i]. Overwrites compact.
using GatherChannelsFn = void(const ExecContext&, DType, const ChannelSelection&, const int32_t* kept_index,
                              const void* dense, void* compact);

// dense[o, kept_index[j], i] = compact[o, j, i]; every other channel is multiplied by others_scale
// (0: a gradient, whose pruned channels get nothing; 1 − momentum: running statistics, which decay
// towards the zero a pruned channel's batch statistics would be).
using ScatterChannelsFn = void(const ExecContext&, DType, const ChannelSelection&, const int32_t* kept_index,
                               const void* compact, double others_scale, void* dense);

// The straight-through backward of a gather of kept filters (channel granularity, SCPN_METHOD.md §3), from
// g = ∂L/∂W_compact [kept, filter_size] and the dense weight [filters, filter_size] and score [filters]:
//   grad_weight[f, :] = g[j, :]                                    for f = kept_index[j], else 0
//   grad_score[f]     = sign(S[f]) · Σ_i W[f, i] · g[j, i]         for f = kept_index[j], else 0
// which is the masked path's gradient (M ⊙ ∂L/∂W_eff) with its zero rows. The sum is in double. Either
// output may be null; both are overwritten in full.
struct KeptFilterShape {
  int64_t filters = 0, filter_size = 0, kept = 0;
};
using KeptFiltersBackwardFn = void(const ExecContext&, DType, const KeptFilterShape&, const int32_t* kept_index,
                                   const void* grad_compact, const void* weight, const void* score,
                                   void* grad_weight, void* grad_score);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/sparse_channel.cpp
GatherChannelsFn gather_channels;
ScatterChannelsFn scatter_channels;
KeptFiltersBackwardFn kept_filters_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/sparse_channel.cu
GatherChannelsFn gather_channels;
ScatterChannelsFn scatter_channels;
KeptFiltersBackwardFn kept_filters_backward;
}  // namespace cuda

}  // namespace scpn
