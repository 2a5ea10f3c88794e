// Autograd: accumulation, gradient slots, shared subgraphs, NoGradGuard, detach, freed buffers, depth.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"

using namespace scpn;

TEST_CASE("gradients accumulate into .grad across backward calls") {
  Tensor x = from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  backward(sum(mul(x, x)));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});
  backward(sum(x));
  CHECK(x.grad().to_vector() == std::vector<double>{3, 5, 7});
}

TEST_CASE("a caller-provided gradient slot receives the gradients and .grad stays untouched") {
  Tensor w = from_vector({1, -2}, {2}, DType::f64).requires_grad_();
  GradientSlot task_a, task_b;
  BackwardOptions oa, ob;
  oa.slot = &task_a;
  ob.slot = &task_b;
  backward(sum(mul_scalar(w, 3.0)), Tensor(), oa);
  backward(sum(square(w)), Tensor(), ob);
  CHECK_FALSE(w.grad().defined());
  CHECK(task_a.get(w).to_vector() == std::vector<double>{3, 3});
  CHECK(task_b.get(w).to_vector() == std::vector<double>{2, -4});
}

TEST_CASE("a tensor used twice gets the sum of both paths; aliasing gradients are not shared") {
  Tensor a = from_vector({2}, {1}, DType::f64).requires_grad_();
  Tensor b = from_vector({5}, {1}, DType::f64).requires_grad_();
  Tensor y = add(a, b);          // add passes the same gradient to both inputs
  Tensor z = mul(y, y);          // dz/dy = 2y = 14
  backward(sum(z));
  CHECK(a.grad().item() == 14);
  CHECK(b.grad().item() == 14);
  axpy_(a.grad(), 1.0, a.grad());  // modifying one leaf's grad must not change the other's
  CHECK(b.grad().item() == 14);
}

TEST_CASE("NoGradGuard and detach record nothing") {
  Tensor x = ones({2}, DType::f64).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = mul_scalar(x, 2);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor d = mul_scalar(x, 2).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(mul_scalar(x, 2).requires_grad());
}

TEST_CASE("backward through freed buffers is an error naming the op; retain_graph allows it") {
  Tensor x = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  Tensor loss = sum(mul(x, x));
  backward(loss);
  CHECK_THROWS_WITH_AS(backward(loss), doctest::Contains("through 'sum' a second time"), Error);
  Tensor loss2 = sum(mul(x, x));
  BackwardOptions keep;
  keep.retain_graph = true;
  backward(loss2, Tensor(), keep);
  backward(loss2);
  CHECK(x.grad().to_vector() == std::vector<double>{2 + 4, 4 + 8});
}

TEST_CASE("backward errors: no grad, non-scalar output without gradient") {
  Tensor x = ones({2});
  CHECK_THROWS_WITH_AS(backward(sum(x)), doctest::Contains("does not require grad"), Error);
  Tensor y = ones({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(backward(mul_scalar(y, 2)), doctest::Contains("is not a scalar"), Error);
  backward(mul_scalar(y, 2), from_vector({1, 10}, {2}));
  CHECK(y.grad().to_vector() == std::vector<double>{2, 20});
  CHECK_THROWS_WITH_AS(zeros({2}, DType::i64).requires_grad_(), doctest::Contains("only floating tensors"), Error);
}

TEST_CASE("a 100000-op chain runs backward without recursion") {
  Tensor x = from_vector({1}, {1}, DType::f64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add_scalar(y, 1e-6);
  backward(sum(y));
  CHECK(x.grad().item() == 1.0);
}

TEST_CASE("views carry gradients: reshape, flatten, slice") {
  Tensor x = test::random_f64({3, 4}, 1).requires_grad_();
  Tensor w = test::random_f64({2, 4}, 2);
  auto f = [&](const std::vector<Tensor>& in) { return mul(in[0].slice(1, 3).reshape({8}).reshape({2, 4}), w); };
  CHECK_GRADCHECK("slice+reshape", f, {x});
}
