// The effective weight of a prunable layer, W_eff = M ⊙ W, with the straight-through estimator
// (SCPN_METHOD.md §3).
#pragma once
#include "engine/tensor.h"

namespace scpn {

// W_eff = M ⊙ W,   ∂L/∂W = M ⊙ ∂L/∂W_eff,   ∂L/∂S = sign(S) ⊙ W ⊙ ∂L/∂W_eff  (pruned positions included).
// Granularity follows the score's shape: the weight's shape (one score per weight) or [K] for a weight
// [K, ...] (one score per output filter; ∂L/∂S_k sums W ⊙ ∂L/∂W_eff over the filter). The mask is a
// constant 0/1 tensor of the score's shape, computed from |S| (engine/ops/select.h); it gets no gradient.
Tensor masked_weight(const Tensor& weight, const Tensor& score, const Tensor& mask);

}  // namespace scpn
