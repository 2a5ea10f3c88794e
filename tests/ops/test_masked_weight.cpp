// masked_weight: W_eff = M ⊙ W with the straight-through gradients, weight and channel granularity, as
// op-harness cases against a loop written here (odd shapes up to a 1000011-element filter bank, zero scores,
// either input alone needing a gradient; the weight gradient also by finite differences), plus the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/masked_weight.h"
#include "engine/ops/reduce.h"
#include "engine/ops/select.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;

namespace {

double sgn(double v) { return double((v > 0) - (v < 0)); }

Tensor masked(const std::vector<Tensor>& x) { return masked_weight(x[0], x[1], x[2]); }

// The STE's definition, one filter at a time (a score of the weight's shape is one filter per element):
// out = m·w, ∂/∂w = m·g, ∂/∂s = sign(s)·Σ_filter w·g, pruned positions included.
Expected masked_weight_oracle(const std::vector<Tensor>& in, const Tensor& g) {
  const std::vector<double> w = in[0].to_vector(), s = in[1].to_vector(), m = in[2].to_vector(), gv = g.to_vector();
  const size_t len = w.size() / s.size();
  Expected e{{}, {std::vector<double>(w.size()), std::vector<double>(s.size(), 0.0), {}}};
  for (size_t i = 0; i < w.size(); ++i) {
    const size_t f = i / len;
    e.out.push_back(m[f] * w[i]);
    e.grads[0][i] = m[f] * gv[i];
    e.grads[1][f] += w[i] * gv[i];
  }
  for (size_t f = 0; f < s.size(); ++f) e.grads[1][f] *= sgn(s[f]);
  for (size_t i = 0; i < 2; ++i)
    if (!in[i].requires_grad()) e.grads[i].clear();
  return e;
}

// Scores on a grid of 1/4 so that some are exactly 0 (their gradient is 0 on every device).
Tensor grid_scores(const Shape& shape, DType dtype, uint64_t seed) {
  std::vector<double> v = random_tensor(shape, DType::f64, seed).to_vector();
  for (double& x : v) x = std::round(x * 4.0) / 4.0;
  return from_vector(v, shape, dtype);
}

using Inputs = std::function<std::vector<Tensor>(DType)>;  // weight, score, mask; none needing a gradient

// Weight and grid scores drawn in the dtype, masked at capacity 0.6 (the mask is a constant input).
Inputs grid_inputs(const Shape& weight_shape, bool per_filter, uint64_t seed) {
  return [=](DType d) {
    const Shape score_shape = per_filter ? Shape{weight_shape[0]} : weight_shape;
    Tensor score = grid_scores(score_shape, d, seed + 1);
    return std::vector<Tensor>{random_tensor(weight_shape, d, seed), score, capacity_masks(score, {0.6})[0]};
  };
}

// Uniform weight and scores in f64, converted, masked at `capacity`.
Inputs uniform_inputs(const Shape& weight_shape, const Shape& score_shape, uint64_t seed, double capacity) {
  return [=](DType d) {
    Tensor score = random_f64(score_shape, seed + 1).to(d);
    return std::vector<Tensor>{random_f64(weight_shape, seed).to(d), score, capacity_masks(score, {capacity})[0]};
  };
}

struct GradsNeeded {
  bool weight, score;
};
constexpr GradsNeeded kBoth{true, true}, kWeightOnly{true, false}, kScoreOnly{false, true};

struct MaskedWeightConfig {
  std::string label;
  bool per_filter;
  Inputs inputs;
  std::vector<GradsNeeded> backward = {kBoth};
};

// Per configuration: the forward alone, exact everywhere (a product with 0 or 1), and a backward case per
// set of inputs needing a gradient. The element-wise gradients are one product in the dtype; the per-filter
// score gradient is a sum in double, added in another order on another device, then rounded to the dtype.
std::vector<OpCase> masked_weight_cases() {
  const std::vector<MaskedWeightConfig> configs = {
      {"[4, 3, 3, 3] uniform, capacity 0.4", false, uniform_inputs({4, 3, 3, 3}, {4, 3, 3, 3}, 1, 0.4),
       {kBoth, kWeightOnly}},
      {"[5, 2, 3, 3] uniform, capacity 0.6", true, uniform_inputs({5, 2, 3, 3}, {5}, 4, 0.6), {kBoth, kWeightOnly}},
      {"[1]", false, grid_inputs({1}, false, 1)},
      {"[1, 1, 1, 1]", false, grid_inputs({1, 1, 1, 1}, false, 2)},
      {"[7, 3, 3, 3]", false, grid_inputs({7, 3, 3, 3}, false, 3)},
      {"[33, 5]", false, grid_inputs({33, 5}, false, 4)},
      {"[64, 64, 3, 3]", false, grid_inputs({64, 64, 3, 3}, false, 5)},
      {"[3, 333337]", false, grid_inputs({3, 333337}, false, 6)},
      {"[1]", true, grid_inputs({1}, true, 11)},
      {"[1, 1, 1, 1]", true, grid_inputs({1, 1, 1, 1}, true, 12)},
      {"[7, 3, 3, 3]", true, grid_inputs({7, 3, 3, 3}, true, 13)},
      {"[33, 5]", true, grid_inputs({33, 5}, true, 14)},
      {"[513, 64, 3, 3]", true, grid_inputs({513, 64, 3, 3}, true, 15)},
      {"[3, 333337]", true, grid_inputs({3, 333337}, true, 16)},  // filters far longer than a block
      {"[9000, 1]", true, grid_inputs({9000, 1}, true, 17)},      // more filters than blocks in one wave
      {"[17, 4, 3, 3] seed 21", false, grid_inputs({17, 4, 3, 3}, false, 21), {kScoreOnly}},
      {"[17, 4, 3, 3] seed 22", false, grid_inputs({17, 4, 3, 3}, false, 22), {kWeightOnly}},
      {"[17, 4, 3, 3] seed 21", true, grid_inputs({17, 4, 3, 3}, true, 21), {kScoreOnly}},
      {"[17, 4, 3, 3] seed 22", true, grid_inputs({17, 4, 3, 3}, true, 22), {kWeightOnly}},
  };
  std::vector<OpCase> cases;
  for (const MaskedWeightConfig& config : configs) {
    const std::string name = cat("masked_weight ", config.label, config.per_filter ? " channel" : " weight");
    cases.push_back({.name = name + " forward",
                     .inputs = config.inputs,
                     .op = masked,
                     .oracle = masked_weight_oracle,
                     .oracle_f32 = {0, 0},
                     .oracle_f64 = {0, 0},
                     .gradcheck = false,
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
    for (GradsNeeded needed : config.backward) {
      const Inputs make = config.inputs;
      const auto inputs = [make, needed](DType d) {
        std::vector<Tensor> in = make(d);
        in[0].requires_grad_(needed.weight);
        in[1].requires_grad_(needed.score);
        return in;
      };
      // The score gradient is the STE's definition, not the derivative (the mask is a constant): only the
      // weight's gradient can meet central differences.
      const bool gradcheck = !needed.score && config.inputs(DType::f64)[0].numel() <= 4096;
      const bool filter_sum = config.per_filter && needed.score;
      const char* which = needed.weight && needed.score ? "" : needed.weight ? " weight only" : " score only";
      cases.push_back({.name = name + which,
                       .inputs = inputs,
                       .op = masked,
                       .oracle = masked_weight_oracle,
                       .oracle_f32 = {1e-6, 1e-6},
                       .oracle_f64 = filter_sum ? test::Tolerance{1e-13, 1e-13} : test::Tolerance{1e-15, 1e-15},
                       .gradcheck = gradcheck,
                       .parity_f32 = {1e-6, 1e-5},
                       .parity_f64 = {1e-12, 1e-12}});
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("masked_weight: op harness") { test::run_op_cases("masked_weight", masked_weight_cases()); }

TEST_CASE("channel granularity at capacity 0.6 keeps 3 of 5 filters") {
  Tensor m = capacity_masks(random_f64({5}, 5), {0.6})[0];
  CHECK(sum(m).item() == 3);  // k = 1 + round(0.4·4) = 3 → keeps 3
}

TEST_CASE("masked_weight rejects mismatched shapes") {
  CHECK_THROWS_WITH_AS(masked_weight(zeros({4, 3}), zeros({3}), zeros({3})),
                       "masked_weight: score [3] must have the weight's shape [4, 3] or one entry per filter [4]", Error);
  CHECK_THROWS_WITH_AS(masked_weight(zeros({4, 3}), zeros({4}), zeros({4, 3})),
                       "masked_weight: mask [4, 3] and score [4] must have the same shape", Error);
}
