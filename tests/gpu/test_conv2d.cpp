// CUDA (cuDNN) vs CPU parity of conv2d (kernels/cudnn/conv2d.cpp) through the conv2d op, forward and both
// gradients: every ResNet-18 convolution shape at batch 2 (7x7/2 stem, 3x3/1 and /2, 1x1/2 downsample),
// grouped and depthwise, odd sizes, batch 1, bias on and off, f32 (parity mode: no TF32, deterministic
// algorithms) and f64; then direct kernel calls (overwrite of a NaN-filled dw, an empty batch, a tiny
// workspace limit), bitwise repeatability in parity mode, and TF32 mode agreeing loosely with the CPU.
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

std::string label_of(const Case& c, DType dt) {
  return cat("conv2d ", c.name, " x", shape_str(c.x), " w", shape_str(c.w), " s", c.options.stride.h, "x",
             c.options.stride.w, " p", c.options.padding.h, "x", c.options.padding.w, " g", c.options.groups,
             c.bias ? " +bias " : " ", dtype_name(dt));
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

void check_cases(const std::vector<Case>& cases, uint64_t seed) {
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      const Tolerance tol = tolerance(dt, c);
      auto f = [&](const std::vector<Tensor>& v) { return run_conv(c, v); };
      CHECK_PARITY(label_of(c, dt), f, inputs_of(c, dt, seed += 3), tol, tol);
    }
  }
}

// ResNet-18's convolutions at batch 2 on a 224x224 image (the 3x3/1 layers of each stage once: the
// repeated blocks have the same shapes).
const std::vector<Case> kResNet18 = {
    {"stem 7x7/2", {2, 3, 224, 224}, {64, 3, 7, 7}, {.stride = 2, .padding = 3}},
    {"layer1 3x3", {2, 64, 56, 56}, {64, 64, 3, 3}, {.stride = 1, .padding = 1}},
    {"layer2 3x3/2", {2, 64, 56, 56}, {128, 64, 3, 3}, {.stride = 2, .padding = 1}},
    {"layer2 downsample 1x1/2", {2, 64, 56, 56}, {128, 64, 1, 1}, {.stride = 2}},
    {"layer2 3x3", {2, 128, 28, 28}, {128, 128, 3, 3}, {.stride = 1, .padding = 1}},
    {"layer3 3x3/2", {2, 128, 28, 28}, {256, 128, 3, 3}, {.stride = 2, .padding = 1}},
    {"layer3 downsample 1x1/2", {2, 128, 28, 28}, {256, 128, 1, 1}, {.stride = 2}},
    {"layer3 3x3", {2, 256, 14, 14}, {256, 256, 3, 3}, {.stride = 1, .padding = 1}},
    {"layer4 3x3/2", {2, 256, 14, 14}, {512, 256, 3, 3}, {.stride = 2, .padding = 1}},
    {"layer4 downsample 1x1/2", {2, 256, 14, 14}, {512, 256, 1, 1}, {.stride = 2}},
    {"layer4 3x3", {2, 512, 7, 7}, {512, 512, 3, 3}, {.stride = 1, .padding = 1}},
    {"small-image stem 3x3", {2, 3, 32, 32}, {64, 3, 3, 3}, {.stride = 1, .padding = 1}},
};

const std::vector<Case> kOddCases = {
    {"grouped", {1, 6, 9, 11}, {4, 3, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}, true},
    {"grouped x2 filters", {2, 8, 10, 10}, {16, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 4}},
    {"depthwise", {2, 32, 15, 15}, {32, 1, 3, 3}, {.stride = 1, .padding = 1, .groups = 32}, true},
    {"depthwise /2", {1, 16, 14, 14}, {16, 1, 3, 3}, {.stride = 2, .padding = 1, .groups = 16}},
    {"odd everything", {3, 5, 13, 7}, {7, 5, 2, 4}, {.stride = {2, 3}, .padding = {1, 2}}, true},
    {"1x1 on 1x1", {1, 7, 1, 1}, {3, 7, 1, 1}, {}, true},
    {"kernel wider than the image", {1, 2, 3, 3}, {2, 2, 5, 5}, {.stride = 1, .padding = 2}},
    {"stride above kernel", {2, 3, 17, 17}, {5, 3, 2, 2}, {.stride = 3}, true},
    {"batch 1 odd channels", {1, 33, 9, 9}, {17, 33, 3, 3}, {.stride = 2, .padding = 1}},
    {"batch 1 stem + bias", {1, 3, 33, 31}, {8, 3, 7, 7}, {.stride = 2, .padding = 3}, true},
};

// The op, forward and backward on one device, for the TF32 check (CHECK_PARITY always runs in parity mode).
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

// Sets the process's math mode for a scope.
class MathModeGuard {
 public:
  explicit MathModeGuard(cuda::MathMode mode) : saved_(cuda::math_mode()) { cuda::set_math_mode(mode); }
  ~MathModeGuard() { cuda::set_math_mode(saved_); }

 private:
  cuda::MathMode saved_;
};

}  // namespace

TEST_CASE("conv2d on CUDA matches the CPU on every ResNet-18 convolution shape (f32 parity mode, f64)") {
  SCPN_REQUIRE_CUDA();
  check_cases(kResNet18, 3000);
}

TEST_CASE("conv2d on CUDA matches the CPU: groups, depthwise, odd sizes, batch 1, bias on and off") {
  SCPN_REQUIRE_CUDA();
  check_cases(kOddCases, 3100);
}

TEST_CASE("conv2d on CUDA: only the gradients asked for, each matching the CPU") {
  SCPN_REQUIRE_CUDA();
  const Case c{"3x3/2", {2, 16, 12, 12}, {24, 16, 3, 3}, {.stride = 2, .padding = 1}, true};
  for (DType dt : {DType::f32, DType::f64}) {
    const Tolerance tol = tolerance(dt, c);
    auto f = [&](const std::vector<Tensor>& v) { return run_conv(c, v); };
    for (int needs = 1; needs < 8; ++needs) {
      std::vector<Tensor> v = inputs_of(c, dt, 3200 + uint64_t(needs));
      for (size_t i = 0; i < v.size(); ++i) v[i].requires_grad_((needs >> i) & 1);
      CHECK_PARITY(cat(label_of(c, dt), " grads mask ", needs), f, v, tol, tol);
    }
  }
}

TEST_CASE("conv2d kernels on CUDA: dw is overwritten, an empty batch gives zeros, a tiny workspace still works") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    cuda::ParityModeGuard parity;
    CAPTURE(dtype_name(dt));
    const Case c{"3x3", {2, 8, 11, 9}, {6, 4, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}};
    Conv2dParams p = params_of(c);
    const Shape y_shape{p.N, p.K, p.P(), p.Q()};
    Tensor x = random_tensor(c.x, dt, 3300), w = random_tensor(c.w, dt, 3301), dy = random_tensor(y_shape, dt, 3302);
    Tensor xg = x.to(kGpu), wg = w.to(kGpu), dyg = dy.to(kGpu);

    // dw on the CPU, then on the GPU into a NaN-filled buffer: every element must be overwritten.
    Tensor dw_cpu = Tensor::empty(c.w, dt);
    kernels().conv2d_backward_filter.on(kCPU)(exec_context(kCPU), dt, p, dy.raw_data(), x.raw_data(), dw_cpu.raw_data());
    Tensor dw_gpu = full(c.w, NAN, dt, kGpu);
    kernels().conv2d_backward_filter.on(kGpu)(exec_context(kGpu), dt, p, dyg.raw_data(), xg.raw_data(), dw_gpu.raw_data());
    const Tolerance tol = tolerance(dt, c);
    CHECK_CLOSE(dw_gpu.to(kCPU), dw_cpu, tol.atol, tol.rtol);

    // A workspace limit of one byte leaves only the algorithms that need none: same results. Not every
    // direction has a deterministic algorithm without workspace, so this part lifts the determinism.
    MathModeGuard any_algorithm({.allow_tf32 = false, .deterministic = false});
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
    Tensor dw_tight = full(c.w, NAN, dt, kGpu);
    kernels().conv2d_backward_filter.on(kGpu)(exec_context(kGpu), dt, tight, dyg.raw_data(), xg.raw_data(),
                                              dw_tight.raw_data());
    CHECK_CLOSE(dw_tight.to(kCPU), dw_cpu, tol.atol, tol.rtol);

    // An empty batch: dw is zeros (over NaN), forward and data gradient have nothing to write.
    Conv2dParams empty = p;
    empty.N = 0;
    Tensor dw_empty = full(c.w, NAN, dt, kGpu);
    kernels().conv2d_backward_filter.on(kGpu)(exec_context(kGpu), dt, empty, dyg.raw_data(), xg.raw_data(),
                                              dw_empty.raw_data());
    CHECK(dw_empty.to_vector() == std::vector<double>(size_t(dw_empty.numel()), 0.0));
    kernels().conv2d_forward.on(kGpu)(exec_context(kGpu), dt, empty, xg.raw_data(), wg.raw_data(), nullptr, nullptr);
    kernels().conv2d_backward_data.on(kGpu)(exec_context(kGpu), dt, empty, dyg.raw_data(), wg.raw_data(), nullptr);
    cuda::synchronize(0);
  }
}

TEST_CASE("conv2d of an empty batch on CUDA: zero weight and bias gradients") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = zeros({0, 3, 6, 6}, dt, kGpu).requires_grad_();
    Tensor w = random_tensor({4, 3, 3, 3}, dt, 3400).to(kGpu).requires_grad_();
    Tensor b = random_tensor({4}, dt, 3401).to(kGpu).requires_grad_();
    Tensor y = conv2d(x, w, b, {.stride = 2, .padding = 1});
    CHECK(y.shape() == Shape{0, 4, 3, 3});
    backward(y, zeros({0, 4, 3, 3}, dt, kGpu));
    CHECK(x.grad().shape() == Shape{0, 3, 6, 6});
    CHECK(w.grad().to_vector() == std::vector<double>(4 * 3 * 3 * 3, 0.0));
    CHECK(b.grad().to_vector() == std::vector<double>(4, 0.0));
  }
}

TEST_CASE("conv2d on CUDA in parity mode is bitwise repeatable (deterministic algorithms, cached choice)") {
  SCPN_REQUIRE_CUDA();
  cuda::ParityModeGuard parity;
  const Case c = kResNet18[2];  // 3x3/2: a filter gradient summing over many positions
  for (DType dt : {DType::f32, DType::f64}) {
    const std::vector<Tensor> inputs = inputs_of(c, dt, 3500);
    const Run first = run_on(kGpu, c, inputs, 3510), second = run_on(kGpu, c, inputs, 3510);
    CHECK(first.out.to_vector() == second.out.to_vector());
    for (size_t i = 0; i < first.grads.size(); ++i) CHECK(first.grads[i].to_vector() == second.grads[i].to_vector());
  }
}

TEST_CASE("conv2d on CUDA with TF32 allowed still agrees loosely with the CPU") {
  SCPN_REQUIRE_CUDA();
  MathModeGuard tf32({.allow_tf32 = true, .deterministic = false});
  uint64_t seed = 3600;
  for (const Case& c : {kResNet18[0], kResNet18[1], kResNet18[3], kResNet18[10], kOddCases[2]}) {
    CAPTURE(label_of(c, DType::f32));
    const std::vector<Tensor> inputs = inputs_of(c, DType::f32, seed += 3);
    const Run gpu = run_on(kGpu, c, inputs, seed), cpu = run_on(kCPU, c, inputs, seed);
    // TF32 keeps 10 mantissa bits: each product is off by up to ~2^-10 relative, and the errors of a sum
    // of n terms (|term| ~ 0.25) grow like sqrt(n).
    const double atol = 2e-3 * std::sqrt(longest_sum(c));
    CHECK_CLOSE(gpu.out, cpu.out, atol, 1e-2);
    for (size_t i = 0; i < cpu.grads.size(); ++i) CHECK_CLOSE(gpu.grads[i], cpu.grads[i], atol, 1e-2);
  }
}
