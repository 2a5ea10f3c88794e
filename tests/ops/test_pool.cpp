// Pooling: max_pool2d (the ResNet stem pool k3 s2 p1, k2 s2, overlapping k3 s1, odd sizes, -inf padding,
// ties, NaN) and 1x1 average pooling, as op-harness cases against naive loops written here, plus the
// accumulation, tie and NaN rules and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "engine/autograd.h"
#include "engine/ops/pool.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;

namespace {

struct PoolCase {
  Shape shape;
  int64_t kernel, stride, padding;
};

// The stem pool, the common 2x2, heavy overlap (stride 1), windows cut by the border, odd sizes, batch 1.
const std::vector<PoolCase> kMaxPoolCases = {
    {{2, 2, 7, 9}, 3, 2, 1},  {{1, 3, 5, 5}, 3, 2, 1},  {{1, 1, 6, 6}, 3, 2, 1}, {{2, 3, 6, 8}, 2, 2, 0},
    {{1, 2, 5, 7}, 2, 2, 0},  {{1, 2, 5, 6}, 3, 1, 0},  {{3, 1, 4, 5}, 3, 3, 1}, {{1, 1, 1, 1}, 1, 1, 0},
    {{2, 5, 9, 11}, 2, 2, 0}, {{1, 2, 8, 8}, 3, 1, 1},  {{1, 1, 5, 5}, 5, 1, 2}, {{2, 3, 10, 7}, 4, 3, 2},
};

// Max pooling by the definition: every window position, padded positions read as -inf; the first
// maximum in row-major window order is the argmax. Returns y and dx for the output gradient g.
struct NaiveMaxPool {
  Shape out_shape;
  std::vector<double> y, grad_x;
};

NaiveMaxPool naive_max_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, const std::vector<double>& g) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  const std::vector<double> xv = x.to_vector();
  NaiveMaxPool r;
  r.out_shape = {N, C, OH, OW};
  r.grad_x.assign(xv.size(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t best_at = -1;
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
              const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
              const double v = inside ? xv[size_t(((n * C + c) * H + ih) * W + iw)]
                                      : -std::numeric_limits<double>::infinity();
              if (v > best) {
                best = v;
                best_at = ((n * C + c) * H + ih) * W + iw;
              }
            }
          const size_t o = size_t(((n * C + c) * OH + oh) * OW + ow);
          r.y.push_back(best);
          if (!g.empty()) r.grad_x[size_t(best_at)] += g[o];
        }
  return r;
}

// Distinct values -1, -0.99, -0.98, … in a random order: no ties or near-ties anywhere, so central
// differences with a step of 1e-6 never cross a change of argmax.
Tensor distinct_values(const Shape& shape, uint64_t seed) {
  const std::vector<double> keys = random_f64({shape_numel(shape)}, seed).to_vector();
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<double> values(keys.size());
  for (size_t rank = 0; rank < order.size(); ++rank) values[order[rank]] = -1.0 + 0.01 * double(rank);
  return from_vector(values, shape, DType::f64);
}

std::string label_of(const char* what, const PoolCase& pc) {
  return cat(what, " ", shape_str(pc.shape), " k", pc.kernel, " s", pc.stride, " p", pc.padding);
}

test::Oracle max_pool_oracle(const PoolCase& pc) {
  return [pc](const std::vector<Tensor>& in, const Tensor& g) {
    NaiveMaxPool ref = naive_max_pool(in[0], pc.kernel, pc.stride, pc.padding, g.to_vector());
    return Expected{ref.y, {ref.grad_x}};
  };
}

// Values drawn from {0, 1, 2}: most windows hold a tied maximum, several shared by overlapping windows.
Tensor tied_values(const Shape& shape, DType dtype, uint64_t seed) {
  std::vector<double> v = random_tensor(shape, DType::f64, seed, 0.0, 3.0).to_vector();
  for (double& x : v) x = std::floor(x);
  return from_vector(v, shape, dtype);
}

std::vector<OpCase> max_pool_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 70;
  for (const PoolCase& pc : kMaxPoolCases) {
    const auto pool = [pc](const std::vector<Tensor>& v) { return max_pool2d(v[0], pc.kernel, pc.stride, pc.padding); };
    ++seed;
    // Distinct values in [-2, -1], no near-ties (central differences never cross a change of argmax); were
    // padding read as 0 instead of -inf, border outputs would be 0. A max is exact on every device.
    cases.push_back({.name = label_of("max_pool2d", pc),
                     .inputs = [pc, seed](DType d) {
                       std::vector<double> v = distinct_values(pc.shape, seed).to_vector();
                       for (double& x : v) x = -2.0 + (x + 1.0) / 100.0;
                       return std::vector<Tensor>{from_vector(v, pc.shape, d).requires_grad_()};
                     },
                     .op = pool,
                     .oracle = max_pool_oracle(pc),
                     .oracle_f32 = {1e-6, 1e-6},
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
    // Tied maxima: the first in row-major window order takes the gradient, on every device. Not
    // differentiable there, so no gradcheck.
    cases.push_back({.name = label_of("max_pool2d ties", pc),
                     .inputs = [pc, seed](DType d) { return std::vector<Tensor>{tied_values(pc.shape, d, seed + 100).requires_grad_()}; },
                     .op = pool,
                     .oracle = max_pool_oracle(pc),
                     .gradcheck = false,
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
  }
  // The ResNet stem at full size: outputs and argmax gradients, exact (too large for central differences).
  const PoolCase stem{{2, 16, 112, 112}, 3, 2, 1};
  cases.push_back({.name = label_of("max_pool2d", stem),
                   .inputs = [stem](DType d) { return std::vector<Tensor>{random_tensor(stem.shape, d, 77).requires_grad_()}; },
                   .op = [stem](const std::vector<Tensor>& v) { return max_pool2d(v[0], stem.kernel, stem.stride, stem.padding); },
                   .oracle = max_pool_oracle(stem),
                   .gradcheck = false,
                   .parity_f32 = {0, 0},
                   .parity_f64 = {0, 0}});
  // NaN wins its windows wherever it is; an all -inf window still names its first value (the naive loop
  // has no NaN rule: the CPU's is asserted below, the devices must agree with it).
  const PoolCase nan_case{{2, 2, 9, 9}, 3, 2, 1};
  cases.push_back({.name = label_of("max_pool2d NaN/-inf", nan_case),
                   .inputs = [nan_case](DType d) {
                     std::vector<double> v = tied_values(nan_case.shape, DType::f64, 450).to_vector();
                     for (size_t i = 0; i < v.size(); i += 7) v[i] = NAN;
                     for (size_t i = 81; i < 81 + 27; ++i) v[i] = -INFINITY;  // the top rows of the second plane
                     return std::vector<Tensor>{from_vector(v, nan_case.shape, d).requires_grad_()};
                   },
                   .op = [nan_case](const std::vector<Tensor>& v) {
                     return max_pool2d(v[0], nan_case.kernel, nan_case.stride, nan_case.padding);
                   },
                   .gradcheck = false,
                   .parity_f32 = {0, 0},
                   .parity_f64 = {0, 0}});
  return cases;
}

// 1x1 average pooling: plane means, and g / (H·W) spread over each plane. The ResNet head shapes and a
// stem-sized plane are too large for central differences.
std::vector<OpCase> average_pool_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 90;
  for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 4, 1, 1}, Shape{3, 2, 7, 7}, Shape{1, 2, 3, 3},
                             Shape{1, 1, 1, 1}, Shape{3, 5, 13, 17}, Shape{1, 7, 33, 1}, Shape{2, 512, 7, 7},
                             Shape{4, 2048, 1, 1}, Shape{1, 3, 112, 112}}) {
    const bool small = shape_numel(shape) <= 4096;
    const auto oracle = [](const std::vector<Tensor>& in, const Tensor& g) {
      const Shape& s = in[0].shape();
      const int64_t planes = s[0] * s[1], hw = s[2] * s[3];
      const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
      Expected e{{}, {std::vector<double>(x.size())}};
      for (int64_t q = 0; q < planes; ++q) {
        double sum = 0;
        for (int64_t i = 0; i < hw; ++i) sum += x[size_t(q * hw + i)];
        e.out.push_back(sum / double(hw));
        for (int64_t i = 0; i < hw; ++i) e.grads[0][size_t(q * hw + i)] = gv[size_t(q)] / double(hw);
      }
      return e;
    };
    const uint64_t s = ++seed;
    const auto inputs = [shape, s](DType d) { return std::vector<Tensor>{random_tensor(shape, d, s).requires_grad_()}; };
    // Sums are in double on every device, so only the last bit of a rounded mean can differ.
    const std::pair<const char*, test::OpFn> ops[] = {
        {"adaptive_avg_pool2d_1x1 ", [](const std::vector<Tensor>& v) { return adaptive_avg_pool2d_1x1(v[0]); }},
        {"global_avg_pool ", [](const std::vector<Tensor>& v) { return global_avg_pool(v[0]); }}};
    for (const auto& [name, op] : ops)
      cases.push_back({.name = name + shape_str(shape),
                       .inputs = inputs,
                       .op = op,
                       .oracle = oracle,
                       .oracle_f32 = {1e-6, 1e-6},
                       .oracle_f64 = {1e-14, 1e-14},
                       .gradcheck = small,
                       .parity_f32 = {1e-7, 1e-6},
                       .parity_f64 = {1e-14, 1e-13}});
  }
  return cases;
}

}  // namespace

TEST_CASE("pool: op harness") {
  std::vector<OpCase> cases = max_pool_cases();
  for (OpCase& c : average_pool_cases()) cases.push_back(std::move(c));
  test::run_op_cases("pool", cases);
}

TEST_CASE("max_pool2d backward accumulates where overlapping windows share a maximum") {
  // Every 2x2 window with stride 1 contains the centre 9.
  Tensor x = from_vector({0, 1, 2, 3, 9, 4, 5, 6, 7}, {1, 1, 3, 3}, DType::f64).requires_grad_();
  Tensor y = max_pool2d(x, 2, 1, 0);
  CHECK(y.to_vector() == std::vector<double>{9, 9, 9, 9});
  backward(y, from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 0, 0, 10, 0, 0, 0, 0});

  // The stem pool on 4x4: the 3x3 windows at stride 2 overlap on row and column 1.
  // 15 at (1, 1) lies in all four windows; the last window holds a larger 20 at (3, 2).
  Tensor z = from_vector({0, 1, 2, 3, 4, 15, 6, 7, 8, 9, 10, 11, 12, 13, 20, 5}, {1, 1, 4, 4}, DType::f64)
                 .requires_grad_();
  Tensor yz = max_pool2d(z, 3, 2, 1);
  CHECK(yz.to_vector() == std::vector<double>{15, 15, 15, 20});
  backward(yz, from_vector({1, 10, 100, 1000}, {1, 1, 2, 2}, DType::f64));
  std::vector<double> want(16, 0.0);
  want[5] = 111;
  want[14] = 1000;
  CHECK(z.grad().to_vector() == want);
}

TEST_CASE("max_pool2d ties go to the first maximum, NaN propagates") {
  Tensor x = ones({1, 1, 2, 2}, DType::f64).requires_grad_();
  Tensor y = max_pool2d(x, 2, 2, 0);
  backward(y, ones({1, 1, 1, 1}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 0, 0});

  Tensor with_nan = from_vector({1, NAN, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
  std::vector<double> pooled = max_pool2d(with_nan, 2, 2, 0).to_vector();
  REQUIRE(pooled.size() == 2);
  CHECK(std::isnan(pooled[0]));
  CHECK(pooled[1] == 8);
}

TEST_CASE("average pooling backward spreads g / (H·W) over the plane") {
  Tensor x = random_f64({1, 2, 2, 2}, 92).requires_grad_();
  backward(adaptive_avg_pool2d_1x1(x), from_vector({4, -8}, {1, 2, 1, 1}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1, 1, -2, -2, -2, -2});
  CHECK(global_avg_pool(x).shape() == Shape{1, 2});
}

TEST_CASE("bad input names the pooling op and the shapes") {
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({2, 3, 4}), 2, 2),
                       "max_pool2d: argument 'x' must be 4-D [N, C, H, W], got f32 [2, 3, 4] on cpu", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 2, 2}, DType::i32), 2, 2),
                       "max_pool2d: argument 'x' must be f32 or f64, got i32 [1, 1, 2, 2] on cpu", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 4, 4}), 0, 1), "max_pool2d: kernel must be >= 1, got 0", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 4, 4}), 2, 0), "max_pool2d: stride must be >= 1, got 0", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 4, 4}), 3, 2, 2),
                       "max_pool2d: padding must be in [0, kernel / 2] = [0, 1], got 2", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 4, 4}), 3, 2, -1),
                       "max_pool2d: padding must be in [0, kernel / 2] = [0, 1], got -1", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 2, 5}), 3, 1, 0),
                       "max_pool2d: input [1, 1, 2, 5] is too small for kernel 3 with padding 0", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 0, 5}), 2, 1, 1),
                       "max_pool2d: input [1, 1, 0, 5] is too small for kernel 2 with padding 1", Error);
  CHECK_THROWS_WITH_AS(adaptive_avg_pool2d_1x1(zeros({2, 3})),
                       "adaptive_avg_pool2d_1x1: argument 'x' must be 4-D [N, C, H, W], got f32 [2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(global_avg_pool(zeros({1, 2, 0, 3})),
                       "adaptive_avg_pool2d_1x1: input [1, 2, 0, 3] has an empty spatial plane (H or W is 0)", Error);
}
