// batch_norm: training and eval, 1-D and 2-D, with and without weight/bias and running statistics, as
// op-harness cases against statistics, outputs and gradients computed by hand loops here (ResNet layers,
// odd sizes, batch 1, many values per channel); running-statistic updates; the argument errors.
#include <doctest/doctest.h>

#include <algorithm>

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

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

// One batch-norm case: which arguments are given, the mode, and the range of x.
struct Config {
  Shape shape;
  bool training = true;
  bool affine = true;          // weight and bias given, both wanting gradients
  bool frozen_weight = false;  // (without affine) a weight given that wants no gradient, no bias
  bool running = true;         // running_mean and running_var given (eval needs them)
  double eps = 1e-5, momentum = 0.1;
  double x_low = -1, x_high = 3;
  bool relu = false;  // max(·, 0) of the result (fused on the CPU in training mode)
};

// Where each argument sits in a case's inputs: x, then weight and bias, then running_mean and running_var.
struct Layout {
  int weight = -1, bias = -1, running_mean = -1, running_var = -1;
};

Layout layout_of(const Config& c) {
  Layout l;
  int next = 1;
  if (c.affine || c.frozen_weight) l.weight = next++;
  if (c.affine) l.bias = next++;
  if (c.running) {
    l.running_mean = next++;
    l.running_var = next++;
  }
  return l;
}

Tensor argument(const std::vector<Tensor>& v, int at) { return at < 0 ? Tensor() : v[size_t(at)]; }

// The outputs of the reference and, for the inputs that want them, the gradients of sum(y ⊙ g) with
// x̂ = (x − mean)·invstd: db = Σ g, dw = Σ g·x̂, and dx = w·invstd·g in eval (fixed statistics), or in
// training (statistics of the batch, m values per channel) dx = w·invstd·(g − Σg/m − x̂·Σ(g·x̂)/m).
Expected batch_norm_oracle(const Config& c, const std::vector<Tensor>& in, const Tensor& g) {
  const Layout l = layout_of(c);
  const Tensor& x = in[0];
  const Tensor weight = argument(in, l.weight), bias = argument(in, l.bias);
  std::vector<double> rm, rv;
  if (!c.training) {
    rm = argument(in, l.running_mean).to_vector();
    rv = argument(in, l.running_var).to_vector();
  }
  const ReferenceBatchNorm ref =
      reference_batch_norm(x, weight, bias, c.training ? nullptr : &rm, c.training ? nullptr : &rv, c.eps);
  Expected e{ref.y, std::vector<std::vector<double>>(in.size())};
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  const double m = double(N * HW);
  const std::vector<double> xv = x.to_vector();
  std::vector<double> gv = g.to_vector();
  // A ReLU after the normalisation: y = max(ŷ, 0), and the gradient reaches ŷ only where ŷ > 0.
  if (c.relu)
    for (size_t i = 0; i < gv.size(); ++i) {
      if (ref.y[i] <= 0) gv[i] = 0;
      e.out[i] = std::max(ref.y[i], 0.0);
    }
  const std::vector<double> wv = weight.defined() ? weight.to_vector() : std::vector<double>(size_t(C), 1.0);
  auto at = [&](int64_t n, int64_t ch, int64_t i) { return size_t((n * C + ch) * HW + i); };
  if (x.requires_grad()) e.grads[0].resize(xv.size());
  if (weight.defined() && weight.requires_grad()) e.grads[size_t(l.weight)].resize(size_t(C));
  if (bias.defined() && bias.requires_grad()) e.grads[size_t(l.bias)].resize(size_t(C));
  for (int64_t ch = 0; ch < C; ++ch) {
    const double mean = c.training ? ref.mean[size_t(ch)] : rm[size_t(ch)];
    const double invstd = 1.0 / std::sqrt((c.training ? ref.biased_var[size_t(ch)] : rv[size_t(ch)]) + c.eps);
    double g_sum = 0, gxhat_sum = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        g_sum += gv[at(n, ch, i)];
        gxhat_sum += gv[at(n, ch, i)] * (xv[at(n, ch, i)] - mean) * invstd;
      }
    if (!e.grads[0].empty())
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < HW; ++i) {
          const double xhat = (xv[at(n, ch, i)] - mean) * invstd, gi = gv[at(n, ch, i)];
          e.grads[0][at(n, ch, i)] = wv[size_t(ch)] * invstd *
                                     (c.training ? gi - g_sum / m - xhat * gxhat_sum / m : gi);
        }
    if (l.weight >= 0 && !e.grads[size_t(l.weight)].empty()) e.grads[size_t(l.weight)][size_t(ch)] = gxhat_sum;
    if (l.bias >= 0 && !e.grads[size_t(l.bias)].empty()) e.grads[size_t(l.bias)][size_t(ch)] = g_sum;
  }
  return e;
}

// The CUDA implementation engine/cuda/register.cpp puts in the dispatch table: cuDNN's, unless
// SCPN_CUDA_BATCH_NORM=ours.
bool registered_is_ours() {
  const char* e = std::getenv("SCPN_CUDA_BATCH_NORM");
  return e && std::string(e) == "ours";
}

// Devices. Ours accumulates in double like the CPU and differs only in the order of the additions, so f32
// results are within an ulp or two. cuDNN accumulates f32 in float: its per-channel sums (grad_weight,
// grad_bias) of m terms carry errors growing with m.
Tolerance value_tolerance(DType dt) {
  if (dt == DType::f64) return registered_is_ours() ? Tolerance{1e-12, 1e-12} : Tolerance{1e-10, 1e-10};
  return registered_is_ours() ? Tolerance{1e-5, 1e-5} : Tolerance{1e-4, 1e-4};
}
Tolerance sum_tolerance(DType dt, int64_t m) {
  if (dt == DType::f64) return registered_is_ours() ? Tolerance{1e-12, 1e-12} : Tolerance{1e-10, 1e-10};
  return registered_is_ours() ? Tolerance{1e-5, 1e-5} : Tolerance{1e-4 + 1e-7 * double(m), 1e-3};
}

std::string label_of(const Config& c) {
  return cat(c.relu ? "batch_norm + relu " : "batch_norm ", c.training ? "train " : "eval ", shape_str(c.shape),
             c.affine ? " affine" : c.frozen_weight ? " frozen weight" : "", c.running ? " running" : "", " eps ",
             c.eps);
}

// x in [x_low, x_high) (centred away from zero, so the statistics have a mean to remove), weight in
// [0.5, 1.5), bias in [-1, 1), running_mean in [-0.5, 0.5), running_var in [0.5, 2).
OpCase bn_case(const Config& c, uint64_t seed) {
  const int64_t C = c.shape[1];
  const int64_t m = shape_numel(c.shape) / C;
  const Layout l = layout_of(c);
  const BatchNormOptions options{.training = c.training, .momentum = c.momentum, .eps = c.eps, .relu = c.relu};
  return {.name = label_of(c),
          .inputs = [=](DType dt) {
            std::vector<Tensor> v{random_tensor(c.shape, dt, seed, c.x_low, c.x_high).requires_grad_()};
            if (l.weight >= 0) v.push_back(random_tensor({C}, dt, seed + 1, 0.5, 1.5).requires_grad_(c.affine));
            if (l.bias >= 0) v.push_back(random_tensor({C}, dt, seed + 2).requires_grad_());
            if (c.running) {
              v.push_back(random_tensor({C}, dt, seed + 3, -0.5, 0.5));
              v.push_back(random_tensor({C}, dt, seed + 4, 0.5, 2.0));
            }
            return v;
          },
          .op = [=](const std::vector<Tensor>& v) {
            return batch_norm(v[0], argument(v, l.weight), argument(v, l.bias), argument(v, l.running_mean),
                              argument(v, l.running_var), options);
          },
          .oracle = [c](const std::vector<Tensor>& in, const Tensor& g) { return batch_norm_oracle(c, in, g); },
          .oracle_f32 = {2e-5, 2e-5},
          .oracle_f64 = {1e-12, 1e-12},
          .gradcheck = shape_numel(c.shape) <= 2000,  // central differences: one forward per element
          .parity_f32 = value_tolerance(DType::f32),
          .parity_f64 = value_tolerance(DType::f64),
          .parity_grad_f32 = sum_tolerance(DType::f32, m),
          .parity_grad_f64 = sum_tolerance(DType::f64, m)};
}

const std::vector<Shape> kShapes = {Shape{2, 3, 4, 5}, Shape{1, 3, 5, 7}, Shape{5, 4}, Shape{3, 2, 1, 1},
                                    Shape{4, 5, 3, 1}};

// ResNet layers at batch 2, odd sizes, batch 1, several reduction chunks per channel (the CUDA kernels
// reduce 2048 values per block) with partial last chunks and pixel counts that do not divide the block,
// BatchNorm1d shapes (hw = 1) with one and with several chunks.
const std::vector<Shape> kDeviceShapes = {
    {2, 64, 56, 56}, {2, 512, 7, 7}, {3, 5, 7, 9}, {1, 3, 5, 7},  {8, 16, 33, 33}, {300, 4, 5, 7},
    {4, 5, 3, 1},    {5, 4},         {4100, 3},    {7, 33},       {256, 512},      {2, 1}};

std::vector<OpCase> batch_norm_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 10;
  // Small shapes, x in [-1, 5) (mean far from 0, variance far from 1): every combination of arguments in
  // training, weight frozen, and eval with and without weight and bias.
  for (const Shape& shape : kShapes) {
    for (bool affine : {true, false})
      for (bool running : {true, false})
        cases.push_back(bn_case({.shape = shape, .affine = affine, .running = running, .eps = 1e-3, .momentum = 0.3,
                                 .x_low = -1, .x_high = 5},
                                seed += 10));
    cases.push_back(
        bn_case({.shape = shape, .affine = false, .frozen_weight = true, .x_low = -2, .x_high = 2}, seed += 10));
    for (bool affine : {true, false})
      cases.push_back(
          bn_case({.shape = shape, .training = false, .affine = affine, .x_low = -2, .x_high = 2}, seed += 10));
  }
  // One value per channel is enough in eval mode.
  for (const Shape& shape : {Shape{1, 4}, Shape{1, 2, 1, 1}})
    for (bool affine : {true, false})
      cases.push_back(bn_case({.shape = shape, .training = false, .affine = affine}, seed += 10));
  // The fused ReLU (CPU, training; eval runs relu of batch_norm), values around zero so that about half the
  // outputs are cut: with and without affine, one and several values per row, f64 central differences.
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{5, 4}, Shape{4, 16, 7, 7}})
    for (bool training : {true, false})
      for (bool affine : {true, false})
        cases.push_back(bn_case({.shape = shape, .training = training, .affine = affine, .x_low = -2, .x_high = 2,
                                 .relu = true},
                                seed += 10));
  // f32 gradients in both modes against the f64 loops.
  for (bool training : {true, false})
    cases.push_back(bn_case({.shape = {3, 4, 5, 3}, .training = training, .x_low = -2, .x_high = 2}, seed += 10));
  // The device shapes, two epsilons (the backward must use the forward's saved invstd, whatever eps
  // produced it); too large for central differences beyond a few thousand elements.
  bool other_eps = false;
  for (const Shape& shape : kDeviceShapes) {
    other_eps = !other_eps;
    const double eps = other_eps ? 1e-3 : 1e-5, momentum = other_eps ? 0.3 : 0.1;
    for (bool training : {true, false})
      for (bool affine : {true, false})
        for (bool running : {true, false}) {
          if (!training && !running) continue;  // eval needs the running statistics
          OpCase oc = bn_case({.shape = shape, .training = training, .affine = affine, .running = running,
                               .eps = eps, .momentum = momentum},
                              seed += 10);
          // The CPU saves the mean in T and sums g·(x − mean) with it: in f32, the rounding of a mean near 1
          // shifts grad_weight by up to ~6e-8·Σg·invstd, growing with the m values per channel.
          oc.oracle_f32.atol += 1e-7 * double(shape_numel(shape) / shape[1]);
          cases.push_back(std::move(oc));
        }
  }
  return cases;
}

}  // namespace

TEST_CASE("batch_norm: op harness") { test::run_op_cases("batch_norm", batch_norm_cases()); }

TEST_CASE("training forward moves the running statistics, eval leaves them unchanged") {
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
        std::vector<double> want_rm, want_rv;
        for (size_t c = 0; c < size_t(C); ++c) {
          want_rm.push_back((1 - momentum) * rm0[c] + momentum * ref.mean[c]);
          want_rv.push_back((1 - momentum) * rv0[c] + momentum * ref.unbiased_var[c]);
        }
        CHECK_CLOSE(rm.to_vector(), want_rm, tol, tol);
        CHECK_CLOSE(rv.to_vector(), want_rv, tol, tol);
      }
    }
    // Eval, one value per channel included.
    for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 3, 5, 7}, Shape{5, 4}, Shape{1, 4}, Shape{1, 2, 1, 1}}) {
      CAPTURE(shape_str(shape));
      const int64_t C = shape[1];
      Tensor rm = random_f64({C}, 24).to(dtype), rv = random_f64({C}, 25, 0.5, 2.0).to(dtype);
      const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
      Tensor y = batch_norm(random_f64(shape, 21).to(dtype), random_f64({C}, 22, 0.5, 1.5).to(dtype),
                            random_f64({C}, 23).to(dtype), rm, rv, BatchNormOptions{false});
      CHECK(y.shape() == shape);
      CHECK(rm.to_vector() == rm0);
      CHECK(rv.to_vector() == rv0);
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
