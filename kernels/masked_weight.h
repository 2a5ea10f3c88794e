// Contract of the masked-weight family: the effective weight of a prunable layer, W_eff = M ⊙ W, and its
// straight-through gradients (SCPN_METHOD.md §3). The mask M and score S have either the weight's shape
// (weight granularity) or one entry per output filter (channel granularity: filters × filter_size = numel(W)).
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

struct MaskedWeightParams {
  int64_t filters = 0;      // output filters (W's first dimension)
  int64_t filter_size = 0;  // elements per filter
  bool per_filter = false;  // channel granularity: M and S have `filters` entries
};

// w_eff[f, j] = mask[f or (f, j)] · w[f, j]. Overwrites w_eff.
using MaskedWeightForwardFn = void(const ExecContext&, DType, const MaskedWeightParams&, const void* w,
                                   const void* mask, void* w_eff);

// Given g = ∂L/∂W_eff:
//   grad_w[f, j] = mask · g[f, j]                                  (pruned weights get no gradient)
//   weight granularity:  grad_score[i] = sign(S[i]) · w[i] · g[i]  (pruned positions included)
//   channel granularity: grad_score[f] = sign(S[f]) · Σ_j w[f, j] · g[f, j]
// Either output may be null (not needed). Both are overwritten.
using MaskedWeightBackwardFn = void(const ExecContext&, DType, const MaskedWeightParams&, const void* grad_eff,
                                    const void* w, const void* score, const void* mask, void* grad_w,
                                    void* grad_score);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/masked_weight.cpp
MaskedWeightForwardFn masked_weight_forward;
MaskedWeightBackwardFn masked_weight_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/masked_weight.cu
MaskedWeightForwardFn masked_weight_forward;
MaskedWeightBackwardFn masked_weight_backward;
}  // namespace cuda

}  // namespace scpn
