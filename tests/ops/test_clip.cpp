// Global-norm clipping (engine/optim/clip.h): op-harness cases against a plain sum of squares, hand numbers
// after torch.nn.utils.clip_grad_norm_, the gradient-slot form, errors, and its kernels on a device.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/optim/clip.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;

namespace {

// clip_grad_norm over several tensors of one dtype (one of them empty), clipping or not: the inputs after
// clipping, flattened. The sum of squares is in double on every device; the scale is one multiplication.
std::vector<test::OpCase> clip_cases() {
  const std::vector<Shape> shapes = {{1}, {0}, {4097}, {64, 3, 3, 3}, {3, 5000}, {100003}};
  std::vector<test::OpCase> cases;
  for (double max_norm : {100.0, 1e4}) {  // the total norm is about 600
    cases.push_back({.name = cat("clip_grad_norm max_norm ", max_norm),
                     .inputs = [shapes](DType d) {
                       std::vector<Tensor> in;
                       for (size_t i = 0; i < shapes.size(); ++i)
                         in.push_back(test::random_tensor(shapes[i], d, 300 + i, -3.0, 3.0));
                       return in;
                     },
                     .op = [max_norm](const std::vector<Tensor>& in) {
                       std::vector<Tensor> grads;
                       for (const Tensor& t : in) grads.push_back(t.clone());
                       clip_grad_norm(grads, max_norm);
                       return test::flat_concat(grads);
                     },
                     .oracle = [max_norm](const std::vector<Tensor>& in, const Tensor&) {
                       std::vector<double> all;
                       for (const Tensor& t : in) {
                         const std::vector<double> v = t.to_vector();
                         all.insert(all.end(), v.begin(), v.end());
                       }
                       double sq = 0;
                       for (double v : all) sq += v * v;
                       const double factor = max_norm / (std::sqrt(sq) + 1e-6);
                       if (factor < 1.0)
                         for (double& v : all) v *= factor;
                       return test::Expected{all, {}};
                     },
                     .oracle_f32 = {1e-7, 1e-6},
                     .oracle_f64 = {1e-14, 1e-13},
                     .gradcheck = false,
                     .parity_f32 = {1e-7, 1e-6},
                     .parity_f64 = {1e-12, 1e-11}});
  }
  return cases;
}

}  // namespace

TEST_CASE("clip: op harness") { test::run_op_cases("clip", clip_cases()); }

TEST_CASE("clip_grad_norm against hand numbers") {
  // ‖(3, 4)‖² + ‖(12)‖² = 9 + 16 + 144 = 169 → total norm 13.
  // max_norm 6.5: factor 6.5 / (13 + 1e-6) = 0.49999996…, so (3, 4) → (1.5, 2), 12 → 6 (to 1e-6).
  Tensor a = from_vector({3, 4}, {2}, DType::f64);
  Tensor b = from_vector({12}, {1}, DType::f32);  // mixed dtypes are grouped
  CHECK(clip_grad_norm({a, Tensor(), b}, 6.5) == doctest::Approx(13.0).epsilon(1e-12));
  const double f = 6.5 / (13.0 + 1e-6);
  CHECK_CLOSE(a.to_vector(), std::vector<double>({3 * f, 4 * f}), 1e-12, 0);
  CHECK_CLOSE(b.to_vector(), std::vector<double>({12 * f}), 1e-5, 0);
  CHECK_CLOSE(a.to_vector(), std::vector<double>({1.5, 2.0}), 1e-6, 0);
  // Below the limit nothing changes: the norm is now 6.5 − 5e-7.
  Tensor c = from_vector({1.5, 2}, {2}, DType::f64), d = from_vector({6}, {1}, DType::f64);
  CHECK(clip_grad_norm({c, d}, 100) == doctest::Approx(6.5));
  CHECK(c.to_vector() == std::vector<double>({1.5, 2}));
  CHECK(d.to_vector() == std::vector<double>({6}));
  // At exactly max_norm torch still multiplies by max_norm/(total + 1e-6) < 1; so do we.
  Tensor e = from_vector({3, 4}, {2}, DType::f64);
  CHECK(clip_grad_norm({e}, 5.0) == 5.0);
  CHECK(e.to_vector()[0] == doctest::Approx(3 * 5.0 / (5.0 + 1e-6)).epsilon(1e-15));
  CHECK(e.to_vector()[0] < 3.0);
  // Large tensors (several chunks) agree with a plain sum.
  Tensor big = test::random_f64({3, 5000}, 8);
  double sq = 0;
  for (double v : big.to_vector()) sq += v * v;
  CHECK(clip_grad_norm({big}, 1e9) == doctest::Approx(std::sqrt(sq)).epsilon(1e-13));
  // The slot form clips the gradients a slot holds for the listed parameters.
  Tensor P = zeros({2}, DType::f64), Q = zeros({1}, DType::f64), R = zeros({1}, DType::f64);
  GradientSlot slot;
  slot.set(P, from_vector({3, 4}, {2}, DType::f64));
  slot.set(Q, from_vector({12}, {1}, DType::f64));
  CHECK(clip_grad_norm(slot, {P, Q, R}, 6.5) == doctest::Approx(13.0));
  CHECK_CLOSE(slot.get(Q).to_vector(), std::vector<double>({12 * f}), 1e-12, 0);
  CHECK_THROWS_WITH_AS(clip_grad_norm({a}, 0.0), "clip_grad_norm: max_norm must be finite and > 0, got 0", Error);
}

TEST_CASE("gpu: grad_sum_squares and grad_scale equal the CPU over 200 buffers") {
  SCPN_REQUIRE_CUDA();
  const Device gpu_device = cuda_device(0);
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int64_t> small(1, 5000);
  std::vector<int64_t> sizes = {1, 0, 4096, 4097, 1000003};
  while (sizes.size() < 200) sizes.push_back(small(rng));
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<Tensor> cpu, gpu;
    std::vector<void*> cpu_ptrs, gpu_ptrs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      cpu.push_back(test::random_tensor({sizes[i]}, dtype, 300 + i, -3.0, 3.0));
      gpu.push_back(cpu.back().to(gpu_device));
      cpu_ptrs.push_back(cpu.back().raw_data());
      gpu_ptrs.push_back(gpu.back().raw_data());
    }
    auto sum_squares = [&](Device d) {
      GradListArgs list{sizes.data(), d.is_cpu() ? cpu_ptrs.data() : gpu_ptrs.data(), int64_t(sizes.size())};
      Tensor out = zeros({int64_t(sizes.size())}, DType::f64, d);
      kernels().grad_sum_squares.on(d)(exec_context(d), dtype, list, out.data<double>());
      return out.to_vector();
    };
    const std::vector<double> expected = sum_squares(kCPU);
    const std::vector<double> actual = sum_squares(gpu_device);
    INFO(dtype_name(dtype));
    CHECK_CLOSE(actual, expected, 0.0, 1e-11);
    CHECK(expected[1] == 0.0);
    CHECK_CLOSE(sum_squares(gpu_device), actual, 0.0, 0.0);  // deterministic

    for (Device d : {kCPU, gpu_device}) {
      GradListArgs list{sizes.data(), d.is_cpu() ? cpu_ptrs.data() : gpu_ptrs.data(), int64_t(sizes.size())};
      kernels().grad_scale.on(d)(exec_context(d), dtype, list, 0.37);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      INFO("buffer ", i, " of ", sizes[i], " elements");
      CHECK_CLOSE(gpu[i].to(kCPU), cpu[i], 0.0, 0.0);  // one multiplication in the dtype: exact
    }
  }
}
