// log_softmax / softmax: values against a naive per-row formula, stability at ±1000, NaN propagation,
// f64 gradient checks and argument errors.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/softmax.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

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
}  // namespace

TEST_CASE("log_softmax matches the per-row formula in f32 and f64") {
  // Hand value: log_softmax([1, 2, 3]) = [1, 2, 3] − log(e + e² + e³).
  Tensor x = from_vector({1, 2, 3}, {1, 3}, DType::f64);
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  CHECK_CLOSE(log_softmax(x).to_vector(), std::vector<double>({1 - lse, 2 - lse, 3 - lse}), 1e-15, 1e-15);

  for (Shape shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 3}, Shape{300, 129}}) {
    Tensor a = random_f64(shape, 11, -6, 6);
    std::vector<double> expected = naive_log_softmax(a.to_vector(), shape[0], shape[1]);
    CHECK_CLOSE(log_softmax(a).to_vector(), expected, 1e-13, 1e-13);
    CHECK_CLOSE(log_softmax(a.to(DType::f32)).to_vector(), expected, 2e-6, 1e-6);
    // softmax rows are probabilities
    Tensor p = softmax(a);
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

TEST_CASE("gradients of log_softmax and softmax (f64 central differences)") {
  for (Shape shape : {Shape{1, 1}, Shape{1, 5}, Shape{3, 7}, Shape{4, 2}, Shape{2, 16}}) {
    Tensor x = random_f64(shape, 21, -3, 3).requires_grad_();
    std::string s = shape_str(shape);
    CHECK_GRADCHECK("log_softmax " + s, [](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {x});
    CHECK_GRADCHECK("softmax " + s, [](const std::vector<Tensor>& v) { return softmax(v[0]); }, {x});
  }
  // Large shifted logits: the gradient is that of the unshifted ones.
  Tensor big = add_scalar(random_f64({3, 5}, 22, -3, 3), 1000).detach().requires_grad_();
  CHECK_GRADCHECK("log_softmax +1000", [](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {big});
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
