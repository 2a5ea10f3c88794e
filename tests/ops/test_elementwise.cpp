// Elementwise ops and reductions: values, broadcasting, gradients (f64 central differences), errors.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

TEST_CASE("binary ops broadcast per-channel and same-shape operands") {
  Tensor x = arange(12).reshape({1, 3, 2, 2});
  Tensor c = from_vector({10, 20, 30}, {3, 1, 1});
  Tensor y = add(x, c);
  CHECK(y.shape() == Shape{1, 3, 2, 2});
  CHECK(y.to_vector() == std::vector<double>{10, 11, 12, 13, 24, 25, 26, 27, 38, 39, 40, 41});
  CHECK(mul(x, x).to_vector()[3] == 9);
  CHECK(sub(x, from_vector({1}, {1})).to_vector()[0] == -1);
  CHECK(div(from_vector({1, 4}, {2}), from_vector({2, 8}, {2})).to_vector() == std::vector<double>{0.5, 0.5});
  CHECK(broadcast_shapes("t", {4, 1, 3}, {2, 1}) == Shape{4, 2, 3});
}

TEST_CASE("unary ops and scalars") {
  Tensor x = from_vector({-2, 0, 3}, {3});
  CHECK(relu(x).to_vector() == std::vector<double>{0, 0, 3});
  CHECK(abs(x).to_vector() == std::vector<double>{2, 0, 3});
  CHECK(sign(x).to_vector() == std::vector<double>{-1, 0, 1});
  CHECK(add_scalar(x, 1).to_vector() == std::vector<double>{-1, 1, 4});
  CHECK((x * 2.0).to_vector() == std::vector<double>{-4, 0, 6});
  CHECK(neg(x).to_vector() == std::vector<double>{2, 0, -3});
  Tensor m = greater(x, zeros({1}));
  CHECK(m.dtype() == DType::u8);
  CHECK(where(m, x, full({3}, 9)).to_vector() == std::vector<double>{9, 9, 3});
}

TEST_CASE("reductions") {
  Tensor x = arange(24, DType::f64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276);
  CHECK(sum(x, {1}).shape() == Shape{2, 4});
  CHECK(sum(x, {1}).to_vector()[0] == 0 + 4 + 8);
  CHECK(sum(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  CHECK(sum(x, {0, 2}).to_vector() == std::vector<double>{60, 92, 124});
  CHECK(mean(x, {-1}).to_vector()[0] == 1.5);
  CHECK(amax(x, {2}).to_vector() == std::vector<double>{3, 7, 11, 15, 19, 23});
  CHECK(sum_to(ones({2, 3, 4}), {3, 1}).to_vector() == std::vector<double>{8, 8, 8});
}

TEST_CASE("gradients of elementwise ops and reductions (f64 central differences)") {
  for (Shape shape : {Shape{1}, Shape{2, 3}, Shape{2, 3, 5}, Shape{1, 3, 2, 2}}) {
    Tensor a = random_f64(shape, 1).requires_grad_();
    Tensor b = random_f64(shape, 2, 0.5, 1.5).requires_grad_();  // away from 0 for div
    std::string s = shape_str(shape);
    CHECK_GRADCHECK("add " + s, [](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, std::vector<Tensor>({a, b}));
    CHECK_GRADCHECK("sub " + s, [](const std::vector<Tensor>& v) { return sub(v[0], v[1]); }, std::vector<Tensor>({a, b}));
    CHECK_GRADCHECK("mul " + s, [](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, std::vector<Tensor>({a, b}));
    CHECK_GRADCHECK("div " + s, [](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, std::vector<Tensor>({a, b}));
    CHECK_GRADCHECK("maximum " + s, [](const std::vector<Tensor>& v) { return maximum(v[0], v[1]); },
                    std::vector<Tensor>({a, b}));
  }
  // Kinks kept away from: |x| >= 0.1 for relu/abs.
  Tensor x = random_f64({4, 5}, 3, 0.1, 1.0);
  Tensor flip = sign(random_f64({4, 5}, 4));
  x = mul(x, flip).detach().requires_grad_();
  auto one = [](Tensor (*op)(const Tensor&)) {
    return [op](const std::vector<Tensor>& v) { return op(v[0]); };
  };
  CHECK_GRADCHECK("relu", one(relu), {x});
  CHECK_GRADCHECK("abs", one(abs), {x});
  CHECK_GRADCHECK("sign", one(sign), {x});
  CHECK_GRADCHECK("neg", one(neg), {x});
  CHECK_GRADCHECK("exp", one(exp), {x});
  CHECK_GRADCHECK("square", one(square), {x});
  Tensor p = random_f64({3, 4}, 5, 0.5, 2.0).requires_grad_();
  CHECK_GRADCHECK("log", one(log), {p});
  CHECK_GRADCHECK("sqrt", one(sqrt), {p});
  CHECK_GRADCHECK("pow_scalar", [](const std::vector<Tensor>& v) { return pow_scalar(v[0], 1.7); }, {p});
  CHECK_GRADCHECK("add_scalar", [](const std::vector<Tensor>& v) { return add_scalar(v[0], 1.7); }, {p});
  CHECK_GRADCHECK("mul_scalar", [](const std::vector<Tensor>& v) { return mul_scalar(v[0], -1.7); }, {p});
  Tensor cond = greater(random_f64({3, 4}, 6), zeros({1}, DType::f64));
  Tensor q = random_f64({3, 4}, 7).requires_grad_();
  CHECK_GRADCHECK("where", [&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); },
                  std::vector<Tensor>({p, q}));
  // Broadcast operands: per-channel scale and bias.
  Tensor act = random_f64({2, 3, 4, 4}, 8).requires_grad_();
  Tensor scale = random_f64({3, 1, 1}, 9).requires_grad_();
  Tensor bias = random_f64({1, 3, 1, 1}, 10).requires_grad_();
  CHECK_GRADCHECK("mul+add per-channel", [](const std::vector<Tensor>& v) { return add(mul(v[0], v[1]), v[2]); },
                  std::vector<Tensor>({act, scale, bias}));
  CHECK_GRADCHECK("sum dims", [](const std::vector<Tensor>& v) { return sum(v[0], {0, 2}); }, {act});
  CHECK_GRADCHECK("mean dims keepdim", [](const std::vector<Tensor>& v) { return mean(v[0], {1, 3}, true); }, {act});
  CHECK_GRADCHECK("sum all", [](const std::vector<Tensor>& v) { return sum(v[0]); }, {act});
}

TEST_CASE("bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(add(zeros({2, 3}), zeros({4})), "add: shapes [2, 3] and [4] cannot be broadcast together",
                       Error);
  CHECK_THROWS_WITH_AS(mul(zeros({2}), zeros({2}, DType::f64)),
                       "mul: dtype mismatch: a is f32 [2] on cpu, b is f64 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(relu(zeros({2}, DType::i32)), "relu: argument 'x' must be f32 or f64, got i32 [2] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(sum(zeros({2}), {3}), "sum: dimension 3 out of range for a 1-D tensor", Error);
  CHECK_THROWS_WITH_AS(where(zeros({2}, DType::u8), zeros({2}), zeros({3})),
                       "where: shapes must match: cond [2], a [2], b [3]", Error);
}
