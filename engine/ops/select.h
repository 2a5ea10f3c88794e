// Pruning masks from importance scores (SCPN_METHOD.md §3; kernels: kernels/select.h), per layer, by the
// rank rule below. None of these functions has a gradient; the straight-through estimator belongs to the
// prunable layers.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace scpn {

// The rank rule, per layer, for sparsity s = 1 − c:
//   n = numel(S);  k = 1 + round_half_even(s·(n − 1));  τ = k-th smallest |S|;  M = (|S| >= τ).
// Ties at τ are kept, so M can keep more than n − k + 1 entries. Rounding is half to even (Python's
// round(), as the reference code does): s·(n − 1) = 0.5 → 0, 1.5 → 2, 2.5 → 2.

// 1 + round_half_even(sparsity·(n − 1)), the 1-based rank of the threshold. n >= 1, sparsity in [0, 1);
// sparsity·(n − 1) is evaluated in double (s = 1 − c is computed by the caller in double, like the
// reference), so 1 − 0.8 = 0.19999999999999996 rounds as that value does.
int64_t mask_rank(int64_t n, double sparsity);

// The ks[j]-th smallest of |scores| for every j (1-based ranks in [1, n], n = numel(scores) >= 1, any
// order, repeats allowed), from one ranking of |scores|. scores: any shape, f32/f64. NaN ranks above
// every number. Values are exact elements of |scores|.
std::vector<double> abs_kth_values(const Tensor& scores, const std::vector<int64_t>& ks);

// M = (|scores| >= threshold) as 0/1 in the scores' dtype and shape. NaN scores give 0.
Tensor magnitude_mask(const Tensor& scores, double threshold);

// One mask per capacity c in (0, 1] (fraction of weights kept), all from one ranking of |scores|:
// c = 1 gives all ones; otherwise magnitude_mask(scores, τ(k)) with k = mask_rank(n, 1 − c). One ranking
// serves every capacity of a step, so masks are nested: a smaller capacity keeps a subset of a larger one's.
std::vector<Tensor> capacity_masks(const Tensor& scores, const std::vector<double>& capacities);

}  // namespace scpn
