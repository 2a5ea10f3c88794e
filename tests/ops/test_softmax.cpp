// log_softmax / softmax: op-harness cases against the per-row formula (narrow and wide rows, logits around
// ±1000, rows holding NaN or ±inf), plus hand values, stability at ±1000, the NaN/inf rules, the backward
// formula and argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

namespace {

// Naive log-softmax without the max shift (fine for the moderate values it is given).
std::vector<double> naive_log_softmax(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += std::exp(x[size_t(r * cols + c)]);
    for (int64_t c = 0; c < cols; ++c) y[size_t(r * cols + c)] = x[size_t(r * cols + c)] - std::log(s);
  }
  return y;
}

// The per-row formula shifted by the row's maximum (so that logits of ±1000 stay finite), with its
// gradients: log_softmax dx = g − p·Σg, softmax dx = p ⊙ (g − ⟨p, g⟩), p = softmax(x).
test::Oracle softmax_oracle(bool log_space) {
  return [log_space](const std::vector<Tensor>& in, const Tensor& g) {
    const int64_t rows = in[0].size(0), cols = in[0].size(1);
    const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
    Expected e{std::vector<double>(x.size()), {std::vector<double>(x.size())}};
    for (int64_t r = 0; r < rows; ++r) {
      const size_t row = size_t(r * cols);
      double m = x[row];
      for (int64_t c = 1; c < cols; ++c) m = std::max(m, x[row + size_t(c)]);
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += std::exp(x[row + size_t(c)] - m);
      const double lse = m + std::log(s);
      double g_sum = 0, pg = 0;
      for (int64_t c = 0; c < cols; ++c) {
        g_sum += gv[row + size_t(c)];
        pg += std::exp(x[row + size_t(c)] - lse) * gv[row + size_t(c)];
      }
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = row + size_t(c);
        const double p = std::exp(x[i] - lse);
        e.out[i] = log_space ? x[i] - lse : p;
        e.grads[0][i] = log_space ? gv[i] - p * g_sum : p * (gv[i] - pg);
      }
    }
    return e;
  };
}

// Both devices shift by the same maximum and sum in double; only the order of the additions differs.
const Tolerance kTol32{1e-5, 1e-5}, kTol64{1e-12, 1e-12};

// Central differences cost one forward per input element, and over thousands of outputs their rounding
// noise reaches the gradcheck's tolerance: larger cases are compared, not gradchecked.
constexpr int64_t kGradcheckLimit = 512;

Tensor log_softmax_of(const std::vector<Tensor>& v) { return log_softmax(v[0]); }
Tensor softmax_of(const std::vector<Tensor>& v) { return softmax(v[0]); }

std::vector<OpCase> softmax_cases() {
  std::vector<OpCase> cases;
  // Against the formula at ±6: one class, one row, and a batch of wide rows.
  for (const Shape& shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 3}, Shape{300, 129}}) {
    cases.push_back({.name = "log_softmax " + shape_str(shape) + " in [-6, 6)",
                     .inputs = [shape](DType d) {
                       return std::vector<Tensor>{random_f64(shape, 11, -6, 6).to(d).requires_grad_()};
                     },
                     .op = log_softmax_of,
                     .oracle = softmax_oracle(true),
                     .oracle_f32 = {2e-6, 1e-6},
                     .oracle_f64 = {1e-13, 1e-13},
                     .gradcheck = shape_numel(shape) <= kGradcheckLimit,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
  }
  for (const Shape& shape : {Shape{1, 1}, Shape{1, 5}, Shape{3, 7}, Shape{4, 2}, Shape{2, 16}}) {
    const auto inputs = [shape](DType d) { return std::vector<Tensor>{random_f64(shape, 21, -3, 3).to(d).requires_grad_()}; };
    cases.push_back({.name = "log_softmax " + shape_str(shape), .inputs = inputs, .op = log_softmax_of,
                     .oracle = softmax_oracle(true), .parity_f32 = kTol32, .parity_f64 = kTol64});
    cases.push_back({.name = "softmax " + shape_str(shape), .inputs = inputs, .op = softmax_of,
                     .oracle = softmax_oracle(false), .parity_f32 = kTol32, .parity_f64 = kTol64});
  }
  // Large shifted logits: the gradient is that of the unshifted ones.
  cases.push_back({.name = "log_softmax [3, 5] + 1000",
                   .inputs = [](DType d) {
                     Tensor x = add_scalar(random_f64({3, 5}, 22, -3, 3), 1000);
                     return std::vector<Tensor>{x.to(d).detach().requires_grad_()};
                   },
                   .op = log_softmax_of,
                   .oracle = softmax_oracle(true),
                   .parity_f32 = kTol32,
                   .parity_f64 = kTol64});
  // Narrow rows (a warp per row on CUDA) and wide ones (a block per row: 513, 1000, 11000, 100003
  // columns), batch 1.
  uint64_t seed = 600;
  for (const Shape& shape : {Shape{1, 1}, Shape{1, 10}, Shape{7, 33}, Shape{5, 512}, Shape{5, 513}, Shape{64, 1000},
                             Shape{3, 11000}, Shape{300, 17}, Shape{2, 100003}}) {
    const uint64_t s = ++seed;
    const auto inputs = [shape, s](DType d) {
      return std::vector<Tensor>{random_tensor(shape, d, s, -4.0, 4.0).requires_grad_()};
    };
    const bool small = shape_numel(shape) <= kGradcheckLimit;
    cases.push_back({.name = "log_softmax " + shape_str(shape) + " in [-4, 4)", .inputs = inputs, .op = log_softmax_of,
                     .oracle = softmax_oracle(true), .gradcheck = small, .parity_f32 = kTol32, .parity_f64 = kTol64});
    cases.push_back({.name = "softmax " + shape_str(shape) + " in [-4, 4)", .inputs = inputs, .op = softmax_of,
                     .oracle = softmax_oracle(false), .gradcheck = small, .parity_f32 = kTol32, .parity_f64 = kTol64});
  }
  // Logits around ±1000: lse (double on every device) near 1000 is known to about an ulp of 1000, 1e-13,
  // which the outputs inherit; f32 outputs as large as -2000 round to 1e-4. Central differences of outputs
  // that large carry rounding noise above the gradcheck's tolerance (the [3, 5] + 1000 case above is
  // gradchecked).
  seed = 700;
  for (const Shape& shape : {Shape{4, 10}, Shape{8, 1000}, Shape{2, 11000}}) {
    for (auto [low, high] : {std::pair{995.0, 1005.0}, std::pair{-1005.0, -995.0}, std::pair{-1000.0, 1000.0}}) {
      const uint64_t s = ++seed;
      cases.push_back({.name = cat("log_softmax ", shape_str(shape), " in [", low, ", ", high, ")"),
                       .inputs = [shape, s, low = low, high = high](DType d) {
                         return std::vector<Tensor>{random_tensor(shape, d, s, low, high).requires_grad_()};
                       },
                       .op = log_softmax_of,
                       .oracle = softmax_oracle(true),
                       .gradcheck = false,
                       .parity_f32 = {1e-4, 1e-5},
                       .parity_f64 = {1e-10, 1e-12}});
    }
  }
  // Rows holding a NaN, a +inf, one -inf entry (finite elsewhere), all -inf, and an ordinary row; a warp
  // per row, then a block per row. The formula has no NaN rule (the CPU's is asserted below, the devices
  // must agree with it), and NaN is not differentiable.
  for (int64_t cols : {int64_t(5), int64_t(600)}) {
    cases.push_back({.name = cat("log_softmax NaN/inf rows [5, ", cols, "]"),
                     .inputs = [cols](DType d) {
                       std::vector<double> v = random_tensor({5, cols}, DType::f64, 800 + uint64_t(cols)).to_vector();
                       v[size_t(0 * cols + cols / 2)] = NAN;
                       v[size_t(1 * cols + 1)] = INFINITY;
                       v[size_t(2 * cols + cols - 1)] = -INFINITY;
                       for (int64_t c = 0; c < cols; ++c) v[size_t(3 * cols + c)] = -INFINITY;
                       return std::vector<Tensor>{from_vector(v, {5, cols}, d).requires_grad_()};
                     },
                     .op = log_softmax_of,
                     .gradcheck = false,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
  }
  return cases;
}

}  // namespace

TEST_CASE("softmax: op harness") { test::run_op_cases("softmax", softmax_cases()); }

TEST_CASE("log_softmax hand value; softmax rows sum to 1") {
  // Hand value: log_softmax([1, 2, 3]) = [1, 2, 3] − log(e + e² + e³).
  Tensor x = from_vector({1, 2, 3}, {1, 3}, DType::f64);
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  CHECK_CLOSE(log_softmax(x).to_vector(), std::vector<double>({1 - lse, 2 - lse, 3 - lse}), 1e-15, 1e-15);

  for (Shape shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 3}, Shape{300, 129}}) {
    Tensor p = softmax(random_f64(shape, 11, -6, 6));
    std::vector<double> row_sums = sum(p, {1}).to_vector();
    CHECK_CLOSE(row_sums, std::vector<double>(size_t(shape[0]), 1.0), 1e-13, 0);
  }
  CHECK(log_softmax(zeros({1, 1})).to_vector() == std::vector<double>{0.0});
}

TEST_CASE("log_softmax is stable for logits of ±1000") {
  // A shift leaves log-softmax unchanged: [1000, 1001, 1002] and [-1002, -1001, -1000] give the values of
  // [0, 1, 2] (and its mirror); without the max subtraction exp would overflow or underflow to 0.
  double lse012 = std::log(1 + std::exp(1.0) + std::exp(2.0));
  std::vector<double> expected = {-lse012, 1 - lse012, 2 - lse012};
  for (DType t : {DType::f32, DType::f64}) {
    double tol = t == DType::f32 ? 1e-6 : 1e-12;  // the inputs are exact; only the output is rounded
    CHECK_CLOSE(log_softmax(from_vector({1000, 1001, 1002}, {1, 3}, t)).to_vector(), expected, tol, 0);
    CHECK_CLOSE(log_softmax(from_vector({-1002, -1001, -1000}, {1, 3}, t)).to_vector(), expected, tol, 0);
    std::vector<double> wide = log_softmax(from_vector({1000, -1000}, {1, 2}, t)).to_vector();
    CHECK(wide[0] == 0.0);
    CHECK(wide[1] == -2000.0);
  }
}

TEST_CASE("NaN and +inf in a row give NaN in that row only") {
  Tensor x = from_vector({1, NAN, 3, 0, 1, 2, 1, INFINITY, 0}, {3, 3}, DType::f64);
  std::vector<double> y = log_softmax(x).to_vector();
  for (int c = 0; c < 3; ++c) CHECK(std::isnan(y[size_t(c)]));
  CHECK_CLOSE(std::vector<double>(y.begin() + 3, y.begin() + 6), naive_log_softmax({0, 1, 2}, 1, 3), 1e-15, 0);
  for (int c = 6; c < 9; ++c) CHECK(std::isnan(y[size_t(c)]));
  // −inf is an ordinary impossible class: log-probability −inf, the others unaffected.
  std::vector<double> z = log_softmax(from_vector({0, -INFINITY}, {1, 2}, DType::f64)).to_vector();
  CHECK(z[0] == 0.0);
  CHECK(z[1] == -INFINITY);
}

TEST_CASE("log_softmax backward is g − softmax·Σg per row") {
  Tensor x = from_vector({0, std::log(3.0)}, {1, 2}, DType::f64).requires_grad_();  // softmax = [1/4, 3/4]
  Tensor y = log_softmax(x);
  backward(y, from_vector({1, 2}, {1, 2}, DType::f64));
  CHECK_CLOSE(x.grad().to_vector(), std::vector<double>({1 - 0.25 * 3, 2 - 0.75 * 3}), 1e-15, 0);
}

TEST_CASE("log_softmax bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(log_softmax(zeros({3})), "log_softmax: argument 'x' must be 2-D, got f32 [3] on cpu", Error);
  CHECK_THROWS_WITH_AS(log_softmax(zeros({2, 2}, DType::i32)),
                       "log_softmax: argument 'x' must be f32 or f64, got i32 [2, 2] on cpu", Error);
  CHECK_THROWS_WITH_AS(softmax(zeros({1, 2, 3})), "softmax: argument 'x' must be 2-D, got f32 [1, 2, 3] on cpu",
                       Error);
}
