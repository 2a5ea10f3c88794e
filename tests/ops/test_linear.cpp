// matmul and linear (engine/ops/linear.h): values against naive loops, gradients against f64 central
// differences (several shapes, batch 1, with and without bias, partial requires_grad), error messages.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/linear.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

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

}  // namespace

TEST_CASE("matmul and linear values against naive loops") {
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
  SUBCASE("f64 and f32 over odd and blocked sizes") {
    struct Dims {
      int64_t batch, in, out;
    };
    for (Dims d : {Dims{1, 1, 1}, Dims{1, 17, 5}, Dims{7, 13, 33}, Dims{65, 300, 130}, Dims{200, 27, 64}}) {
      for (DType t : {DType::f64, DType::f32}) {
        INFO(cat(dtype_name(t), " batch ", d.batch, " in ", d.in, " out ", d.out));
        Tensor x = random_f64({d.batch, d.in}, 1).to(t);
        Tensor w = random_f64({d.out, d.in}, 2).to(t);
        Tensor bias = random_f64({d.out}, 3).to(t);
        Tensor wt = random_f64({d.in, d.out}, 4).to(t);
        // f32: rounding grows with the length of the dot products.
        const double tol = t == DType::f64 ? 1e-12 : 1e-6 * double(d.in + 1);
        CHECK_CLOSE(linear(x, w, bias).to_vector(), naive_linear(x, w, bias), tol, tol);
        CHECK_CLOSE(linear(x, w).to_vector(), naive_linear(x, w, Tensor()), tol, tol);
        CHECK_CLOSE(matmul(x, wt).to_vector(), naive_matmul(x, wt), tol, tol);
        CHECK(linear(x, w, bias).dtype() == t);
      }
    }
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

TEST_CASE("matmul and linear gradients (f64 central differences)") {
  struct Dims {
    int64_t batch, in, out;
  };
  uint64_t seed = 10;
  for (Dims d : {Dims{1, 1, 1}, Dims{1, 4, 3}, Dims{3, 5, 2}, Dims{7, 3, 6}, Dims{2, 9, 1}}) {
    const std::string s = cat(" N=", d.batch, " in=", d.in, " out=", d.out);
    Tensor x = random_f64({d.batch, d.in}, seed++).requires_grad_();
    Tensor w = random_f64({d.out, d.in}, seed++).requires_grad_();
    Tensor bias = random_f64({d.out}, seed++).requires_grad_();
    CHECK_GRADCHECK("linear with bias" + s,
                    [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
                    std::vector<Tensor>({x, w, bias}));
    CHECK_GRADCHECK("linear without bias" + s, [](const std::vector<Tensor>& v) { return linear(v[0], v[1]); },
                    std::vector<Tensor>({x, w}));
    // Only some inputs want gradients: the node must skip the others.
    Tensor x_const = random_f64({d.batch, d.in}, seed++);
    CHECK_GRADCHECK("linear, x without grad" + s,
                    [&](const std::vector<Tensor>& v) { return linear(x_const, v[0], v[1]); },
                    std::vector<Tensor>({w, bias}));
    Tensor w_const = random_f64({d.out, d.in}, seed++);
    CHECK_GRADCHECK("linear, weight without grad" + s,
                    [&](const std::vector<Tensor>& v) { return linear(v[0], w_const); }, std::vector<Tensor>({x}));
    // matmul x [N, in] · b [in, out].
    Tensor b = random_f64({d.in, d.out}, seed++).requires_grad_();
    CHECK_GRADCHECK("matmul" + s, [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); },
                    std::vector<Tensor>({x, b}));
  }
  // Gradients large enough for the blocked kernel's edge tiles and several K-slices.
  Tensor x = random_f64({3, 270}, 50).requires_grad_();
  Tensor w = random_f64({17, 270}, 51).requires_grad_();
  Tensor bias = random_f64({17}, 52).requires_grad_();
  CHECK_GRADCHECK("linear N=3 in=270 out=17", [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
                  std::vector<Tensor>({x, w, bias}));
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
