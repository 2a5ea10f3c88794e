// matmul and linear (engine/ops/linear.h) as op-harness cases against naive loops (values and gradients,
// odd and blocked sizes, batch 1, ResNet's classifier, with and without bias, partial requires_grad), plus
// exact small values, empty operands, the accumulation formulas and the error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/linear.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

namespace {

// a [m, k] · b [k, n] by the definition, in double.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), out(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += av[size_t(i * k + p)] * bv[size_t(p * n + j)];
      out[size_t(i * n + j)] = s;
    }
  return out;
}

// x [N, in] · weight [out, in]ᵀ + bias, in double.
std::vector<double> naive_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t batch = x.size(0), in = x.size(1), out = w.size(0);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), bv, y(size_t(batch * out));
  if (bias.defined()) bv = bias.to_vector();
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias.defined() ? bv[size_t(o)] : 0.0;
      for (int64_t p = 0; p < in; ++p) s += xv[size_t(i * in + p)] * wv[size_t(o * in + p)];
      y[size_t(i * out + o)] = s;
    }
  return y;
}

// The gradients of sum(linear(x, w, b) ⊙ g), by the same loops: dx = g·w, dw = gᵀ·x, db = Σ_rows g; empty
// for an input that needs none. Loops ordered for contiguous inner access; each sum runs in index order.
Expected linear_oracle(const std::vector<Tensor>& in, const Tensor& g) {
  const Tensor& x = in[0];
  const Tensor& w = in[1];
  const Tensor bias = in.size() > 2 ? in[2] : Tensor();
  const int64_t batch = x.size(0), n_in = x.size(1), n_out = w.size(0);
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector(), gv = g.to_vector();
  Expected e{naive_linear(x, w, bias), std::vector<std::vector<double>>(in.size())};
  if (x.requires_grad()) {
    e.grads[0].assign(size_t(batch * n_in), 0.0);
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t p = 0; p < n_in; ++p)
          e.grads[0][size_t(i * n_in + p)] += gv[size_t(i * n_out + o)] * wv[size_t(o * n_in + p)];
  }
  if (w.requires_grad()) {
    e.grads[1].assign(size_t(n_out * n_in), 0.0);
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t p = 0; p < n_in; ++p)
          e.grads[1][size_t(o * n_in + p)] += gv[size_t(i * n_out + o)] * xv[size_t(i * n_in + p)];
  }
  if (bias.defined() && bias.requires_grad()) {
    e.grads[2].assign(size_t(n_out), 0.0);
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t o = 0; o < n_out; ++o) e.grads[2][size_t(o)] += gv[size_t(i * n_out + o)];
  }
  return e;
}

// The gradients of sum(matmul(a, b) ⊙ g): da = g·bᵀ, db = aᵀ·g.
Expected matmul_oracle(const std::vector<Tensor>& in, const Tensor& g) {
  const int64_t m = in[0].size(0), k = in[0].size(1), n = in[1].size(1);
  const std::vector<double> av = in[0].to_vector(), bv = in[1].to_vector(), gv = g.to_vector();
  Expected e{naive_matmul(in[0], in[1]), {{}, {}}};
  if (in[0].requires_grad()) {
    e.grads[0].assign(size_t(m * k), 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) e.grads[0][size_t(i * k + p)] += gv[size_t(i * n + j)] * bv[size_t(p * n + j)];
  }
  if (in[1].requires_grad()) {
    e.grads[1].assign(size_t(k * n), 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) e.grads[1][size_t(p * n + j)] += av[size_t(i * k + p)] * gv[size_t(i * n + j)];
  }
  return e;
}

// f32 against the oracle: rounding grows with the length of the forward's dot products (the gradients'
// sums here are not longer than those). Devices: the longest sum behind the output and the gradients; f32
// errors grow like its square root.
Tolerance oracle_f32(int64_t dot_length) { return {1e-6 * double(dot_length + 1), 1e-6 * double(dot_length + 1)}; }
Tolerance parity_tolerance(DType dt, int64_t longest) {
  if (dt == DType::f64) return {1e-12 * std::sqrt(double(longest)), 1e-12};
  return {2e-6 * std::sqrt(double(longest)), 1e-5};
}

struct Dims {
  int64_t batch, in, out;
};

// Central differences cost one forward per input element: kept to the small products.
bool small(Dims d) { return d.batch * d.in * d.out <= 20000; }

// linear(x [batch, in], w [out, in], bias [out]) with the inputs that want gradients; weights drawn from
// [-w_range, w_range).
OpCase linear_case(const std::string& what, Dims d, bool bias, bool x_grad, bool w_grad, double w_range,
                   uint64_t seed) {
  const int64_t longest = std::max({d.batch, d.in, d.out});
  return {.name = cat("linear ", what, " N=", d.batch, " in=", d.in, " out=", d.out),
          .inputs = [=](DType dt) {
            std::vector<Tensor> v{random_tensor({d.batch, d.in}, dt, seed).requires_grad_(x_grad),
                                  random_tensor({d.out, d.in}, dt, seed + 1, -w_range, w_range).requires_grad_(w_grad)};
            if (bias) v.push_back(random_tensor({d.out}, dt, seed + 2).requires_grad_());
            return v;
          },
          .op = [](const std::vector<Tensor>& v) {
            Tensor y = linear(v[0], v[1], v.size() > 2 ? v[2] : Tensor());
            CHECK(y.shape() == Shape{v[0].size(0), v[1].size(0)});
            CHECK(y.dtype() == v[0].dtype());
            return y;
          },
          .oracle = linear_oracle,
          .oracle_f32 = oracle_f32(d.in),
          .gradcheck = small(d),
          .parity_f32 = parity_tolerance(DType::f32, longest),
          .parity_f64 = parity_tolerance(DType::f64, longest)};
}

// matmul(a [m, k], b [k, n]).
OpCase matmul_case(int64_t m, int64_t k, int64_t n, uint64_t seed) {
  const int64_t longest = std::max({m, k, n});
  return {.name = cat("matmul [", m, ", ", k, "] x [", k, ", ", n, "]"),
          .inputs = [=](DType dt) {
            return std::vector<Tensor>{random_tensor({m, k}, dt, seed).requires_grad_(),
                                       random_tensor({k, n}, dt, seed + 1).requires_grad_()};
          },
          .op = [](const std::vector<Tensor>& v) {
            Tensor y = matmul(v[0], v[1]);
            CHECK(y.shape() == Shape{v[0].size(0), v[1].size(1)});
            CHECK(y.dtype() == v[0].dtype());
            return y;
          },
          .oracle = matmul_oracle,
          .oracle_f32 = oracle_f32(k),
          .gradcheck = small({m, k, n}),
          .parity_f32 = parity_tolerance(DType::f32, longest),
          .parity_f64 = parity_tolerance(DType::f64, longest)};
}

std::vector<OpCase> linear_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 10;
  // Odd sizes, batch 1, and sizes across our GEMM's blocks; with and without bias, and with only some
  // inputs wanting gradients (the node must skip the others).
  for (Dims d : {Dims{1, 1, 1}, Dims{1, 4, 3}, Dims{3, 5, 2}, Dims{7, 3, 6}, Dims{2, 9, 1}, Dims{1, 17, 5},
                 Dims{7, 13, 33}, Dims{65, 300, 130}, Dims{200, 27, 64}}) {
    cases.push_back(linear_case("with bias", d, true, true, true, 1.0, seed += 3));
    cases.push_back(linear_case("without bias", d, false, true, true, 1.0, seed += 3));
    cases.push_back(linear_case("x without grad", d, true, false, true, 1.0, seed += 3));
    cases.push_back(linear_case("weight without grad", d, false, true, false, 1.0, seed += 3));
    cases.push_back(matmul_case(d.batch, d.in, d.out, seed += 3));
  }
  // Gradients large enough for the blocked kernel's edge tiles and several K-slices.
  cases.push_back(linear_case("with bias", {3, 270, 17}, true, true, true, 1.0, seed += 3));
  // ResNet's classifier (512 → 1000) and a 2048-feature head, small weights as initialised.
  for (const auto& [d, bias] : {std::pair{Dims{2, 512, 1000}, true}, std::pair{Dims{1, 7, 3}, false},
                                std::pair{Dims{256, 2048, 128}, true}, std::pair{Dims{33, 17, 65}, false}})
    cases.push_back(linear_case(bias ? "with bias" : "without bias", d, bias, true, true, 0.1, seed += 3));
  for (const auto& [m, k, n] : {std::array<int64_t, 3>{7, 33, 13}, std::array<int64_t, 3>{64, 512, 10},
                                std::array<int64_t, 3>{1, 300, 1}, std::array<int64_t, 3>{257, 65, 129}})
    cases.push_back(matmul_case(m, k, n, seed += 3));
  return cases;
}

}  // namespace

TEST_CASE("linear: op harness") { test::run_op_cases("linear", linear_cases()); }

TEST_CASE("matmul and linear: exact small values, empty operands") {
  SUBCASE("small f64, exact shapes") {
    Tensor a = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
    Tensor b = from_vector({7, 8, 9, 10, 11, 12}, {3, 2}, DType::f64);
    Tensor c = matmul(a, b);
    CHECK(c.shape() == Shape{2, 2});
    CHECK(c.to_vector() == std::vector<double>{58, 64, 139, 154});
    Tensor w = from_vector({1, 0, -1, 2, 1, 0}, {2, 3}, DType::f64);
    Tensor y = linear(a, w, from_vector({0.5, -1}, {2}, DType::f64));
    CHECK(y.shape() == Shape{2, 2});
    CHECK(y.to_vector() == std::vector<double>{1 - 3 + 0.5, 2 + 2 - 1, 4 - 6 + 0.5, 8 + 5 - 1});
  }
  SUBCASE("empty batch and zero features") {
    Tensor w = random_f64({5, 3}, 5);
    Tensor bias = random_f64({5}, 6);
    CHECK(linear(zeros({0, 3}, DType::f64), w, bias).shape() == Shape{0, 5});
    // in = 0: the product is empty, so y is the bias on every row.
    Tensor y = linear(zeros({2, 0}, DType::f64), zeros({5, 0}, DType::f64), bias);
    CHECK_CLOSE(y.to_vector(), naive_linear(zeros({2, 0}, DType::f64), zeros({5, 0}, DType::f64), bias), 0, 0);
    CHECK(matmul(zeros({3, 0}), zeros({0, 4})).to_vector() == std::vector<double>(12, 0.0));
  }
}

TEST_CASE("linear backward accumulates into .grad with the documented formulas") {
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2}, DType::f64).requires_grad_();
  Tensor w = from_vector({1, -1, 0.5, 2, 0, 1}, {3, 2}, DType::f64).requires_grad_();
  Tensor bias = from_vector({0, 0, 0}, {3}, DType::f64).requires_grad_();
  Tensor y = linear(x, w, bias);
  backward(y, ones({2, 3}, DType::f64));  // g = 1: dx = 1·W, dW = 1ᵀ·x, db = N
  CHECK(x.grad().to_vector() == std::vector<double>{1.5, 2, 1.5, 2});
  CHECK(w.grad().to_vector() == std::vector<double>{4, 6, 4, 6, 4, 6});
  CHECK(bias.grad().to_vector() == std::vector<double>{2, 2, 2});
}

TEST_CASE("matmul and linear: bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), zeros({5, 2})), "linear: x [4, 3] and weight [5, 2]: in_features differ",
                       Error);
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), zeros({5, 3}), zeros({4})),
                       "linear: bias [4] does not match weight [5, 3]: expected [5]", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), zeros({5, 3}), zeros({5, 1})),
                       "linear: bias [5, 1] does not match weight [5, 3]: expected [5]", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), zeros({5, 3}, DType::f64)),
                       "linear: dtype mismatch: x is f32 [4, 3] on cpu, weight is f64 [5, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), zeros({5, 3}), zeros({5}, DType::f64)),
                       "linear: dtype mismatch: x is f32 [4, 3] on cpu, bias is f64 [5] on cpu", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 4, 3}), zeros({5, 3})),
                       "linear: argument 'x' must be 2-D, got f32 [2, 4, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({4, 3}), Tensor()), "linear: argument 'weight' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({4, 5})),
                       "matmul: a [2, 3] and b [4, 5]: inner dimensions differ (3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}, DType::i32), zeros({3, 5}, DType::i32)),
                       "matmul: argument 'a' must be f32 or f64, got i32 [2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({3}), zeros({3, 5})), "matmul: argument 'a' must be 2-D, got f32 [3] on cpu",
                       Error);
}
