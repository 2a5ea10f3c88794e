// l2_normalize: op-harness cases against the per-row formula (narrow and wide rows, rows on both sides of
// the eps clamp, zero rows, a norm exactly at eps), plus hand values, the clamp's gradient by hand, and
// argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/l2_normalize.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

namespace {

// y[n, :] = x[n, :] / max(‖x[n, :]‖, eps), and its gradient: with r = ‖x[n, :]‖, (g − y·⟨y, g⟩) / r where
// r >= eps, g / eps where r < eps.
test::Oracle l2_normalize_oracle(double eps) {
  return [eps](const std::vector<Tensor>& in, const Tensor& g) {
    const int64_t rows = in[0].size(0), cols = in[0].size(1);
    const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
    Expected e{std::vector<double>(x.size()), {std::vector<double>(x.size())}};
    for (int64_t r = 0; r < rows; ++r) {
      const size_t row = size_t(r * cols);
      double sq = 0;
      for (int64_t c = 0; c < cols; ++c) sq += x[row + size_t(c)] * x[row + size_t(c)];
      const double norm = std::sqrt(sq), denom = std::max(norm, eps);
      double yg = 0;
      for (int64_t c = 0; c < cols; ++c) {
        e.out[row + size_t(c)] = x[row + size_t(c)] / denom;
        yg += e.out[row + size_t(c)] * gv[row + size_t(c)];
      }
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = row + size_t(c);
        e.grads[0][i] = norm >= eps ? (gv[i] - e.out[i] * yg) / norm : gv[i] / eps;
      }
    }
    return e;
  };
}

// Norms and dot products in double on every device; only the order of the additions differs.
const Tolerance kTol32{1e-5, 1e-5}, kTol64{1e-12, 1e-12};

// Central differences cost one forward per input element: larger cases are compared, not gradchecked.
constexpr int64_t kGradcheckLimit = 4096;

auto normalize_with(double eps) {
  return [eps](const std::vector<Tensor>& v) { return l2_normalize(v[0], eps); };
}

std::vector<OpCase> l2_normalize_cases() {
  std::vector<OpCase> cases;
  // Against the formula in [-2, 2): one element, one row, a batch of wide rows.
  for (const Shape& shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 3}, Shape{256, 257}}) {
    cases.push_back({.name = "l2_normalize " + shape_str(shape) + " in [-2, 2)",
                     .inputs = [shape](DType d) {
                       return std::vector<Tensor>{random_f64(shape, 51, -2, 2).to(d).requires_grad_()};
                     },
                     .op = normalize_with(1e-12),
                     .oracle = l2_normalize_oracle(1e-12),
                     .oracle_f32 = {1e-7, 1e-6},
                     .oracle_f64 = {1e-15, 1e-14},
                     .gradcheck = shape_numel(shape) <= kGradcheckLimit,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
  }
  // Mixed signs, |x| in [0.2, 1): single elements, single columns, a few rows.
  for (const Shape& shape : {Shape{1, 3}, Shape{1, 1}, Shape{4, 5}, Shape{3, 1}, Shape{2, 16}}) {
    cases.push_back({.name = "l2_normalize " + shape_str(shape) + " mixed signs",
                     .inputs = [shape](DType d) {
                       Tensor x = mul(random_f64(shape, 61, 0.2, 1.0), sign(random_f64(shape, 62)));
                       return std::vector<Tensor>{x.to(d).detach().requires_grad_()};
                     },
                     .op = normalize_with(1e-12),
                     .oracle = l2_normalize_oracle(1e-12),
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
  }
  // Rows on both sides of the clamp: eps = 1, row norms 0.5 (clamped: y = x) and 2 (normalised).
  cases.push_back({.name = "l2_normalize eps=1 mixed rows",
                   .inputs = [](DType d) {
                     return std::vector<Tensor>{from_vector({0.3, -0.4, 0.0, 1.2, 1.6, 0.0}, {2, 3}, d).requires_grad_()};
                   },
                   .op = normalize_with(1.0),
                   .oracle = l2_normalize_oracle(1.0),
                   .parity_f32 = kTol32,
                   .parity_f64 = kTol64});
  // Narrow rows (a warp per row on CUDA) and wide ones (a block per row), batch 1, many short rows.
  uint64_t seed = 1300;
  for (const Shape& shape : {Shape{1, 1}, Shape{7, 33}, Shape{64, 128}, Shape{3, 512}, Shape{3, 513}, Shape{5, 2048},
                             Shape{1, 11000}, Shape{2, 100003}, Shape{1000, 3}}) {
    const uint64_t s = ++seed;
    cases.push_back({.name = "l2_normalize " + shape_str(shape),
                     .inputs = [shape, s](DType d) {
                       return std::vector<Tensor>{random_tensor(shape, d, s).requires_grad_()};
                     },
                     .op = normalize_with(1e-12),
                     .oracle = l2_normalize_oracle(1e-12),
                     .gradcheck = shape_numel(shape) <= kGradcheckLimit,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
  }
  // Rows alternate between tiny (norm far below eps = 0.1) and ordinary; row 2 is all zeros.
  seed = 1400;
  for (int64_t cols : {int64_t(4), int64_t(300), int64_t(1000)}) {
    const uint64_t s = ++seed;
    const auto inputs = [cols, s](DType d) {
      std::vector<double> v = random_tensor({6, cols}, DType::f64, s).to_vector();
      for (int64_t r = 0; r < 6; r += 2)
        for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] *= 1e-4;
      for (int64_t c = 0; c < cols; ++c) v[size_t(2 * cols + c)] = 0;
      return std::vector<Tensor>{from_vector(v, {6, cols}, d).requires_grad_()};
    };
    cases.push_back({.name = cat("l2_normalize small rows [6, ", cols, "] eps 0.1"),
                     .inputs = inputs,
                     .op = normalize_with(0.1),
                     .oracle = l2_normalize_oracle(0.1),
                     .gradcheck = 6 * cols <= kGradcheckLimit,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64});
    // With eps = 1e-12 the tiny rows take the 1/norm branch: their gradients are ~1e4 times larger, and so
    // is the absolute effect of a last-bit difference in y or the norm. The zero row sits on the clamp's
    // kink (any step leaves it): no gradcheck.
    cases.push_back({.name = cat("l2_normalize small rows [6, ", cols, "] eps 1e-12"),
                     .inputs = inputs,
                     .op = normalize_with(1e-12),
                     .oracle = l2_normalize_oracle(1e-12),
                     .gradcheck = false,
                     .parity_f32 = kTol32,
                     .parity_f64 = kTol64,
                     .parity_grad_f32 = Tolerance{kTol32.atol * 1e4, kTol32.rtol},
                     .parity_grad_f64 = Tolerance{kTol64.atol * 1e4, kTol64.rtol}});
  }
  // ‖(3, 4)‖ = 5 exactly: at norm = eps the gradient takes the (g − y⟨y, g⟩)/norm branch on every device.
  // Row 0 sits on the clamp's kink: no gradcheck.
  cases.push_back({.name = "l2_normalize norm = eps [2, 2] eps 5",
                   .inputs = [](DType d) { return std::vector<Tensor>{from_vector({3, 4, 0, 1}, {2, 2}, d).requires_grad_()}; },
                   .op = normalize_with(5.0),
                   .oracle = l2_normalize_oracle(5.0),
                   .gradcheck = false,
                   .parity_f32 = kTol32,
                   .parity_f64 = kTol64});
  return cases;
}

}  // namespace

TEST_CASE("l2_normalize: op harness") { test::run_op_cases("l2_normalize", l2_normalize_cases()); }

TEST_CASE("l2_normalize hand values and the eps clamp") {
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = dt == DType::f32 ? 1e-7 : 1e-16;
    CHECK_CLOSE(l2_normalize(from_vector({3, 4, 0, -2}, {2, 2}, dt)).to_vector(),
                std::vector<double>({0.6, 0.8, 0, -1}), tol, tol);
    CHECK(l2_normalize(zeros({1, 3}, dt)).to_vector() == std::vector<double>{0, 0, 0});  // a zero row stays zero
    // ‖x‖ = 1e-13 < eps = 1e-12: divided by eps instead.
    CHECK_CLOSE(l2_normalize(from_vector({1e-13, 0}, {1, 2}, dt)).to_vector(), std::vector<double>({0.1, 0}), 0,
                1e-6);
    // A custom eps: ‖x‖ = 5 < 10.
    CHECK_CLOSE(l2_normalize(from_vector({3, 4}, {1, 2}, dt), 10.0).to_vector(), std::vector<double>({0.3, 0.4}),
                tol, tol);
  }
}

TEST_CASE("l2_normalize gradient on both sides of the clamp, by hand") {
  // eps = 1, row norms 0.5 (clamped: y = x) and 2 (normalised).
  Tensor x = from_vector({0.3, -0.4, 0.0, 1.2, 1.6, 0.0}, {2, 3}, DType::f64).requires_grad_();
  Tensor y = l2_normalize(x, 1.0);
  backward(y, ones({2, 3}, DType::f64));
  // Clamped row: dx = g / eps = 1. Normalised row y = [0.6, 0.8, 0]: dx = (g − y·Σy) / 2.
  CHECK_CLOSE(x.grad().to_vector(), std::vector<double>({1, 1, 1, (1 - 0.6 * 1.4) / 2, (1 - 0.8 * 1.4) / 2, 0.5}),
              1e-15, 0);
}

TEST_CASE("l2_normalize bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(l2_normalize(zeros({2, 3}), -1.0), "l2_normalize: eps must be >= 0, got -1", Error);
  CHECK_THROWS_WITH_AS(l2_normalize(zeros({2, 3, 4})), "l2_normalize: argument 'x' must be 2-D, got f32 [2, 3, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(l2_normalize(zeros({2, 3}, DType::u8)),
                       "l2_normalize: argument 'x' must be f32 or f64, got u8 [2, 3] on cpu", Error);
}
