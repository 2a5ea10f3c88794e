// Pruning masks from scores (SCPN_METHOD.md §3): k-th magnitudes (random and tied scores, ±0, NaN of either
// sign, inf, unordered ranks with repeats, sizes 1 to 1000003) and magnitude/capacity masks as op-harness
// cases against a full sort written here, plus mask_rank's rounding, tie and count rules, nesting, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/ops/elementwise.h"
#include "engine/ops/select.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;

namespace {
std::vector<double> sorted_magnitudes(const Tensor& s) {
  std::vector<double> v = s.to_vector();
  for (double& x : v) x = std::abs(x);
  std::sort(v.begin(), v.end());
  return v;
}

// The number of ones of a 0/1 mask; -1 if any entry is neither 0 nor 1.
int64_t count_ones(const Tensor& m) {
  int64_t n = 0;
  for (double v : m.to_vector()) {
    if (v != 0.0 && v != 1.0) return -1;
    n += v == 1.0;
  }
  return n;
}

bool all_distinct(const std::vector<double>& sorted) {
  return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
}

// Scores on a grid of 1/8 with both signs: every magnitude repeats many times, and −0 and +0 appear.
Tensor tied_scores(int64_t n, DType dtype, uint64_t seed) {
  std::vector<double> v = random_tensor({n}, DType::f64, seed).to_vector();
  for (double& x : v) x = std::round(x * 8.0) / 8.0;
  if (n > 2) v[1] = -0.0;
  return from_vector(v, {n}, dtype);
}

// Uniform scores in [−1, 1) with NaNs of both signs at every `stride`-th position.
Tensor scores_with_nans(int64_t n, DType dtype, uint64_t seed, int64_t stride) {
  std::vector<double> v = random_tensor({n}, DType::f64, seed).to_vector();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t i = 0; i < n; i += stride) v[size_t(i)] = (i / stride) % 2 == 0 ? nan : -nan;
  return from_vector(v, {n}, dtype);
}

// Ranks in no order, with repeats: both ends, the middle, and a spread of others.
std::vector<int64_t> ranks_for(int64_t n) {
  std::vector<int64_t> ks = {n, 1, (n + 1) / 2, 1, n, std::max<int64_t>(1, n / 3)};
  for (int64_t j = 1; j <= 7; ++j) ks.push_back(1 + (j * 7919 * (n - 1) / 11) % n);
  ks.push_back(ks[3]);
  return ks;
}

// The independent oracle: |scores| fully sorted, NaN last; the k-th entry of it for every k.
std::vector<double> sorted_oracle(const Tensor& scores, const std::vector<int64_t>& ks) {
  std::vector<double> v = scores.to_vector();
  for (double& x : v) x = std::abs(x);
  std::stable_partition(v.begin(), v.end(), [](double x) { return !std::isnan(x); });
  const auto numbers = std::find_if(v.begin(), v.end(), [](double x) { return std::isnan(x); });
  std::sort(v.begin(), numbers);
  std::vector<double> out;
  for (int64_t k : ks) out.push_back(v[size_t(k - 1)]);
  return out;
}

// A k-th value and a mask are exact elements and exact comparisons: on every device, bit for bit (NaN equal
// to NaN). Neither has a gradient.
constexpr test::Tolerance kExact{0, 0};

OpCase kth_case(const std::string& name, std::function<Tensor(DType)> scores, const std::vector<int64_t>& ks) {
  return {.name = "abs_kth_values " + name,
          .inputs = [scores](DType d) { return std::vector<Tensor>{scores(d)}; },
          .op = [ks](const std::vector<Tensor>& v) {
            const std::vector<double> got = abs_kth_values(v[0], ks);
            return from_vector(got, {int64_t(got.size())}, DType::f64);
          },
          .oracle = [ks](const std::vector<Tensor>& in, const Tensor&) {
            return Expected{sorted_oracle(in[0], ks), {}};
          },
          .oracle_f32 = kExact,
          .oracle_f64 = kExact,
          .gradcheck = false,
          .parity_f32 = kExact,
          .parity_f64 = kExact};
}

std::vector<OpCase> kth_cases() {
  std::vector<OpCase> cases;
  // Every rank shape from a 1-element to a 300×1001 score tensor, unordered with repeats.
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{4, 3, 3, 3}, Shape{300, 1001}}) {
    const int64_t n = shape_numel(shape);
    cases.push_back(kth_case(shape_str(shape) + " uniform",
                             [shape](DType d) { return random_f64(shape, 71, -1, 1).to(d); },
                             {n, 1, (n + 1) / 2, 1, std::max<int64_t>(1, n / 3), n}));
  }
  // Random and heavily tied scores, odd sizes up to several blocks.
  for (int64_t n : {int64_t(1), int64_t(2), int64_t(7), int64_t(33), int64_t(1000), int64_t(1000003)}) {
    const uint64_t seed = uint64_t(n);
    cases.push_back(kth_case(cat("[", n, "] random"), [n, seed](DType d) { return random_tensor({n}, d, seed + 11); },
                             ranks_for(n)));
    cases.push_back(kth_case(cat("[", n, "] tied"), [n, seed](DType d) { return tied_scores(n, d, seed + 12); },
                             ranks_for(n)));
  }
  // A 4-D score tensor, and every rank of a small tied one, largest first.
  cases.push_back(kth_case("[7, 3, 3, 3] random", [](DType d) { return random_tensor({7, 3, 3, 3}, d, 5); },
                           ranks_for(7 * 3 * 3 * 3)));
  std::vector<int64_t> every;
  for (int64_t k = 37; k >= 1; --k) every.push_back(k);
  cases.push_back(kth_case("[37] tied every rank", [](DType d) { return tied_scores(37, d, 6); }, every));
  // 1000 scores, every 7th NaN (143 of them): ranks above 857 land on NaN; +inf is the largest number,
  // below every NaN; nothing but NaN.
  cases.push_back(kth_case("[1000] NaN", [](DType d) { return scores_with_nans(1000, d, 21, 7); },
                           {1000, 857, 858, 1, 500, 857, 999, 2}));
  cases.push_back(kth_case("[1000] NaN and inf",
                           [](DType d) {
                             std::vector<double> v = scores_with_nans(1000, d, 21, 7).to_vector();
                             v[3] = std::numeric_limits<double>::infinity();
                             v[4] = -std::numeric_limits<double>::infinity();
                             return from_vector(v, {1000}, d);
                           },
                           {855, 856, 857, 858, 1000}));
  cases.push_back(kth_case("[5] all NaN", [](DType d) { return scores_with_nans(5, d, 22, 1); }, {1, 5, 3}));
  return cases;
}

// Capacity masks 1.0 … 0.05 from one ranking, then magnitude masks at thresholds that are not elements:
// between grid values, zero, and NaN (keeps nothing). The oracle: |S| >= τ with τ from the full sort.
std::vector<OpCase> mask_cases() {
  const std::vector<double> capacities = {1.0, 0.8, 0.6, 0.4, 0.2, 0.05};
  const std::vector<double> thresholds = {0.3, 0.0, std::numeric_limits<double>::quiet_NaN()};
  const auto op = [capacities, thresholds](const std::vector<Tensor>& v) {
    std::vector<Tensor> masks = capacity_masks(v[0], capacities);
    REQUIRE(masks.size() == capacities.size());
    for (double tau : thresholds) masks.push_back(magnitude_mask(v[0], tau));
    for (const Tensor& m : masks) CHECK(m.device() == v[0].device());
    return test::flat_concat(masks);
  };
  const auto oracle = [capacities, thresholds](const std::vector<Tensor>& in, const Tensor&) {
    const std::vector<double> s = in[0].to_vector();
    const int64_t n = int64_t(s.size());
    std::vector<int64_t> ks;
    for (double c : capacities) ks.push_back(c == 1.0 ? 1 : mask_rank(n, 1.0 - c));
    std::vector<double> taus = sorted_oracle(in[0], ks);
    taus.insert(taus.end(), thresholds.begin(), thresholds.end());
    Expected e;
    for (size_t t = 0; t < taus.size(); ++t) {
      const bool all = t < capacities.size() && capacities[t] == 1.0;  // capacity 1 keeps NaN as well
      for (double x : s) e.out.push_back(all || std::abs(x) >= taus[t] ? 1.0 : 0.0);
    }
    return e;
  };
  std::vector<OpCase> cases;
  for (int64_t n : {int64_t(1), int64_t(33), int64_t(4099), int64_t(1000003)}) {
    const std::vector<std::pair<std::string, std::function<Tensor(DType)>>> kinds = {
        {"random", [n](DType d) { return random_tensor({n}, d, 31); }},
        {"tied", [n](DType d) { return tied_scores(n, d, 32); }},
        {"NaN", [n](DType d) { return scores_with_nans(n, d, 33, 5); }},
    };
    for (const auto& kind : kinds)
      cases.push_back({.name = cat("capacity_masks + magnitude_mask [", n, "] ", kind.first),
                       .inputs = [scores = kind.second](DType d) { return std::vector<Tensor>{scores(d)}; },
                       .op = op,
                       .oracle = oracle,
                       .oracle_f32 = kExact,
                       .oracle_f64 = kExact,
                       .gradcheck = false,
                       .parity_f32 = kExact,
                       .parity_f64 = kExact});
  }
  return cases;
}

}  // namespace

TEST_CASE("select: op harness") {
  std::vector<OpCase> cases = kth_cases();
  for (OpCase& c : mask_cases()) cases.push_back(std::move(c));
  test::run_op_cases("select", cases);
}

TEST_CASE("mask_rank rounds half to even") {
  CHECK(mask_rank(3, 0.25) == 1);  // 1 + round(0.5) = 1 + 0
  CHECK(mask_rank(3, 0.75) == 3);  // 1 + round(1.5) = 1 + 2
  CHECK(mask_rank(6, 0.5) == 3);   // 1 + round(2.5) = 1 + 2
  CHECK(mask_rank(8, 0.5) == 5);   // 1 + round(3.5) = 1 + 4
  CHECK(mask_rank(5, 0.5) == 3);   // exact: 1 + 2
  CHECK(mask_rank(11, 0.26) == 4);  // 2.6 rounds up
  CHECK(mask_rank(11, 0.24) == 3);  // 2.4 rounds down
  CHECK(mask_rank(10, 0.0) == 1);   // s = 0 keeps everything
  CHECK(mask_rank(1, 0.9) == 1);
  // s = 1 − 0.8 = 0.19999999999999996 in double: 10·s = 1.9999999999999996 → 2, as Python's round gives.
  CHECK(mask_rank(11, 1.0 - 0.8) == 3);
  CHECK(mask_rank(1000001, 0.5) == 500001);
}

TEST_CASE("abs_kth_values of no ranks is empty") { CHECK(abs_kth_values(ones({3}), {}).empty()); }

TEST_CASE("abs_kth_values ranks NaN above every number") {
  Tensor s = from_vector({0.5, NAN, -0.2, 3.0}, {4}, DType::f64);
  std::vector<double> got = abs_kth_values(s, {1, 2, 3, 4});
  CHECK(got[0] == 0.2);
  CHECK(got[1] == 0.5);
  CHECK(got[2] == 3.0);
  CHECK(std::isnan(got[3]));
  CHECK(magnitude_mask(s, got[2]).to_vector() == std::vector<double>{0, 0, 0, 1});  // NaN is not kept
}

TEST_CASE("the mask keeps exactly the n − k + 1 largest magnitudes when there are no ties") {
  Tensor s = random_f64({16, 8, 3, 3}, 81, -1, 1);
  std::vector<double> sorted = sorted_magnitudes(s);
  REQUIRE(all_distinct(sorted));
  int64_t n = s.numel();
  for (double sparsity : {0.0, 0.1, 0.5, 0.9, 0.999}) {
    int64_t k = mask_rank(n, sparsity);
    double tau = abs_kth_values(s, {k})[0];
    Tensor m = magnitude_mask(s, tau);
    CHECK(m.shape() == s.shape());
    CHECK(m.dtype() == s.dtype());
    CHECK(count_ones(m) == n - k + 1);
    // Every kept magnitude is at least every pruned one.
    std::vector<double> sv = s.to_vector(), mv = m.to_vector();
    double min_kept = INFINITY, max_pruned = -INFINITY;
    for (size_t i = 0; i < sv.size(); ++i) {
      if (mv[i] == 1) min_kept = std::min(min_kept, std::abs(sv[i]));
      else max_pruned = std::max(max_pruned, std::abs(sv[i]));
    }
    CHECK(min_kept == tau);
    if (k > 1) CHECK(max_pruned < min_kept);
  }
}

TEST_CASE("negative scores are ranked by magnitude, and ties at τ are all kept") {
  // |S| = [5, 1, 2, 4, 3]; s = 0.5: k = 1 + round(2) = 3, τ = 3.
  Tensor s = from_vector({-5, 1, -2, 4, 3}, {5});
  CHECK(abs_kth_values(s, {mask_rank(5, 0.5)})[0] == 3);
  CHECK(capacity_masks(s, {0.5})[0].to_vector() == std::vector<double>{1, 0, 0, 1, 1});
  // |S| sorted = [0.1, 0.5, 0.5, 0.5, 0.5, 0.9]; s = 0.4: k = 1 + round(2) = 3, τ = 0.5: all four 0.5s stay,
  // so five entries are kept although n − k + 1 = 4.
  Tensor t = from_vector({0.5, -0.5, 0.5, 0.1, 0.9, -0.5}, {2, 3}, DType::f64);
  CHECK(mask_rank(6, 0.4) == 3);
  Tensor m = capacity_masks(t, {0.6})[0];
  CHECK(m.to_vector() == std::vector<double>{1, 1, 1, 0, 1, 1});
  CHECK(magnitude_mask(t, 0.5).to_vector() == m.to_vector());
  CHECK(magnitude_mask(t, 0.50001).to_vector() == std::vector<double>{0, 0, 0, 0, 1, 0});
}

TEST_CASE("capacity masks 1.0/0.8/0.6/0.4/0.2 are nested and match one-at-a-time masks") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor s = random_f64({32, 16, 3, 3}, 91, -1, 1).to(dt);
    std::vector<double> caps = {1.0, 0.8, 0.6, 0.4, 0.2};
    std::vector<Tensor> masks = capacity_masks(s, caps);
    REQUIRE(masks.size() == caps.size());
    int64_t n = s.numel();
    CHECK(count_ones(masks[0]) == n);
    std::vector<double> sorted = sorted_magnitudes(s);  // f32 rounding may create ties: count them
    for (size_t i = 1; i < caps.size(); ++i) {
      int64_t k = mask_rank(n, 1.0 - caps[i]);
      double tau = sorted[size_t(k - 1)];
      int64_t at_least_tau = int64_t(sorted.end() - std::lower_bound(sorted.begin(), sorted.end(), tau));
      CHECK(count_ones(masks[i]) == at_least_tau);
      CHECK(masks[i].to_vector() == magnitude_mask(s, abs_kth_values(s, {k})[0]).to_vector());
      // nested: a smaller capacity keeps a subset of the larger one's entries
      std::vector<double> small = masks[i].to_vector(), large = masks[i - 1].to_vector();
      bool subset = true;
      for (size_t j = 0; j < small.size(); ++j) subset = subset && (small[j] <= large[j]);
      CHECK(subset);
      CHECK(count_ones(masks[i]) < count_ones(masks[i - 1]));
    }
  }
}

TEST_CASE("capacity 1 gives all ones; a vanishing capacity keeps the largest magnitude") {
  Tensor s = from_vector({0, -0, 0.3, -2, 0}, {5});
  CHECK(capacity_masks(s, {1.0})[0].to_vector() == std::vector<double>(5, 1.0));
  CHECK(capacity_masks(s, {1e-30})[0].to_vector() == std::vector<double>{0, 0, 0, 1, 0});
  Tensor scores = random_f64({4, 4}, 92).requires_grad_();
  Tensor m = capacity_masks(scores, {0.5})[0];
  CHECK_FALSE(m.requires_grad());  // masks carry no gradient
  CHECK(capacity_masks(scores, {}).empty());
}

TEST_CASE("select bad input names the function and the values") {
  CHECK_THROWS_WITH_AS(mask_rank(3, 1.0), "mask_rank: sparsity 1 out of range [0, 1)", Error);
  CHECK_THROWS_WITH_AS(mask_rank(3, -0.25), "mask_rank: sparsity -0.25 out of range [0, 1)", Error);
  CHECK_THROWS_WITH_AS(mask_rank(0, 0.5), "mask_rank: n must be >= 1, got 0", Error);
  Tensor s = zeros({2, 3});
  CHECK_THROWS_WITH_AS(abs_kth_values(s, {1, 7}), "abs_kth_values: rank k = 7 out of range [1, n] for n = 6 scores",
                       Error);
  CHECK_THROWS_WITH_AS(abs_kth_values(s, {0}), "abs_kth_values: rank k = 0 out of range [1, n] for n = 6 scores",
                       Error);
  CHECK_THROWS_WITH_AS(abs_kth_values(zeros({0}), {1}), "abs_kth_values: scores must not be empty, got f32 [0] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(magnitude_mask(zeros({3}, DType::i64), 0.5),
                       "magnitude_mask: argument 'scores' must be f32 or f64, got i64 [3] on cpu", Error);
  CHECK_THROWS_WITH_AS(capacity_masks(s, {0.5, 0.0}), "capacity_masks: capacity 0 out of range (0, 1]", Error);
  CHECK_THROWS_WITH_AS(capacity_masks(s, {1.5}), "capacity_masks: capacity 1.5 out of range (0, 1]", Error);
  CHECK_THROWS_WITH_AS(capacity_masks(s, {-0.2}), "capacity_masks: capacity -0.2 out of range (0, 1]", Error);
  CHECK_THROWS_WITH_AS(capacity_masks(zeros({0, 3}), {0.5}),
                       "capacity_masks: scores must not be empty, got f32 [0, 3] on cpu", Error);
}
