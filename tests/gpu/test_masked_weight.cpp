// CUDA masked-weight kernels (kernels/cuda/masked_weight.cu) against the CPU, through the engine op
// masked_weight (engine/ops/masked_weight.h): forward and both straight-through gradients, weight and
// channel granularity, f32 and f64, odd shapes up to a 1000011-element filter bank, zero scores (sign 0),
// and either input alone requiring a gradient. Skips without a CUDA device.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/masked_weight.h"
#include "engine/ops/select.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

Tensor masked(const std::vector<Tensor>& x) { return masked_weight(x[0], x[1], x[2]); }

// Scores on a grid of 1/4 so that some are exactly 0 (their gradient is 0 on both devices).
Tensor grid_scores(const Shape& shape, DType dtype, uint64_t seed) {
  std::vector<double> v = test::random_tensor(shape, DType::f64, seed).to_vector();
  for (double& x : v) x = std::round(x * 4.0) / 4.0;
  return from_vector(v, shape, dtype);
}

// Element-wise results are the same products on both devices; the per-filter score gradient is a sum in
// double added in a different order, then rounded to the dtype.
test::Tolerance out_tolerance() { return {0.0, 0.0}; }
test::Tolerance grad_tolerance(DType dtype) {
  return dtype == DType::f64 ? test::Tolerance{1e-12, 1e-12} : test::Tolerance{1e-6, 1e-5};
}

void check_case(const std::string& label, const Shape& weight_shape, bool per_filter, DType dtype, uint64_t seed,
                bool weight_grad = true, bool score_grad = true) {
  const Shape score_shape = per_filter ? Shape{weight_shape[0]} : weight_shape;
  Tensor weight = test::random_tensor(weight_shape, dtype, seed);
  Tensor score = grid_scores(score_shape, dtype, seed + 1);
  // The mask at capacity 0.6, made on the CPU: both devices get the same constant.
  Tensor mask = capacity_masks(score, {0.6})[0];
  weight.requires_grad_(weight_grad);
  score.requires_grad_(score_grad);
  const std::vector<Tensor> inputs = {weight, score, mask};
  CHECK_PARITY(label + (per_filter ? " channel " : " weight ") + dtype_name(dtype), masked, inputs, out_tolerance(),
               grad_tolerance(dtype));
}

}  // namespace

TEST_CASE("cuda masked_weight, weight granularity: forward and straight-through gradients") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    check_case("[1]", {1}, false, dtype, 1);
    check_case("[1,1,1,1]", {1, 1, 1, 1}, false, dtype, 2);
    check_case("[7,3,3,3]", {7, 3, 3, 3}, false, dtype, 3);
    check_case("[33,5]", {33, 5}, false, dtype, 4);
    check_case("[64,64,3,3]", {64, 64, 3, 3}, false, dtype, 5);
    check_case("[3,333337]", {3, 333337}, false, dtype, 6);
  }
}

TEST_CASE("cuda masked_weight, channel granularity: per-filter score gradient") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    check_case("[1]", {1}, true, dtype, 11);
    check_case("[1,1,1,1]", {1, 1, 1, 1}, true, dtype, 12);
    check_case("[7,3,3,3]", {7, 3, 3, 3}, true, dtype, 13);
    check_case("[33,5]", {33, 5}, true, dtype, 14);
    check_case("[513,64,3,3]", {513, 64, 3, 3}, true, dtype, 15);
    check_case("[3,333337]", {3, 333337}, true, dtype, 16);  // filters far longer than a block
    check_case("[9000,1]", {9000, 1}, true, dtype, 17);      // more filters than blocks in one wave
  }
}

TEST_CASE("cuda masked_weight: only one of weight and score needs a gradient") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64})
    for (bool per_filter : {false, true}) {
      check_case("score only", {17, 4, 3, 3}, per_filter, dtype, 21, false, true);
      check_case("weight only", {17, 4, 3, 3}, per_filter, dtype, 22, true, false);
    }
}
