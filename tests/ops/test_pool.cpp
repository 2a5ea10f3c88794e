// Pooling: max_pool2d forward and backward against naive loops written here (the ResNet stem pool
// k3 s2 p1, k2 s2, overlapping k3 s1, odd sizes, -inf padding, ties, NaN), adaptive/global average
// pooling values, gradients (f64 central differences, max-pool inputs without near-ties) and errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/autograd.h"
#include "engine/ops/pool.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {

struct PoolCase {
  Shape shape;
  int64_t kernel, stride, padding;
};

// The max-pool configurations under test: the stem pool, the common 2x2, heavy overlap, odd sizes.
const std::vector<PoolCase> kCases = {
    {{2, 2, 7, 9}, 3, 2, 1}, {{1, 3, 5, 5}, 3, 2, 1}, {{1, 1, 6, 6}, 3, 2, 1}, {{2, 3, 6, 8}, 2, 2, 0},
    {{1, 2, 5, 7}, 2, 2, 0}, {{1, 2, 5, 6}, 3, 1, 0}, {{3, 1, 4, 5}, 3, 3, 1}, {{1, 1, 1, 1}, 1, 1, 0},
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

}  // namespace

TEST_CASE("max_pool2d forward and backward match the definition") {
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const PoolCase& pc : kCases) {
      CAPTURE(shape_str(pc.shape));
      CAPTURE(pc.kernel);
      CAPTURE(pc.stride);
      CAPTURE(pc.padding);
      CAPTURE(dtype_name(dtype));
      // Values in [-2, -1]: were padding read as 0 instead of -inf, border outputs would be 0.
      std::vector<double> values = distinct_values(pc.shape, 71).to_vector();
      for (double& v : values) v = -2.0 + (v + 1.0) / 100.0;
      Tensor x = from_vector(values, pc.shape, dtype).requires_grad_();

      Tensor y = max_pool2d(x, pc.kernel, pc.stride, pc.padding);
      Tensor g = random_f64(y.shape(), 72).to(dtype);
      NaiveMaxPool ref = naive_max_pool(x, pc.kernel, pc.stride, pc.padding, g.to_vector());
      CHECK(y.shape() == ref.out_shape);
      CHECK(y.dtype() == dtype);
      CHECK(y.to_vector() == ref.y);  // a max is exact
      for (double v : y.to_vector()) CHECK(v < -1.0);
      backward(y, g);
      CHECK_CLOSE(x.grad().to_vector(), ref.grad_x, 1e-6, 1e-6);
    }
  }
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

TEST_CASE("gradients of max_pool2d (f64 central differences, inputs without near-ties)") {
  uint64_t seed = 80;
  for (const PoolCase& pc : kCases) {
    Tensor x = distinct_values(pc.shape, ++seed).requires_grad_();
    const std::string label =
        cat("max_pool2d ", shape_str(pc.shape), " k", pc.kernel, " s", pc.stride, " p", pc.padding);
    auto pool = [&](const std::vector<Tensor>& v) { return max_pool2d(v[0], pc.kernel, pc.stride, pc.padding); };
    CHECK_GRADCHECK(label, pool, std::vector<Tensor>{x});
  }
}

TEST_CASE("adaptive_avg_pool2d_1x1 and global_avg_pool average each plane") {
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 4, 1, 1}, Shape{3, 2, 7, 7}}) {
      CAPTURE(shape_str(shape));
      Tensor x = random_f64(shape, 91).to(dtype);
      const int64_t planes = shape[0] * shape[1], hw = shape[2] * shape[3];
      const std::vector<double> xv = x.to_vector();
      std::vector<double> want;
      for (int64_t q = 0; q < planes; ++q) {
        double sum = 0;
        for (int64_t i = 0; i < hw; ++i) sum += xv[size_t(q * hw + i)];
        want.push_back(sum / double(hw));
      }
      const double tol = dtype == DType::f64 ? 1e-14 : 1e-6;
      Tensor y = adaptive_avg_pool2d_1x1(x);
      CHECK(y.shape() == Shape{shape[0], shape[1], 1, 1});
      CHECK_CLOSE(y.to_vector(), want, tol, tol);
      Tensor f = global_avg_pool(x);
      CHECK(f.shape() == Shape{shape[0], shape[1]});
      CHECK_CLOSE(f.to_vector(), want, tol, tol);
    }
  }
  // Backward spreads g / (H·W) over the plane.
  Tensor x = random_f64({1, 2, 2, 2}, 92).requires_grad_();
  backward(adaptive_avg_pool2d_1x1(x), from_vector({4, -8}, {1, 2, 1, 1}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1, 1, -2, -2, -2, -2});
}

TEST_CASE("gradients of average pooling (f64 central differences)") {
  for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 4, 1, 1}, Shape{1, 2, 3, 3}}) {
    Tensor x = random_f64(shape, 93).requires_grad_();
    const std::string s = shape_str(shape);
    CHECK_GRADCHECK("adaptive_avg_pool2d_1x1 " + s,
                    [](const std::vector<Tensor>& v) { return adaptive_avg_pool2d_1x1(v[0]); },
                    std::vector<Tensor>{x});
    CHECK_GRADCHECK("global_avg_pool " + s, [](const std::vector<Tensor>& v) { return global_avg_pool(v[0]); },
                    std::vector<Tensor>{x});
  }
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
