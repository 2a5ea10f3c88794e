// l2_normalize: values against a naive per-row formula, the eps clamp (zero and tiny rows), f64 gradient
// checks on both sides of the clamp, and argument errors.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/l2_normalize.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {
std::vector<double> naive_l2_normalize(const std::vector<double>& x, int64_t rows, int64_t cols, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double sq = 0;
    for (int64_t c = 0; c < cols; ++c) sq += x[size_t(r * cols + c)] * x[size_t(r * cols + c)];
    double denom = std::max(std::sqrt(sq), eps);
    for (int64_t c = 0; c < cols; ++c) y[size_t(r * cols + c)] = x[size_t(r * cols + c)] / denom;
  }
  return y;
}
}  // namespace

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

TEST_CASE("l2_normalize matches the per-row formula") {
  for (Shape shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 3}, Shape{256, 257}}) {
    Tensor x = random_f64(shape, 51, -2, 2);
    std::vector<double> expected = naive_l2_normalize(x.to_vector(), shape[0], shape[1], 1e-12);
    CHECK_CLOSE(l2_normalize(x).to_vector(), expected, 1e-15, 1e-14);
    CHECK_CLOSE(l2_normalize(x.to(DType::f32)).to_vector(), expected, 1e-7, 1e-6);
  }
}

TEST_CASE("gradients of l2_normalize (f64 central differences)") {
  for (Shape shape : {Shape{1, 3}, Shape{1, 1}, Shape{4, 5}, Shape{3, 1}, Shape{2, 16}}) {
    Tensor x = random_f64(shape, 61, 0.2, 1.0);
    x = mul(x, sign(random_f64(shape, 62))).detach().requires_grad_();  // mixed signs, away from 0
    CHECK_GRADCHECK("l2_normalize " + shape_str(shape),
                    [](const std::vector<Tensor>& v) { return l2_normalize(v[0]); }, {x});
  }
  // Rows on both sides of the clamp: eps = 1, row norms 0.5 (clamped: y = x) and 2 (normalised).
  Tensor x = from_vector({0.3, -0.4, 0.0, 1.2, 1.6, 0.0}, {2, 3}, DType::f64).requires_grad_();
  CHECK_GRADCHECK("l2_normalize eps=1 mixed rows", [](const std::vector<Tensor>& v) { return l2_normalize(v[0], 1.0); },
                  {x});
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
