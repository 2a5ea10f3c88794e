// cuDNN conv2d (kernels/cudnn/conv2d.cpp) in the CUDA runtime's other math modes: with a one-byte workspace
// limit (any algorithm, determinism lifted) the kernels still match the CPU's, and with TF32 allowed the op
// agrees loosely with the CPU. Parity mode and everything else is in tests/ops/test_conv2d.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

const Device kGpu = cuda_device(0);

struct Case {
  std::string name;
  Shape x, w;
  Conv2dOptions options;
  bool bias = false;
};

Conv2dParams params_of(const Case& c) {
  Conv2dParams p;
  p.N = c.x[0];
  p.C = c.x[1];
  p.H = c.x[2];
  p.W = c.x[3];
  p.K = c.w[0];
  p.R = c.w[2];
  p.S = c.w[3];
  p.stride_h = c.options.stride.h;
  p.stride_w = c.options.stride.w;
  p.pad_h = c.options.padding.h;
  p.pad_w = c.options.padding.w;
  p.groups = c.options.groups;
  return p;
}

// The longest sum behind any output or gradient: C/groups·R·S (y), K/groups·R·S (dx), N·P·Q (dw).
double longest_sum(const Case& c) {
  const Conv2dParams p = params_of(c);
  return double(std::max({p.channels_per_group() * p.R * p.S, p.filters_per_group() * p.R * p.S, p.N * p.P() * p.Q()}));
}

// cuDNN adds in its own order (and may pick FFT or Winograd algorithms, deterministic ones in parity mode),
// so the f32 error grows like the square root of the sum's length; an indexing bug is of the order of the
// values themselves (up to ~sqrt(terms)/4 here).
Tolerance tolerance(DType dt, const Case& c) {
  if (dt == DType::f64) return {1e-11, 1e-11};
  return {2e-5 * std::sqrt(longest_sum(c)), 1e-4};
}

// Inputs for one case: x in [-1, 1), weights in [-0.5, 0.5), bias when the case has one.
std::vector<Tensor> inputs_of(const Case& c, DType dt, uint64_t seed) {
  std::vector<Tensor> v{random_tensor(c.x, dt, seed).requires_grad_(),
                        random_tensor(c.w, dt, seed + 1, -0.5, 0.5).requires_grad_()};
  if (c.bias) v.push_back(random_tensor({c.w[0]}, dt, seed + 2).requires_grad_());
  return v;
}

Tensor run_conv(const Case& c, const std::vector<Tensor>& v) {
  return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), c.options);
}

std::string label_of(const Case& c) {
  return cat("conv2d ", c.name, " x", shape_str(c.x), " w", shape_str(c.w), " s", c.options.stride.h, "x",
             c.options.stride.w, " p", c.options.padding.h, "x", c.options.padding.w, " g", c.options.groups,
             c.bias ? " +bias" : "");
}

// Some of ResNet-18's convolutions at batch 2 on a 224x224 image, and a depthwise one.
const std::vector<Case> kTf32Cases = {
    {"stem 7x7/2", {2, 3, 224, 224}, {64, 3, 7, 7}, {.stride = 2, .padding = 3}},
    {"layer1 3x3", {2, 64, 56, 56}, {64, 64, 3, 3}, {.stride = 1, .padding = 1}},
    {"layer2 downsample 1x1/2", {2, 64, 56, 56}, {128, 64, 1, 1}, {.stride = 2}},
    {"layer4 3x3", {2, 512, 7, 7}, {512, 512, 3, 3}, {.stride = 1, .padding = 1}},
    {"depthwise", {2, 32, 15, 15}, {32, 1, 3, 3}, {.stride = 1, .padding = 1, .groups = 32}, true},
};

// The op, forward and backward on one device, in the math mode of the moment.
struct Run {
  Tensor out;
  std::vector<Tensor> grads;
};
Run run_on(Device device, const Case& c, const std::vector<Tensor>& inputs, uint64_t seed) {
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) xs.push_back(x.detach().to(device).clone().requires_grad_());
  Run r;
  Tensor y = run_conv(c, xs);
  r.out = y.detach().to(kCPU);
  backward(sum(mul(y, random_tensor(y.shape(), y.dtype(), seed).to(device))));
  for (const Tensor& x : xs) r.grads.push_back(x.grad().to(kCPU));
  return r;
}

}  // namespace

TEST_CASE("cuDNN conv2d kernels with a one-byte workspace limit (any algorithm) match the CPU kernels") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const Case c{"3x3", {2, 8, 11, 9}, {6, 4, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}};
    Conv2dParams p = params_of(c);
    const Shape y_shape{p.N, p.K, p.P(), p.Q()};
    Tensor x = random_tensor(c.x, dt, 3300), w = random_tensor(c.w, dt, 3301), dy = random_tensor(y_shape, dt, 3302);
    Tensor xg = x.to(kGpu), wg = w.to(kGpu), dyg = dy.to(kGpu);
    const Tolerance tol = tolerance(dt, c);

    // A workspace limit of one byte leaves only the algorithms that need none: same results. Not every
    // direction has a deterministic algorithm without workspace, so this lifts the determinism.
    cuda::MathModeGuard any_algorithm({.allow_tf32 = false, .deterministic = false});
    Conv2dParams tight = p;
    tight.workspace_limit_bytes = 1;
    Tensor y_cpu = Tensor::empty(y_shape, dt), y_gpu = full(y_shape, NAN, dt, kGpu);
    kernels().conv2d_forward.on(kCPU)(exec_context(kCPU), dt, p, x.raw_data(), w.raw_data(), nullptr, y_cpu.raw_data());
    kernels().conv2d_forward.on(kGpu)(exec_context(kGpu), dt, tight, xg.raw_data(), wg.raw_data(), nullptr,
                                      y_gpu.raw_data());
    CHECK_CLOSE(y_gpu.to(kCPU), y_cpu, tol.atol, tol.rtol);
    Tensor dx_cpu = Tensor::empty(c.x, dt), dx_gpu = full(c.x, NAN, dt, kGpu);
    kernels().conv2d_backward_data.on(kCPU)(exec_context(kCPU), dt, p, dy.raw_data(), w.raw_data(), dx_cpu.raw_data());
    kernels().conv2d_backward_data.on(kGpu)(exec_context(kGpu), dt, tight, dyg.raw_data(), wg.raw_data(),
                                            dx_gpu.raw_data());
    CHECK_CLOSE(dx_gpu.to(kCPU), dx_cpu, tol.atol, tol.rtol);
    Tensor dw_cpu = Tensor::empty(c.w, dt), dw_tight = full(c.w, NAN, dt, kGpu);
    kernels().conv2d_backward_filter.on(kCPU)(exec_context(kCPU), dt, p, dy.raw_data(), x.raw_data(), dw_cpu.raw_data());
    kernels().conv2d_backward_filter.on(kGpu)(exec_context(kGpu), dt, tight, dyg.raw_data(), xg.raw_data(),
                                              dw_tight.raw_data());
    CHECK_CLOSE(dw_tight.to(kCPU), dw_cpu, tol.atol, tol.rtol);
    cuda::synchronize(0);
  }
}

TEST_CASE("conv2d on CUDA with TF32 allowed still agrees loosely with the CPU") {
  SCPN_REQUIRE_CUDA();
  cuda::MathModeGuard tf32({.allow_tf32 = true, .deterministic = false});
  uint64_t seed = 3600;
  for (const Case& c : kTf32Cases) {
    CAPTURE(label_of(c));
    const std::vector<Tensor> inputs = inputs_of(c, DType::f32, seed += 3);
    const Run gpu = run_on(kGpu, c, inputs, seed), cpu = run_on(kCPU, c, inputs, seed);
    // TF32 keeps 10 mantissa bits: each product is off by up to ~2^-10 relative, and the errors of a sum
    // of n terms (|term| ~ 0.25) grow like sqrt(n).
    const double atol = 2e-3 * std::sqrt(longest_sum(c));
    CHECK_CLOSE(gpu.out, cpu.out, atol, 1e-2);
    for (size_t i = 0; i < cpu.grads.size(); ++i) CHECK_CLOSE(gpu.grads[i], cpu.grads[i], atol, 1e-2);
  }
}
