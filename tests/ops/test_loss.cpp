// cross_entropy: hand-computed values with and without label smoothing, a naive reference on random
// batches, the (p − q)/N gradient, stability at ±1000, NaN/inf propagation, f64 gradient checks, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {
Tensor targets_of(const std::vector<double>& t) { return from_vector(t, {int64_t(t.size())}, DType::i64); }

// −(1/N) Σ_n Σ_c q[n, c] log p[n, c], straight from the definition, in double.
double naive_cross_entropy(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t C, double eps) {
  int64_t N = int64_t(t.size());
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const double* row = &x[size_t(n * C)];
    double m = row[0];
    for (int64_t c = 1; c < C; ++c) m = std::max(m, row[c]);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(row[c] - m);
    double lse = m + std::log(s);
    for (int64_t c = 0; c < C; ++c) {
      double q = (c == t[size_t(n)] ? 1.0 - eps : 0.0) + eps / double(C);
      total -= q * (row[c] - lse);
    }
  }
  return total / double(N);
}

std::vector<int64_t> random_targets(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<double> u = random_f64({n}, seed, 0, double(classes)).to_vector();
  std::vector<int64_t> t;
  for (double v : u) t.push_back(int64_t(v));
  return t;
}

Tensor to_tensor(const std::vector<int64_t>& t) { return targets_of(std::vector<double>(t.begin(), t.end())); }
}  // namespace

TEST_CASE("cross_entropy hand values") {
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = dt == DType::f32 ? 1e-6 : 1e-15;
    Tensor x = from_vector({1, 2, 3}, {1, 3}, dt);
    Tensor loss = cross_entropy(x, targets_of({2}));
    CHECK(loss.shape() == Shape{});
    CHECK(loss.dtype() == dt);
    CHECK(loss.item() == doctest::Approx(lse - 3).epsilon(tol));
    // ε = 0.1, C = 3: q = [0.1/3, 0.1/3, 0.9 + 0.1/3], Σ q·x = 0.2 + 2.7 = 2.9, so loss = lse − 2.9.
    CHECK(cross_entropy(x, targets_of({2}), 0.1).item() == doctest::Approx(lse - 2.9).epsilon(tol));
    // ε = 1: uniform q, loss = lse − mean(x) = lse − 2, whatever the target.
    CHECK(cross_entropy(x, targets_of({0}), 1.0).item() == doctest::Approx(lse - 2).epsilon(tol));
    // A batch is the mean of its rows: row 2 is [0, 0], target 1, loss log 2.
    Tensor two = from_vector({1, 2, 3, 0, 0, 0}, {2, 3}, dt);
    CHECK(cross_entropy(two, targets_of({2, 1})).item() ==
          doctest::Approx(((lse - 3) + std::log(3.0)) / 2).epsilon(tol));
  }
}

TEST_CASE("cross_entropy matches the definition on random batches") {
  struct Case { int64_t n, c; double eps; };
  for (Case k : {Case{1, 1, 0.0}, Case{1, 5, 0.1}, Case{7, 3, 0.0}, Case{16, 11, 0.2}, Case{300, 1000, 0.1}}) {
    Tensor x = random_f64({k.n, k.c}, 31, -8, 8);
    std::vector<int64_t> t = random_targets(k.n, k.c, 32);
    double expected = naive_cross_entropy(x.to_vector(), t, k.c, k.eps);
    INFO("N ", k.n, ", C ", k.c, ", eps ", k.eps);
    CHECK(cross_entropy(x, to_tensor(t), k.eps).item() == doctest::Approx(expected).epsilon(1e-12));
    CHECK(cross_entropy(x.to(DType::f32), to_tensor(t), k.eps).item() == doctest::Approx(expected).epsilon(1e-5));
  }
}

TEST_CASE("cross_entropy gradient is (softmax − q) / N") {
  // Row 0: logits [0, log 3] → p = [1/4, 3/4], target 1; row 1: [0, 0] → p = [1/2, 1/2], target 0. ε = 0.2.
  Tensor x = from_vector({0, std::log(3.0), 0, 0}, {2, 2}, DType::f64).requires_grad_();
  Tensor loss = cross_entropy(x, targets_of({1, 0}), 0.2);
  backward(loss);
  double off = 0.1, on = 0.9;  // q for C = 2, ε = 0.2
  std::vector<double> expected = {(0.25 - off) / 2, (0.75 - on) / 2, (0.5 - on) / 2, (0.5 - off) / 2};
  CHECK_CLOSE(x.grad().to_vector(), expected, 1e-15, 0);
  // The upstream gradient scales it.
  Tensor x2 = from_vector({0, std::log(3.0), 0, 0}, {2, 2}, DType::f64).requires_grad_();
  backward(mul_scalar(cross_entropy(x2, targets_of({1, 0}), 0.2), 3.0));
  for (double& e : expected) e *= 3;
  CHECK_CLOSE(x2.grad().to_vector(), expected, 1e-15, 0);
}

TEST_CASE("cross_entropy is stable for logits of ±1000") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = from_vector({1000, 0, -1000, 1000, 1000, 1000}, {2, 3}, dt).requires_grad_();
    // Row 0, target 1: lse = 1000, loss 1000. Row 1, target 2: three equal logits, loss log 3.
    Tensor loss = cross_entropy(x, targets_of({1, 2}));
    CHECK(loss.item() == doctest::Approx((1000 + std::log(3.0)) / 2).epsilon(1e-7));
    backward(loss);
    std::vector<double> g = x.grad().to_vector();
    std::vector<double> expected = {0.5, -0.5, 0, 1.0 / 6, 1.0 / 6, -1.0 / 3};
    CHECK_CLOSE(g, expected, 1e-7, 0);
    CHECK(cross_entropy(from_vector({-1000, -1000}, {1, 2}, dt), targets_of({0}), 0.1).item() ==
          doctest::Approx(std::log(2.0)).epsilon(1e-7));
  }
}

TEST_CASE("NaN and inf in logits propagate without a crash") {
  Tensor x = from_vector({0, NAN, 1, 2}, {2, 2}, DType::f64).requires_grad_();
  Tensor loss = cross_entropy(x, targets_of({0, 1}));
  CHECK(std::isnan(loss.item()));
  backward(loss);
  std::vector<double> g = x.grad().to_vector();
  CHECK(std::isnan(g[0]));
  CHECK(std::isnan(g[1]));
  CHECK_FALSE(std::isnan(g[2]));  // the clean row keeps a finite gradient
  CHECK(std::isnan(cross_entropy(from_vector({INFINITY, 0}, {1, 2}, DType::f32), targets_of({0})).item()));
  // −inf on a non-target class is an impossible class: finite loss without smoothing, +inf with it.
  Tensor neg_inf = from_vector({0, -INFINITY}, {1, 2}, DType::f64);
  CHECK(cross_entropy(neg_inf, targets_of({0})).item() == 0.0);
  CHECK(cross_entropy(neg_inf, targets_of({0}), 0.1).item() == INFINITY);
}

TEST_CASE("gradients of cross_entropy (f64 central differences)") {
  struct Case { int64_t n, c; double eps; };
  for (Case k : {Case{1, 1, 0.0}, Case{1, 5, 0.0}, Case{1, 5, 0.1}, Case{3, 7, 0.0}, Case{3, 7, 0.25},
                 Case{8, 3, 1.0}, Case{5, 2, 0.1}}) {
    Tensor x = random_f64({k.n, k.c}, 41, -3, 3).requires_grad_();
    Tensor t = to_tensor(random_targets(k.n, k.c, 42));
    double eps = k.eps;
    CHECK_GRADCHECK(cat("cross_entropy N=", k.n, " C=", k.c, " eps=", k.eps),
                    [&](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, eps); }, {x});
  }
}

TEST_CASE("cross_entropy bad input names the op, the index and the value") {
  Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets_of({0, 3})), "cross_entropy: target 3 at index 1 is out of range [0, 3)",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets_of({-1, 0})),
                       "cross_entropy: target -1 at index 0 is out of range [0, 3)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2})), "cross_entropy: argument 'targets' must be i64, got f32 [2] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets_of({0, 1, 2})),
                       "cross_entropy: targets must have shape [2] to match logits f32 [2, 3] on cpu, got i64 [3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets_of({0, 1}), 1.5), "cross_entropy: label_smoothing must be in [0, 1], got 1.5",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets_of({0, 1}), -0.1),
                       "cross_entropy: label_smoothing must be in [0, 1], got -0.1", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({6}), targets_of({0})),
                       "cross_entropy: argument 'logits' must be 2-D, got f32 [6] on cpu", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}, DType::i64), targets_of({0, 1})),
                       "cross_entropy: argument 'logits' must be f32 or f64, got i64 [2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({0, 3}), targets_of({})),
                       "cross_entropy: logits must have at least one row and one class, got f32 [0, 3] on cpu", Error);
}
