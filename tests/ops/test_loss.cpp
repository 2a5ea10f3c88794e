// cross_entropy: op-harness cases against the definition (1 to 11000 classes, label smoothing, logits around
// ±1000, NaN and -inf logits), plus hand values, the (p − q)/N gradient, stability at ±1000, the NaN/inf
// rules, errors, and device determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

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

// The loss by naive_cross_entropy and its gradient g·(p − q)/N, p the row's softmax (shifted by its max).
test::Oracle cross_entropy_oracle(std::vector<int64_t> targets, double eps) {
  return [targets, eps](const std::vector<Tensor>& in, const Tensor& g) {
    const int64_t N = in[0].size(0), C = in[0].size(1);
    const std::vector<double> x = in[0].to_vector();
    const double scale = g.item() / double(N);
    Expected e{{naive_cross_entropy(x, targets, C, eps)}, {std::vector<double>(x.size())}};
    for (int64_t n = 0; n < N; ++n) {
      const size_t row = size_t(n * C);
      double m = x[row];
      for (int64_t c = 1; c < C; ++c) m = std::max(m, x[row + size_t(c)]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(x[row + size_t(c)] - m);
      for (int64_t c = 0; c < C; ++c) {
        const double p = std::exp(x[row + size_t(c)] - m) / s;
        const double q = (c == targets[size_t(n)] ? 1.0 - eps : 0.0) + eps / double(C);
        e.grads[0][row + size_t(c)] = scale * (p - q);
      }
    }
    return e;
  };
}

// Central differences cost one forward per input element: larger cases are compared, not gradchecked.
constexpr int64_t kGradcheckLimit = 4096;

// A case whose gradients need their own device tolerance (sums over a broadcast or reduced operand).
void add_with_grad_tolerance(std::vector<OpCase>& cases, OpCase c, Tolerance grad_f32, Tolerance grad_f64) {
  c.parity_grad_f32 = grad_f32;
  c.parity_grad_f64 = grad_f64;
  cases.push_back(std::move(c));
}

// Row losses and lse are f64 on every device; the batch sum's order and the exp's last bit differ.
const Tolerance kLoss32{1e-5, 1e-5}, kLoss64{1e-12, 1e-12};
const Tolerance kGrad32{1e-8, 1e-5}, kGrad64{1e-14, 1e-12};

// A case of cross_entropy(logits, targets, eps). The targets (i64, no gradient) are fixed and handed to
// the op on the logits' device (gradcheck takes f64 inputs only, so they are not an input).
OpCase cross_entropy_case(std::string name, std::vector<int64_t> targets, double eps,
                          std::function<Tensor(DType)> logits) {
  const Tensor t = to_tensor(targets);
  return {.name = std::move(name),
          .inputs = [logits = std::move(logits)](DType d) { return std::vector<Tensor>{logits(d).requires_grad_()}; },
          .op = [t, eps](const std::vector<Tensor>& v) { return cross_entropy(v[0], t.to(v[0].device()), eps); },
          .oracle = cross_entropy_oracle(std::move(targets), eps),
          .parity_f32 = kLoss32,
          .parity_f64 = kLoss64};
}

std::vector<OpCase> cross_entropy_cases() {
  std::vector<OpCase> cases;
  struct Case {
    int64_t n, c;
    double eps;
  };
  // Against the definition at ±8, one class to a thousand.
  for (Case k : {Case{1, 1, 0.0}, Case{1, 5, 0.1}, Case{7, 3, 0.0}, Case{16, 11, 0.2}, Case{300, 1000, 0.1}}) {
    OpCase c = cross_entropy_case(cat("cross_entropy [", k.n, ", ", k.c, "] eps ", k.eps, " in [-8, 8)"),
                                  random_targets(k.n, k.c, 32), k.eps,
                                  [k](DType d) { return random_f64({k.n, k.c}, 31, -8, 8).to(d); });
    c.oracle_f32 = {1e-5, 1e-5};
    c.oracle_f64 = {1e-12, 1e-12};
    c.gradcheck = k.n * k.c <= kGradcheckLimit;
    add_with_grad_tolerance(cases, std::move(c), kGrad32, kGrad64);
  }
  // Gradients at ±3, smoothing from none to uniform (eps = 1).
  for (Case k : {Case{1, 1, 0.0}, Case{1, 5, 0.0}, Case{1, 5, 0.1}, Case{3, 7, 0.0}, Case{3, 7, 0.25},
                 Case{8, 3, 1.0}, Case{5, 2, 0.1}}) {
    add_with_grad_tolerance(cases,
                            cross_entropy_case(cat("cross_entropy [", k.n, ", ", k.c, "] eps ", k.eps, " in [-3, 3)"),
                                               random_targets(k.n, k.c, 42), k.eps,
                                               [k](DType d) { return random_f64({k.n, k.c}, 41, -3, 3).to(d); }),
                            kGrad32, kGrad64);
  }
  // 1 to 11000 classes (a warp or a block per row on CUDA), batch 1, smoothing 0 and 0.1.
  uint64_t seed = 900;
  for (auto [batch, classes] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 10}, {7, 10}, {33, 1000}, {256, 1000}, {3, 513}, {2, 11000}, {1, 11000}}) {
    for (double eps : {0.0, 0.1}) {
      const uint64_t s = ++seed;
      OpCase c = cross_entropy_case(cat("cross_entropy [", batch, ", ", classes, "] eps ", eps, " in [-5, 5)"),
                                    random_targets(batch, classes, ++seed), eps,
                                    [shape = Shape{batch, classes}, s](DType d) {
                                      return random_tensor(shape, d, s, -5.0, 5.0);
                                    });
      c.gradcheck = batch * classes <= kGradcheckLimit;
      add_with_grad_tolerance(cases, std::move(c), kGrad32, kGrad64);
    }
  }
  // Logits around ±1000: lse near 1000 is known to an ulp there (~1e-13 in f64), which both the row losses
  // (differences of numbers near 1000) and the probabilities exp(x − lse) inherit.
  seed = 1000;
  for (auto [low, high] : {std::pair{995.0, 1005.0}, std::pair{-1005.0, -995.0}, std::pair{-1000.0, 1000.0}}) {
    for (double eps : {0.0, 0.1}) {
      for (int64_t classes : {int64_t(10), int64_t(1000)}) {
        const uint64_t s = ++seed;
        OpCase c = cross_entropy_case(cat("cross_entropy [8, ", classes, "] eps ", eps, " in [", low, ", ", high, ")"),
                                      random_targets(8, classes, ++seed), eps,
                                      [classes, s, low = low, high = high](DType d) {
                                        return random_tensor({8, classes}, d, s, low, high);
                                      });
        c.gradcheck = 8 * classes <= kGradcheckLimit;
        c.parity_f32 = {1e-4, 1e-5};
        c.parity_f64 = {1e-10, 1e-12};
        add_with_grad_tolerance(cases, std::move(c), {1e-8, 1e-5}, {1e-12, 1e-10});
      }
    }
  }
  // Row 0: a −inf logit in a non-target class (finite loss at ε = 0, +inf at ε > 0); row 1: a NaN. The
  // definition has no NaN rule (the CPU's is asserted below, the devices must agree with it), and neither
  // is differentiable.
  for (int64_t classes : {int64_t(6), int64_t(700)}) {
    for (double eps : {0.0, 0.1}) {
      OpCase c = cross_entropy_case(cat("cross_entropy NaN/-inf [3, ", classes, "] eps ", eps), {0, 1, classes - 1},
                                    eps, [classes](DType d) {
                                      std::vector<double> v =
                                          random_tensor({3, classes}, DType::f64, 1100 + uint64_t(classes)).to_vector();
                                      v[size_t(classes - 1)] = -INFINITY;
                                      v[size_t(classes + 2)] = NAN;
                                      return from_vector(v, {3, classes}, d);
                                    });
      c.oracle = {};
      c.gradcheck = false;
      add_with_grad_tolerance(cases, std::move(c), kGrad32, kGrad64);
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("loss: op harness") { test::run_op_cases("loss", cross_entropy_cases()); }

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

TEST_CASE("gpu: cross_entropy keeps the loss finite for a -inf logit in a non-target class without smoothing") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t classes : {int64_t(6), int64_t(700)}) {
      // The first row of the NaN/-inf case above: a −inf logit in a non-target class.
      std::vector<double> v = random_tensor({3, classes}, DType::f64, 1100 + uint64_t(classes)).to_vector();
      v[size_t(classes - 1)] = -INFINITY;
      v[size_t(classes + 2)] = NAN;
      Tensor logits = from_vector(v, {3, classes}, dt);
      Tensor targets = from_vector({0, 1, double(classes - 1)}, {3}, DType::i64);
      Tensor loss0 = cross_entropy(logits.slice(0, 1).to(cuda_device(0)), targets.slice(0, 1).to(cuda_device(0)), 0.0);
      CHECK(std::isfinite(loss0.item()));
    }
  }
}

TEST_CASE("gpu: cross_entropy gives the same bits on every run") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor logits = random_tensor({4096, 1000}, dt, 1200).to(cuda_device(0));
    Tensor targets = to_tensor(random_targets(4096, 1000, 1201)).to(cuda_device(0));
    const double first = cross_entropy(logits, targets, 0.1).item();
    for (int run = 0; run < 3; ++run) CHECK(cross_entropy(logits, targets, 0.1).item() == first);
  }
}
