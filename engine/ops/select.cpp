// Mask ranks, k-th magnitudes and capacity masks: argument checks and dispatch to the select kernels.
#include "engine/ops/select.h"

#include <cmath>

#include "engine/ops/checks.h"

namespace scpn {

namespace {

// Round half to even, written out so it does not depend on the floating-point rounding mode.
double round_half_even(double x) {
  double below = std::floor(x);
  double fraction = x - below;
  if (fraction > 0.5) return below + 1;
  if (fraction < 0.5) return below;
  return std::fmod(below, 2.0) == 0.0 ? below : below + 1;
}

}  // namespace

int64_t mask_rank(int64_t n, double sparsity) {
  SCPN_CHECK(n >= 1, "mask_rank: n must be >= 1, got ", n);
  SCPN_CHECK(sparsity >= 0.0 && sparsity < 1.0, "mask_rank: sparsity ", sparsity, " out of range [0, 1)");
  return 1 + int64_t(round_half_even(sparsity * double(n - 1)));
}

std::vector<double> abs_kth_values(const Tensor& scores, const std::vector<int64_t>& ks) {
  const char* op = "abs_kth_values";
  check_float(op, "scores", scores);
  const int64_t n = scores.numel();
  SCPN_CHECK(n >= 1, op, ": scores must not be empty, got ", describe(scores));
  for (int64_t k : ks)
    SCPN_CHECK(k >= 1 && k <= n, op, ": rank k = ", k, " out of range [1, n] for n = ", n, " scores");
  if (ks.empty()) return {};
  AbsKthParams params;
  params.n = n;
  params.count = int64_t(ks.size());
  Tensor workspace = Tensor::empty({n}, scores.dtype(), scores.device());
  Tensor out = Tensor::empty({params.count}, scores.dtype(), scores.device());
  kernels().abs_kth_values.on(scores.device())(exec_context(scores.device()), scores.dtype(), params,
                                               scores.raw_data(), ks.data(), workspace.raw_data(), out.raw_data());
  return out.to_vector();
}

Tensor magnitude_mask(const Tensor& scores, double threshold) {
  check_float("magnitude_mask", "scores", scores);
  Tensor mask = Tensor::empty(scores.shape(), scores.dtype(), scores.device());
  if (mask.numel() > 0)
    kernels().magnitude_mask.on(scores.device())(exec_context(scores.device()), scores.dtype(), scores.numel(),
                                                 scores.raw_data(), threshold, mask.raw_data());
  return mask;
}

std::vector<Tensor> capacity_masks(const Tensor& scores, const std::vector<double>& capacities) {
  const char* op = "capacity_masks";
  check_float(op, "scores", scores);
  SCPN_CHECK(scores.numel() >= 1, op, ": scores must not be empty, got ", describe(scores));
  std::vector<int64_t> ks;  // ranks of the capacities below 1, in order
  for (double c : capacities) {
    SCPN_CHECK(c > 0.0 && c <= 1.0, op, ": capacity ", c, " out of range (0, 1]");
    if (c == 1.0) continue;
    // A capacity below 2⁻⁵³ makes 1 − c round to 1, outside mask_rank's domain; the formula's limit
    // there is k = n (keep the largest magnitudes only).
    double sparsity = 1.0 - c;
    ks.push_back(sparsity < 1.0 ? mask_rank(scores.numel(), sparsity) : scores.numel());
  }
  std::vector<double> thresholds = abs_kth_values(scores, ks);  // the one ranking
  std::vector<Tensor> masks;
  size_t next = 0;
  for (double c : capacities)
    masks.push_back(c == 1.0 ? ones(scores.shape(), scores.dtype(), scores.device())
                             : magnitude_mask(scores, thresholds[next++]));
  return masks;
}

}  // namespace scpn
