// batch_norm: forward values (training and eval, 1-D and 2-D, f32 and f64) against statistics computed by
// hand loops here, running-statistic updates over two steps against hand-computed numbers, gradients
// (f64 central differences) for x, weight and bias in both modes, and every argument error.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {

// x viewed as [N, C, HW]: the statistics and output a batch norm must produce, from plain loops.
struct ReferenceBatchNorm {
  std::vector<double> y, mean, biased_var, unbiased_var;
};

ReferenceBatchNorm reference_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                        const std::vector<double>* eval_mean, const std::vector<double>* eval_var,
                                        double eps) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  const std::vector<double> xv = x.to_vector();
  const std::vector<double> wv = weight.defined() ? weight.to_vector() : std::vector<double>(size_t(C), 1.0);
  const std::vector<double> bv = bias.defined() ? bias.to_vector() : std::vector<double>(size_t(C), 0.0);
  auto at = [&](int64_t n, int64_t c, int64_t i) { return size_t((n * C + c) * HW + i); };
  ReferenceBatchNorm r;
  r.y.resize(xv.size());
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) sum += xv[at(n, c, i)];
    const double m = double(N * HW);
    const double mean = sum / m;
    double squares = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) squares += (xv[at(n, c, i)] - mean) * (xv[at(n, c, i)] - mean);
    r.mean.push_back(mean);
    r.biased_var.push_back(squares / m);
    r.unbiased_var.push_back(m > 1 ? squares / (m - 1) : NAN);
    const double use_mean = eval_mean ? (*eval_mean)[size_t(c)] : mean;
    const double use_var = eval_var ? (*eval_var)[size_t(c)] : squares / m;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i)
        r.y[at(n, c, i)] = (xv[at(n, c, i)] - use_mean) / std::sqrt(use_var + eps) * wv[size_t(c)] + bv[size_t(c)];
  }
  return r;
}

std::vector<Tensor> inputs(std::initializer_list<Tensor> ts) { return std::vector<Tensor>(ts); }

const std::vector<Shape> kShapes = {Shape{2, 3, 4, 5}, Shape{1, 3, 5, 7}, Shape{5, 4}, Shape{3, 2, 1, 1},
                                    Shape{4, 5, 3, 1}};

}  // namespace

TEST_CASE("training forward normalises with the batch statistics and moves the running ones") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const double tol = dtype == DType::f64 ? 1e-12 : 2e-5;
    for (const Shape& shape : kShapes) {
      for (bool affine : {true, false}) {
        CAPTURE(shape_str(shape));
        CAPTURE(dtype_name(dtype));
        CAPTURE(affine);
        const int64_t C = shape[1];
        // An offset and a scale per tensor, so the mean is far from 0 and the variance far from 1.
        Tensor x = (random_f64(shape, 11) * 3.0 + 2.0).to(dtype);
        Tensor w = affine ? random_f64({C}, 12, 0.5, 1.5).to(dtype) : Tensor();
        Tensor b = affine ? random_f64({C}, 13).to(dtype) : Tensor();
        Tensor rm = random_f64({C}, 14).to(dtype);
        Tensor rv = random_f64({C}, 15, 0.5, 2.0).to(dtype);
        const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
        const double momentum = 0.3, eps = 1e-3;

        Tensor y = batch_norm(x, w, b, rm, rv, BatchNormOptions{true, momentum, eps});
        ReferenceBatchNorm ref = reference_batch_norm(x, w, b, nullptr, nullptr, eps);
        CHECK(y.shape() == shape);
        CHECK(y.dtype() == dtype);
        CHECK_CLOSE(y.to_vector(), ref.y, tol, tol);
        std::vector<double> want_rm, want_rv;
        for (size_t c = 0; c < size_t(C); ++c) {
          want_rm.push_back((1 - momentum) * rm0[c] + momentum * ref.mean[c]);
          want_rv.push_back((1 - momentum) * rv0[c] + momentum * ref.unbiased_var[c]);
        }
        CHECK_CLOSE(rm.to_vector(), want_rm, tol, tol);
        CHECK_CLOSE(rv.to_vector(), want_rv, tol, tol);

        // Without running statistics the output is the same.
        Tensor y_no_running = batch_norm(x, w, b, Tensor(), Tensor(), BatchNormOptions{true, momentum, eps});
        CHECK_CLOSE(y_no_running.to_vector(), ref.y, tol, tol);
      }
    }
  }
}

TEST_CASE("running statistics over two steps match hand-computed numbers") {
  SUBCASE("1-D, default momentum 0.1") {
    Tensor rm = zeros({1}, DType::f64), rv = ones({1}, DType::f64);
    // Step 1: x = {1, 2, 3, 6}: mean 3, biased var 14/4 = 3.5, unbiased var 14/3.
    Tensor y = batch_norm(from_vector({1, 2, 3, 6}, {4, 1}, DType::f64), Tensor(), Tensor(), rm, rv);
    const double invstd = 1.0 / std::sqrt(3.5 + 1e-5);
    CHECK_CLOSE(y.to_vector(), (std::vector<double>{-2 * invstd, -invstd, 0, 3 * invstd}), 1e-14, 1e-14);
    CHECK(rm.item() == doctest::Approx(0.3).epsilon(1e-14));
    CHECK(rv.item() == doctest::Approx(0.9 + 1.4 / 3).epsilon(1e-14));  // 1.3666…
    // Step 2: x = {0, 0, 2, 2}: mean 1, unbiased var 4/3.
    batch_norm(from_vector({0, 0, 2, 2}, {4, 1}, DType::f64), Tensor(), Tensor(), rm, rv);
    CHECK(rm.item() == doctest::Approx(0.37).epsilon(1e-14));
    CHECK(rv.item() == doctest::Approx(1.23 + 0.4 / 3).epsilon(1e-14));  // 1.3633…
  }
  SUBCASE("2-D, momentum 0.25, f32") {
    Tensor rm = full({1}, 1.0), rv = full({1}, 2.0);
    BatchNormOptions opt{true, 0.25, 1e-5};
    // Step 1: x = {1, 3, 5, 7} as [2, 1, 1, 2]: mean 4, unbiased var 20/3.
    batch_norm(from_vector({1, 3, 5, 7}, {2, 1, 1, 2}), Tensor(), Tensor(), rm, rv, opt);
    CHECK(rm.item() == doctest::Approx(1.75).epsilon(1e-6));
    CHECK(rv.item() == doctest::Approx(1.5 + 5.0 / 3).epsilon(1e-6));  // 3.1666…
    // Step 2: x = {2, 2, 2, 6}: mean 3, unbiased var 4.
    batch_norm(from_vector({2, 2, 2, 6}, {2, 1, 1, 2}), Tensor(), Tensor(), rm, rv, opt);
    CHECK(rm.item() == doctest::Approx(2.0625).epsilon(1e-6));
    CHECK(rv.item() == doctest::Approx(3.375).epsilon(1e-6));
  }
}

TEST_CASE("eval forward uses the running statistics and leaves them unchanged") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const double tol = dtype == DType::f64 ? 1e-12 : 2e-5;
    for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 3, 5, 7}, Shape{5, 4}, Shape{1, 4}, Shape{1, 2, 1, 1}}) {
      CAPTURE(shape_str(shape));
      const int64_t C = shape[1];
      Tensor x = random_f64(shape, 21).to(dtype);
      Tensor w = random_f64({C}, 22, 0.5, 1.5).to(dtype);
      Tensor b = random_f64({C}, 23).to(dtype);
      Tensor rm = random_f64({C}, 24).to(dtype);
      Tensor rv = random_f64({C}, 25, 0.5, 2.0).to(dtype);
      const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
      Tensor y = batch_norm(x, w, b, rm, rv, BatchNormOptions{false});
      ReferenceBatchNorm ref = reference_batch_norm(x, w, b, &rm0, &rv0, 1e-5);
      CHECK_CLOSE(y.to_vector(), ref.y, tol, tol);
      CHECK(rm.to_vector() == rm0);
      CHECK(rv.to_vector() == rv0);
      Tensor y_plain = batch_norm(x, Tensor(), Tensor(), rm, rv, BatchNormOptions{false});
      ReferenceBatchNorm ref_plain = reference_batch_norm(x, Tensor(), Tensor(), &rm0, &rv0, 1e-5);
      CHECK_CLOSE(y_plain.to_vector(), ref_plain.y, tol, tol);
    }
  }
}

TEST_CASE("gradients of batch_norm in training mode (f64 central differences)") {
  for (const Shape& shape : kShapes) {
    const int64_t C = shape[1];
    const std::string s = shape_str(shape);
    Tensor x = random_f64(shape, 31, -2.0, 2.0).requires_grad_();
    Tensor w = random_f64({C}, 32, 0.5, 1.5).requires_grad_();
    Tensor b = random_f64({C}, 33).requires_grad_();
    Tensor rm = zeros({C}, DType::f64), rv = ones({C}, DType::f64);  // moved by every call; no effect on y
    CHECK_GRADCHECK("batch_norm train " + s,
                    [&](const std::vector<Tensor>& v) { return batch_norm(v[0], v[1], v[2], rm, rv); },
                    inputs({x, w, b}));
    CHECK_GRADCHECK("batch_norm train no affine " + s,
                    [](const std::vector<Tensor>& v) {
                      return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor());
                    },
                    inputs({x}));
    // weight given but frozen: only x gets a gradient.
    Tensor frozen_w = w.detach();
    CHECK_GRADCHECK("batch_norm train frozen weight " + s,
                    [&](const std::vector<Tensor>& v) { return batch_norm(v[0], frozen_w, Tensor(), rm, rv); },
                    inputs({x}));
  }
}

TEST_CASE("gradients of batch_norm in eval mode (f64 central differences)") {
  for (const Shape& shape : kShapes) {
    const int64_t C = shape[1];
    const std::string s = shape_str(shape);
    Tensor x = random_f64(shape, 41, -2.0, 2.0).requires_grad_();
    Tensor w = random_f64({C}, 42, 0.5, 1.5).requires_grad_();
    Tensor b = random_f64({C}, 43).requires_grad_();
    Tensor rm = random_f64({C}, 44), rv = random_f64({C}, 45, 0.5, 2.0);
    CHECK_GRADCHECK("batch_norm eval " + s,
                    [&](const std::vector<Tensor>& v) {
                      return batch_norm(v[0], v[1], v[2], rm, rv, BatchNormOptions{false});
                    },
                    inputs({x, w, b}));
    CHECK_GRADCHECK("batch_norm eval no affine " + s,
                    [&](const std::vector<Tensor>& v) {
                      return batch_norm(v[0], Tensor(), Tensor(), rm, rv, BatchNormOptions{false});
                    },
                    inputs({x}));
  }
}

TEST_CASE("f32 gradients agree with the f64 ones") {
  for (bool training : {true, false}) {
    const Shape shape{3, 4, 5, 3};
    Tensor x64 = random_f64(shape, 51, -2.0, 2.0).requires_grad_();
    Tensor w64 = random_f64({4}, 52, 0.5, 1.5).requires_grad_();
    Tensor b64 = random_f64({4}, 53).requires_grad_();
    Tensor x32 = x64.detach().to(DType::f32).requires_grad_();
    Tensor w32 = w64.detach().to(DType::f32).requires_grad_();
    Tensor b32 = b64.detach().to(DType::f32).requires_grad_();
    Tensor g = random_f64(shape, 54);
    Tensor rm = random_f64({4}, 55), rv = random_f64({4}, 56, 0.5, 2.0);
    BatchNormOptions opt{training};
    backward(batch_norm(x64, w64, b64, rm, rv, opt), g);
    backward(batch_norm(x32, w32, b32, rm.to(DType::f32), rv.to(DType::f32), opt), g.to(DType::f32));
    CAPTURE(training);
    CHECK_CLOSE(x32.grad().to_vector(), x64.grad().to_vector(), 1e-5, 1e-4);
    CHECK_CLOSE(w32.grad().to_vector(), w64.grad().to_vector(), 1e-4, 1e-4);
    CHECK_CLOSE(b32.grad().to_vector(), b64.grad().to_vector(), 1e-4, 1e-4);
  }
}

TEST_CASE("backward uses the statistics of its forward, not running statistics moved since") {
  Tensor x = random_f64({4, 2, 3, 3}, 61).requires_grad_();
  Tensor rm = random_f64({2}, 62), rv = random_f64({2}, 63, 0.5, 2.0);
  const std::vector<double> rv0 = rv.to_vector();
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, BatchNormOptions{false});
  batch_norm(random_f64({4, 2, 3, 3}, 64), Tensor(), Tensor(), rm, rv);  // a training step moves rm, rv
  backward(sum(y));
  // Eval: dx = 1/sqrt(running_var + eps) with the running_var of the forward.
  std::vector<double> gx = x.grad().to_vector();
  for (size_t i = 0; i < gx.size(); ++i) {
    const size_t c = (i / 9) % 2;
    CHECK(gx[i] == doctest::Approx(1.0 / std::sqrt(rv0[c] + 1e-5)).epsilon(1e-14));
  }
}

TEST_CASE("bad input names batch_norm and the shapes") {
  Tensor x = zeros({2, 3, 4, 4});
  Tensor c3 = zeros({3}), c4 = zeros({4});
  CHECK_THROWS_WITH_AS(batch_norm(zeros({2, 3, 4}), Tensor(), Tensor(), Tensor(), Tensor()),
                       "batch_norm: argument 'x' must be 2-D [N, C] or 4-D [N, C, H, W], got f32 [2, 3, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({2, 3}, DType::i32), Tensor(), Tensor(), Tensor(), Tensor()),
                       "batch_norm: argument 'x' must be f32 or f64, got i32 [2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c4, c3, c3, c3),
                       "batch_norm: argument 'weight' must have shape [3] (one value per channel of x [2, 3, 4, 4]), "
                       "got [4]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c3, zeros({3, 1}), c3, c3),
                       "batch_norm: argument 'bias' must have shape [3] (one value per channel of x [2, 3, 4, 4]), "
                       "got [3, 1]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c3, c3, c4, c3),
                       "batch_norm: argument 'running_mean' must have shape [3] (one value per channel of x "
                       "[2, 3, 4, 4]), got [4]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({5, 3}), c3, c3, c3, zeros({5})),
                       "batch_norm: argument 'running_var' must have shape [3] (one value per channel of x [5, 3]), "
                       "got [5]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({5, 3}), zeros({3}, DType::f64), Tensor(), Tensor(), Tensor()),
                       "batch_norm: dtype mismatch: x is f32 [5, 3] on cpu, weight is f64 [3] on cpu", Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor(), c3),
                       "batch_norm: running_mean and running_var must be given together, got running_mean undefined "
                       "and running_var f32 [3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c3, c3, Tensor(), Tensor(), BatchNormOptions{false}),
                       "batch_norm: eval mode (training = false) needs running_mean and running_var", Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({1, 3}), c3, c3, c3, c3),
                       "batch_norm: expected more than 1 value per channel when training, got x of shape [1, 3]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor()),
                       "batch_norm: expected more than 1 value per channel when training, got x of shape "
                       "[1, 3, 1, 1]",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c3, c3, c3, c3, BatchNormOptions{true, 1.5}),
                       "batch_norm: momentum must be in [0, 1], got 1.5", Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, c3, c3, c3, c3, BatchNormOptions{true, 0.1, -1}),
                       "batch_norm: eps must be >= 0, got -1", Error);
  // One value per channel is fine in eval mode.
  CHECK_NOTHROW(batch_norm(zeros({1, 3}), c3, c3, c3, ones({3}), BatchNormOptions{false}));
}
