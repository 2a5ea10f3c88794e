// conv2d: forward and all three gradients as op-harness cases against the naive 7-loop convolution
// (tests/support/reference.cpp) over many geometries (ResNet-18's layers, groups, depthwise, strides, odd
// sizes), with each CPU GEMM; the bias-gradient kernel; batch chunking under workspace limits; the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/dispatch.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/each_cpu_gemm.h"
#include "tests/support/op_harness.h"
#include "tests/support/reference.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;
using test::reference::Conv2dShape;

namespace {

struct Config {
  std::string label;
  Conv2dShape s;
  bool bias = true;
};

Config make(std::string label, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
            Conv2dOptions o, bool bias) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = S;
  s.stride_h = o.stride.h, s.stride_w = o.stride.w, s.pad_h = o.padding.h, s.pad_w = o.padding.w;
  s.groups = o.groups;
  return {label, s, bias};
}

// The same from the shapes of x [N, C, H, W] and weight [K, C/groups, R, S].
Config make(std::string label, const Shape& x, const Shape& w, Conv2dOptions o, bool bias = false) {
  return make(std::move(label), x[0], x[1], x[2], x[3], w[0], w[2], w[3], o, bias);
}

Conv2dOptions options_of(const Conv2dShape& s) {
  return Conv2dOptions{{s.stride_h, s.stride_w}, {s.pad_h, s.pad_w}, s.groups};
}

// Geometries covering every path of the CPU kernels: the direct 3x3 kernel, im2col with one and several
// images per chunk, padding wider than the kernel's reach, strides, groups, depthwise, and both 1x1 paths
// (per-image GEMM for wide images or a single image, packed images otherwise).
std::vector<Config> forward_configs() {
  return {
      make("3x3 pad 1, batch 1, 5x7", 1, 3, 5, 7, 4, 3, 3, {.stride = 1, .padding = 1}, true),
      make("3x3 pad 1, batch 3, 5x7, no bias", 3, 3, 5, 7, 4, 3, 3, {.stride = 1, .padding = 1}, false),
      make("3x3 stride 2 pad 1, groups 2", 3, 4, 5, 7, 6, 3, 3, {.stride = 2, .padding = 1, .groups = 2}, false),
      make("3x3 pad 2", 3, 2, 5, 7, 3, 3, 3, {.stride = 1, .padding = 2}, true),
      make("3x3 no padding", 2, 3, 6, 5, 2, 3, 3, {}, true),
      make("depthwise 3x3 pad 1", 3, 4, 5, 7, 4, 3, 3, {.stride = 1, .padding = 1, .groups = 4}, true),
      make("depthwise x2 multiplier, stride 2", 1, 3, 7, 5, 6, 3, 3, {.stride = 2, .padding = 1, .groups = 3}, true),
      make("7x7 stride 2 pad 3 (ImageNet stem)", 2, 3, 17, 15, 4, 7, 7, {.stride = 2, .padding = 3}, true),
      make("1x1 packed images", 3, 5, 5, 7, 4, 1, 1, {}, true),
      make("1x1 batch 1 (per-image GEMM)", 1, 5, 5, 7, 3, 1, 1, {}, false),
      make("1x1 wide images (per-image GEMM)", 3, 6, 24, 24, 5, 1, 1, {}, true),
      make("1x1 wide images, groups 2", 2, 4, 24, 23, 6, 1, 1, {.groups = 2}, true),
      make("1x1 stride 2 (ResNet shortcut)", 3, 4, 8, 7, 8, 1, 1, {.stride = 2}, false),
      make("mixed stride and padding", 2, 4, 6, 5, 8, 3, 2, {.stride = {2, 1}, .padding = {0, 2}, .groups = 2}, true),
      make("kernel larger than the image", 2, 2, 3, 3, 3, 5, 5, {.stride = 1, .padding = 1}, true),
      make("one pixel", 1, 1, 1, 1, 1, 1, 1, {}, true),
      make("4x4 layer, 3x3 pad 1", 3, 8, 4, 4, 16, 3, 3, {.stride = 1, .padding = 1}, true),
      // The direct kernel (kernels/cpu/conv2d_direct.h): filter blocks of every size (13 = 8 + 4 + 1),
      // rows of one and two vectors with partly filled last vectors, a single input channel, whole images
      // in one vector, stride 2 (odd and even sizes: the last odd row and column of an even image read
      // past dy), filter gradients along the rows (<= 16 filters) and in the lanes (more, stride 2, 4x4),
      // stride-2 data gradients with one and two vectors of input channels (40 > 32 floats, > 16 doubles).
      make("direct 3x3, 13 filters, 23 wide", 2, 5, 6, 23, 13, 3, 3, {.stride = 1, .padding = 1}, true),
      make("direct 3x3, 21 filters, 11 wide", 2, 3, 9, 11, 21, 3, 3, {.stride = 1, .padding = 1}, false),
      make("direct 3x3, one input channel, 32 wide", 2, 1, 3, 32, 17, 3, 3, {.stride = 1, .padding = 1}, true),
      make("direct 3x3, whole 4x4 images in a vector", 3, 6, 4, 4, 19, 3, 3, {.stride = 1, .padding = 1}, true),
      make("direct 3x3 stride 2, 13x27 to 7x14", 2, 3, 13, 27, 10, 3, 3, {.stride = 2, .padding = 1}, true),
      make("direct 3x3 stride 2, 28x28 to 14x14", 2, 4, 28, 28, 5, 3, 3, {.stride = 2, .padding = 1}, false),
      make("direct 3x3 stride 2, 7x7 to a whole 4x4", 3, 5, 7, 7, 19, 3, 3, {.stride = 2, .padding = 1}, true),
      make("direct 3x3 stride 2, 40 input channels, 10x9", 2, 40, 10, 9, 6, 3, 3, {.stride = 2, .padding = 1}, false),
      // Large enough for the kernels' own loops (im2col, col2im, copies) to run on several threads.
      make("threaded 3x3 pad 1, groups 2", 3, 16, 20, 19, 8, 3, 3, {.stride = 1, .padding = 1, .groups = 2}, true),
      make("threaded 1x1 wide images", 2, 32, 24, 24, 8, 1, 1, {}, true),
  };
}

// Small geometries for the f64 central differences, every path again at a size they can afford.
std::vector<Config> gradcheck_configs() {
  return {
      make("3x3 pad 1, batch 1", 1, 2, 5, 4, 3, 3, 3, {.stride = 1, .padding = 1}, true),
      make("direct 3x3, 7 filters, 10 wide", 1, 2, 3, 10, 7, 3, 3, {.stride = 1, .padding = 1}, false),
      make("direct 3x3, whole 2x3 images", 2, 3, 2, 3, 5, 3, 3, {.stride = 1, .padding = 1}, true),
      make("direct 3x3 stride 2, 5x9 to 3x5", 1, 2, 5, 9, 3, 3, 3, {.stride = 2, .padding = 1}, true),
      make("direct 3x3 stride 2, 3x5 to a whole 2x3", 2, 2, 3, 5, 3, 3, 3, {.stride = 2, .padding = 1}, false),
      make("3x3 stride 2 pad 1, groups 2, batch 2, 5x7", 2, 4, 5, 7, 4, 3, 3,
           {.stride = 2, .padding = 1, .groups = 2}, true),
      make("3x3 pad 2, batch 3", 3, 2, 4, 3, 2, 3, 3, {.stride = 1, .padding = 2}, false),
      make("depthwise 3x3 pad 1", 2, 3, 4, 5, 3, 3, 3, {.stride = 1, .padding = 1, .groups = 3}, true),
      make("1x1 packed images", 3, 3, 4, 4, 2, 1, 1, {}, false),
      make("1x1 batch 1 (per-image GEMM)", 1, 3, 5, 5, 2, 1, 1, {}, true),
      make("1x1 stride 2", 2, 2, 5, 5, 4, 1, 1, {.stride = 2}, true),
      make("7x7 stride 2 pad 3", 1, 2, 7, 6, 2, 7, 7, {.stride = 2, .padding = 3}, true),
      make("mixed stride and padding", 2, 2, 5, 4, 2, 3, 2, {.stride = {2, 1}, .padding = {0, 1}}, true),
  };
}

// ResNet-18's convolutions at batch 2 on a 224x224 image (the 3x3/1 layers of each stage once: the
// repeated blocks have the same shapes).
std::vector<Config> resnet18_configs() {
  return {
      make("stem 7x7/2", {2, 3, 224, 224}, {64, 3, 7, 7}, {.stride = 2, .padding = 3}),
      make("layer1 3x3", {2, 64, 56, 56}, {64, 64, 3, 3}, {.stride = 1, .padding = 1}),
      make("layer2 3x3/2", {2, 64, 56, 56}, {128, 64, 3, 3}, {.stride = 2, .padding = 1}),
      make("layer2 downsample 1x1/2", {2, 64, 56, 56}, {128, 64, 1, 1}, {.stride = 2}),
      make("layer2 3x3", {2, 128, 28, 28}, {128, 128, 3, 3}, {.stride = 1, .padding = 1}),
      make("layer3 3x3/2", {2, 128, 28, 28}, {256, 128, 3, 3}, {.stride = 2, .padding = 1}),
      make("layer3 downsample 1x1/2", {2, 128, 28, 28}, {256, 128, 1, 1}, {.stride = 2}),
      make("layer3 3x3", {2, 256, 14, 14}, {256, 256, 3, 3}, {.stride = 1, .padding = 1}),
      make("layer4 3x3/2", {2, 256, 14, 14}, {512, 256, 3, 3}, {.stride = 2, .padding = 1}),
      make("layer4 downsample 1x1/2", {2, 256, 14, 14}, {512, 256, 1, 1}, {.stride = 2}),
      make("layer4 3x3", {2, 512, 7, 7}, {512, 512, 3, 3}, {.stride = 1, .padding = 1}),
      make("small-image stem 3x3", {2, 3, 32, 32}, {64, 3, 3, 3}, {.stride = 1, .padding = 1}),
  };
}

// Groups, depthwise, odd sizes everywhere, batch 1, bias on and off.
std::vector<Config> odd_configs() {
  return {
      make("grouped", {1, 6, 9, 11}, {4, 3, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}, true),
      make("grouped x2 filters", {2, 8, 10, 10}, {16, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 4}),
      make("depthwise", {2, 32, 15, 15}, {32, 1, 3, 3}, {.stride = 1, .padding = 1, .groups = 32}, true),
      make("depthwise /2", {1, 16, 14, 14}, {16, 1, 3, 3}, {.stride = 2, .padding = 1, .groups = 16}),
      make("odd everything", {3, 5, 13, 7}, {7, 5, 2, 4}, {.stride = {2, 3}, .padding = {1, 2}}, true),
      make("1x1 on 1x1", {1, 7, 1, 1}, {3, 7, 1, 1}, {}, true),
      make("kernel wider than the image", {1, 2, 3, 3}, {2, 2, 5, 5}, {.stride = 1, .padding = 2}),
      make("stride above kernel", {2, 3, 17, 17}, {5, 3, 2, 2}, {.stride = 3}, true),
      make("batch 1 odd channels", {1, 33, 9, 9}, {17, 33, 3, 3}, {.stride = 2, .padding = 1}),
      make("batch 1 stem + bias", {1, 3, 33, 31}, {8, 3, 7, 7}, {.stride = 2, .padding = 3}, true),
  };
}

int64_t forward_macs(const Conv2dShape& s) { return s.N * s.K * s.P() * s.Q() * (s.C / s.groups) * s.R * s.S; }

int64_t input_elements(const Config& c) {
  const Conv2dShape& s = c.s;
  return s.N * s.C * s.H * s.W + s.K * (s.C / s.groups) * s.R * s.S + (c.bias ? s.K : 0);
}

// The longest sum behind any output or gradient: C/groups·R·S (y), K/groups·R·S (dx), N·P·Q (dw).
double longest_sum(const Conv2dShape& s) {
  return double(std::max({(s.C / s.groups) * s.R * s.S, (s.K / s.groups) * s.R * s.S, s.N * s.P() * s.Q()}));
}

// Devices: cuDNN adds in its own order (and may pick FFT or Winograd algorithms, deterministic ones in
// parity mode), so the f32 error grows like the square root of the sum's length; an indexing bug is of
// the order of the values themselves (up to ~sqrt(terms)/4 here).
Tolerance device_tolerance(DType dt, const Conv2dShape& s) {
  if (dt == DType::f64) return {1e-11, 1e-11};
  return {2e-5 * std::sqrt(longest_sum(s)), 1e-4};
}

std::string label_of(const Config& c) {
  const Conv2dShape& s = c.s;
  return cat("conv2d ", c.label, " x", shape_str({s.N, s.C, s.H, s.W}), " w",
             shape_str({s.K, s.C / s.groups, s.R, s.S}), " s", s.stride_h, "x", s.stride_w, " p", s.pad_h, "x",
             s.pad_w, " g", s.groups, c.bias ? " +bias" : "");
}

// y and, for the inputs that want them, dx, dw and db of sum(y ⊙ g) from the direct loops.
Expected direct_convolution(const Conv2dShape& s, const std::vector<Tensor>& in, const Tensor& g) {
  const std::vector<double> xv = in[0].to_vector(), wv = in[1].to_vector();
  const std::vector<double> bv = in.size() > 2 ? in[2].to_vector() : std::vector<double>{};
  Expected e{test::reference::conv2d_direct(s, xv, wv, bv), std::vector<std::vector<double>>(in.size())};
  bool any = false;
  for (const Tensor& t : in) any = any || t.requires_grad();
  if (!any) return e;
  test::reference::Conv2dGrads r = test::reference::conv2d_direct_backward(s, xv, wv, g.to_vector());
  if (in[0].requires_grad()) e.grads[0] = std::move(r.dx);
  if (in[1].requires_grad()) e.grads[1] = std::move(r.dw);
  if (in.size() > 2 && in[2].requires_grad()) e.grads[2] = std::move(r.db);
  return e;
}

// The naive loops run some 50M products a second: larger layers are left to device parity.
constexpr int64_t kOracleMacs = 4'000'000;
// Central differences cost one forward per input element.
constexpr int64_t kGradcheckCost = 2'000'000;

// One conv2d case: x in [-1, 1), weights in [-0.5, 0.5), bias in [-1, 1); `grads` says which inputs want
// gradients (bit 0 x, 1 weight, 2 bias).
OpCase conv_case(const Config& c, uint64_t seed, int grads = 7, std::string suffix = "") {
  const Conv2dShape s = c.s;
  const bool bias = c.bias;
  const Conv2dOptions options = options_of(s);
  const double products = double(forward_macs(s));
  OpCase oc{.name = label_of(c) + suffix,
            .inputs = [=](DType dt) {
              std::vector<Tensor> v{random_tensor({s.N, s.C, s.H, s.W}, dt, seed).requires_grad_((grads & 1) != 0),
                                    random_tensor({s.K, s.C / s.groups, s.R, s.S}, dt, seed + 1, -0.5, 0.5)
                                        .requires_grad_((grads & 2) != 0)};
              if (bias) v.push_back(random_tensor({s.K}, dt, seed + 2).requires_grad_((grads & 4) != 0));
              return v;
            },
            .op = [s, options](const std::vector<Tensor>& v) {
              Tensor y = conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), options);
              CHECK(y.shape() == Shape{s.N, s.K, s.P(), s.Q()});
              CHECK(y.dtype() == v[0].dtype());
              return y;
            },
            .oracle_f32 = {2e-5, 2e-5},
            .oracle_f64 = {1e-12, 1e-12},
            .gradcheck = products * double(input_elements(c)) <= double(kGradcheckCost),
            .parity_f32 = device_tolerance(DType::f32, s),
            .parity_f64 = device_tolerance(DType::f64, s)};
  if (products <= double(kOracleMacs))
    oc.oracle = [s](const std::vector<Tensor>& in, const Tensor& g) { return direct_convolution(s, in, g); };
  return oc;
}

// The bias-gradient kernel alone (kernels().conv2d_backward_bias), db[k] = Σ_{n,p,q} dy[n,k,p,q]: a 1x1
// convolution of a P x Q image has exactly that dy.
Tensor bias_gradient(const std::vector<Tensor>& v) {
  const Tensor& dy = v[0];
  const Device device = dy.device();
  Conv2dParams p;
  p.N = dy.size(0);
  p.C = 1;
  p.K = dy.size(1);
  p.H = dy.size(2);
  p.W = dy.size(3);
  p.R = p.S = 1;
  Tensor db = Tensor::empty({p.K}, dy.dtype(), device);
  kernels().conv2d_backward_bias.on(device)(exec_context(device), dy.dtype(), p, dy.raw_data(), db.raw_data());
  return db;
}

OpCase bias_gradient_case(const Shape& shape, uint64_t seed) {
  // The CPU adds each plane in T before the images in double, the GPU everything in double; the naive sum
  // is in double. The f32 difference grows with the plane: allow ~1e-7 per term added.
  const double terms = double(shape[0] * shape[2] * shape[3]);
  const Tolerance f32{1e-7 * terms, 1e-6}, f64{1e-14 * terms, 1e-6};
  return {.name = cat("conv2d_backward_bias dy", shape_str(shape)),
          .inputs = [=](DType dt) { return std::vector<Tensor>{random_tensor(shape, dt, seed)}; },
          .op = bias_gradient,
          .oracle = [](const std::vector<Tensor>& in, const Tensor&) {
            const Shape& s = in[0].shape();
            const std::vector<double> dy = in[0].to_vector();
            const int64_t planes = s[1], plane = s[2] * s[3];
            Expected e{std::vector<double>(size_t(planes), 0.0), {}};
            for (int64_t n = 0; n < s[0]; ++n)
              for (int64_t k = 0; k < planes; ++k)
                for (int64_t i = 0; i < plane; ++i) e.out[size_t(k)] += dy[size_t((n * planes + k) * plane + i)];
            return e;
          },
          .oracle_f32 = f32,
          .oracle_f64 = f64,
          .gradcheck = false,  // a kernel, not an op with a backward
          .parity_f32 = f32,
          .parity_f64 = f64};
}

std::vector<OpCase> conv2d_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 100;
  for (const Config& c : forward_configs()) cases.push_back(conv_case(c, seed += 10));
  for (const Config& c : gradcheck_configs()) cases.push_back(conv_case(c, seed += 10));
  // Too large for the naive loops (the small-image stem excepted) and for central differences: mostly
  // device parity.
  for (const Config& c : resnet18_configs()) cases.push_back(conv_case(c, seed += 10));
  for (const Config& c : odd_configs()) cases.push_back(conv_case(c, seed += 10));
  // Every subset of the gradients: only those asked for are computed, each right.
  const Config masked = make("3x3/2", {2, 16, 12, 12}, {24, 16, 3, 3}, {.stride = 2, .padding = 1}, true);
  for (int grads = 1; grads < 8; ++grads)
    cases.push_back(conv_case(masked, seed += 10, grads, cat(" grads mask ", grads)));
  // With a bias: the op's gradients run on cuDNN and our bias kernel together on a device, which sums in
  // its own order (parity mode: no TF32, deterministic algorithms).
  for (const Config& c : {make("with bias", {2, 3, 15, 17}, {8, 3, 3, 3}, {.stride = 2, .padding = 1}, true),
                          make("with bias", {1, 16, 7, 7}, {32, 16, 1, 1}, {}, true),
                          make("with bias", {2, 4, 9, 9}, {6, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}, true),
                          make("with bias", {1, 3, 32, 32}, {16, 3, 7, 7}, {.stride = 2, .padding = 3}, true)}) {
    OpCase oc = conv_case(c, seed += 10);
    oc.parity_f32 = {1e-4, 1e-4};
    cases.push_back(std::move(oc));
  }
  // The bias-gradient kernel: odd planes, batch 1, an empty batch, ResNet-sized planes.
  for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{1, 7, 5, 3}, Shape{3, 33, 13, 11}, Shape{0, 4, 3, 3},
                             Shape{2, 64, 56, 56}, Shape{8, 512, 7, 7}, Shape{1, 10, 1, 1}})
    cases.push_back(bias_gradient_case(shape, seed += 10));
  return cases;
}

// Inputs for the chunking test: the same values as tensors of `dtype` and, rounded, as doubles.
struct Operands {
  Tensor x, w, b, dy;
  std::vector<double> xv, wv, bv, dyv;  // the same values (after rounding to dtype) for the reference
};

Operands make_operands(const Conv2dShape& s, bool with_bias, DType dtype, uint64_t seed) {
  Operands o;
  o.x = random_f64({s.N, s.C, s.H, s.W}, seed).to(dtype);
  o.w = random_f64({s.K, s.C / s.groups, s.R, s.S}, seed + 1).to(dtype);
  if (with_bias) o.b = random_f64({s.K}, seed + 2).to(dtype);
  o.dy = random_f64({s.N, s.K, s.P(), s.Q()}, seed + 3).to(dtype);
  o.xv = o.x.to_vector();
  o.wv = o.w.to_vector();
  if (with_bias) o.bv = o.b.to_vector();
  o.dyv = o.dy.to_vector();
  return o;
}

// The op on one device, forward and a backward of sum(y ⊙ R) for a seeded R, everything copied back.
struct Run {
  Tensor out;
  std::vector<Tensor> grads;
};
Run run_on(Device device, const Config& c, const std::vector<Tensor>& inputs, uint64_t seed) {
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) xs.push_back(x.detach().to(device).clone().requires_grad_());
  Run r;
  Tensor y = conv2d(xs[0], xs[1], xs.size() > 2 ? xs[2] : Tensor(), options_of(c.s));
  r.out = y.detach().to(kCPU);
  backward(sum(mul(y, random_tensor(y.shape(), y.dtype(), seed).to(device))));
  for (const Tensor& x : xs) r.grads.push_back(x.grad().to(kCPU));
  return r;
}

}  // namespace

TEST_CASE("conv2d: op harness") {
  const std::vector<OpCase> cases = conv2d_cases();
  test::with_each_cpu_gemm([&](const char* gemm) { test::run_op_cases(cat("conv2d (", gemm, ")"), cases); });
}

TEST_CASE("conv2d kernels split the batch into chunks under a workspace limit") {
  // Calls the kernels directly: the front-end leaves the limit to the backend. The limits give one
  // image per chunk, two per chunk with a ragged last chunk (5 images -> 2, 2, 1), and all at once.
  const std::vector<Config> configs = {
      make("3x3 pad 1", 5, 3, 6, 5, 4, 3, 3, {.stride = 1, .padding = 1}, true),
      make("3x3 stride 2, groups 2", 5, 4, 7, 6, 6, 3, 3, {.stride = 2, .padding = 1, .groups = 2}, true),
      make("1x1 packed", 5, 4, 3, 3, 6, 1, 1, {}, false),
  };
  uint64_t seed = 900;
  for (const Config& cfg : configs) {
    const Conv2dShape& s = cfg.s;
    Conv2dParams p;
    p.N = s.N, p.C = s.C, p.H = s.H, p.W = s.W, p.K = s.K, p.R = s.R, p.S = s.S;
    p.stride_h = s.stride_h, p.stride_w = s.stride_w, p.pad_h = s.pad_h, p.pad_w = s.pad_w, p.groups = s.groups;
    // What one image needs: its column matrix and its [K, P·Q] slice of the layout buffer (in f64).
    const int64_t per_image = (s.C * s.R * s.S + s.K) * s.P() * s.Q() * 8;
    for (int64_t limit : {int64_t(1), 2 * per_image + 1, int64_t(1) << 30}) {
      CAPTURE(cfg.label);
      CAPTURE(limit);
      p.workspace_limit_bytes = limit;
      Operands o = make_operands(s, cfg.bias, DType::f64, seed += 10);
      Tensor y = Tensor::empty({s.N, s.K, s.P(), s.Q()}, DType::f64);
      Tensor dx = full(o.x.shape(), 7.0, DType::f64);  // overwritten, whatever it held
      Tensor dw = full(o.w.shape(), 7.0, DType::f64);
      Tensor db = full({s.K}, 7.0, DType::f64);
      const ExecContext ctx = exec_context(kCPU);
      kernels().conv2d_forward.on(kCPU)(ctx, DType::f64, p, o.x.raw_data(), o.w.raw_data(),
                                        cfg.bias ? o.b.raw_data() : nullptr, y.raw_data());
      kernels().conv2d_backward_data.on(kCPU)(ctx, DType::f64, p, o.dy.raw_data(), o.w.raw_data(), dx.raw_data());
      kernels().conv2d_backward_filter.on(kCPU)(ctx, DType::f64, p, o.dy.raw_data(), o.x.raw_data(), dw.raw_data());
      kernels().conv2d_backward_bias.on(kCPU)(ctx, DType::f64, p, o.dy.raw_data(), db.raw_data());
      auto expected = test::reference::conv2d_direct_backward(s, o.xv, o.wv, o.dyv);
      CHECK_CLOSE(y.to_vector(), test::reference::conv2d_direct(s, o.xv, o.wv, o.bv), 1e-12, 1e-12);
      CHECK_CLOSE(dx.to_vector(), expected.dx, 1e-12, 1e-12);
      CHECK_CLOSE(dw.to_vector(), expected.dw, 1e-12, 1e-12);
      CHECK_CLOSE(db.to_vector(), expected.db, 1e-12, 1e-12);
    }
  }
}

TEST_CASE("gpu: conv2d kernels on CUDA overwrite dw, and an empty batch gives zeros and writes nothing else") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  ParityModeScope parity_mode;
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const Config c = make("3x3", {2, 8, 11, 9}, {6, 4, 3, 3}, {.stride = 1, .padding = 1, .groups = 2});
    const Conv2dShape& s = c.s;
    const Shape x_shape{s.N, s.C, s.H, s.W}, w_shape{s.K, s.C / s.groups, s.R, s.S}, y_shape{s.N, s.K, s.P(), s.Q()};
    Conv2dParams p;
    p.N = s.N, p.C = s.C, p.H = s.H, p.W = s.W, p.K = s.K, p.R = s.R, p.S = s.S;
    p.stride_h = s.stride_h, p.stride_w = s.stride_w, p.pad_h = s.pad_h, p.pad_w = s.pad_w, p.groups = s.groups;
    Tensor x = random_tensor(x_shape, dt, 3300), w = random_tensor(w_shape, dt, 3301);
    Tensor dy = random_tensor(y_shape, dt, 3302);
    Tensor xg = x.to(gpu), wg = w.to(gpu), dyg = dy.to(gpu);

    // dw on the CPU, then on the GPU into a NaN-filled buffer: every element must be overwritten.
    Tensor dw_cpu = Tensor::empty(w_shape, dt);
    kernels().conv2d_backward_filter.on(kCPU)(exec_context(kCPU), dt, p, dy.raw_data(), x.raw_data(),
                                              dw_cpu.raw_data());
    Tensor dw_gpu = full(w_shape, NAN, dt, gpu);
    kernels().conv2d_backward_filter.on(gpu)(exec_context(gpu), dt, p, dyg.raw_data(), xg.raw_data(),
                                             dw_gpu.raw_data());
    const Tolerance tol = device_tolerance(dt, s);
    CHECK_CLOSE(dw_gpu.to(kCPU), dw_cpu, tol.atol, tol.rtol);

    // An empty batch: dw is zeros (over NaN), forward and data gradient have nothing to write.
    Conv2dParams empty = p;
    empty.N = 0;
    Tensor dw_empty = full(w_shape, NAN, dt, gpu);
    kernels().conv2d_backward_filter.on(gpu)(exec_context(gpu), dt, empty, dyg.raw_data(), xg.raw_data(),
                                             dw_empty.raw_data());
    CHECK(dw_empty.to_vector() == std::vector<double>(size_t(dw_empty.numel()), 0.0));
    kernels().conv2d_forward.on(gpu)(exec_context(gpu), dt, empty, xg.raw_data(), wg.raw_data(), nullptr, nullptr);
    kernels().conv2d_backward_data.on(gpu)(exec_context(gpu), dt, empty, dyg.raw_data(), wg.raw_data(), nullptr);
    synchronize(gpu);
  }
}

TEST_CASE("gpu: conv2d of an empty batch on CUDA: zero weight and bias gradients") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = zeros({0, 3, 6, 6}, dt, gpu).requires_grad_();
    Tensor w = random_tensor({4, 3, 3, 3}, dt, 3400).to(gpu).requires_grad_();
    Tensor b = random_tensor({4}, dt, 3401).to(gpu).requires_grad_();
    Tensor y = conv2d(x, w, b, {.stride = 2, .padding = 1});
    CHECK(y.shape() == Shape{0, 4, 3, 3});
    backward(y, zeros({0, 4, 3, 3}, dt, gpu));
    CHECK(x.grad().shape() == Shape{0, 3, 6, 6});
    CHECK(w.grad().to_vector() == std::vector<double>(4 * 3 * 3 * 3, 0.0));
    CHECK(b.grad().to_vector() == std::vector<double>(4, 0.0));
  }
}

TEST_CASE("gpu: conv2d on CUDA in parity mode is bitwise repeatable (deterministic algorithms, cached choice)") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  ParityModeScope parity_mode;
  const Config c = resnet18_configs()[2];  // layer2 3x3/2: a filter gradient summing over many positions
  const Conv2dShape& s = c.s;
  for (DType dt : {DType::f32, DType::f64}) {
    const std::vector<Tensor> inputs{random_tensor({s.N, s.C, s.H, s.W}, dt, 3500),
                                     random_tensor({s.K, s.C / s.groups, s.R, s.S}, dt, 3501, -0.5, 0.5)};
    const Run first = run_on(gpu, c, inputs, 3510), second = run_on(gpu, c, inputs, 3510);
    CHECK(first.out.to_vector() == second.out.to_vector());
    for (size_t i = 0; i < first.grads.size(); ++i) CHECK(first.grads[i].to_vector() == second.grads[i].to_vector());
  }
}

TEST_CASE("conv2d computes only the gradients that are needed") {
  Tensor x = random_f64({2, 3, 5, 5}, 1).requires_grad_();
  Tensor w = random_f64({4, 3, 3, 3}, 2);
  Tensor b = random_f64({4}, 3).requires_grad_();
  backward(conv2d(x, w, b, {.stride = 1, .padding = 1}), ones({2, 4, 5, 5}, DType::f64));
  CHECK(x.grad().defined());
  CHECK(!w.grad().defined());
  CHECK(b.grad().to_vector() == std::vector<double>(4, 50.0));  // Σ over 2 images of 5x5 ones

  Tensor x2 = random_f64({2, 3, 5, 5}, 4);
  Tensor w2 = random_f64({4, 3, 3, 3}, 5).requires_grad_();
  backward(conv2d(x2, w2), ones({2, 4, 3, 3}, DType::f64));
  CHECK(w2.grad().shape() == Shape{4, 3, 3, 3});
  CHECK(!x2.grad().defined());

  NoGradGuard no_grad;
  CHECK(!conv2d(x, w2, b).requires_grad());
}

TEST_CASE("conv2d of an empty batch") {
  Tensor x = zeros({0, 3, 6, 6}, DType::f64).requires_grad_();
  Tensor w = random_f64({4, 3, 3, 3}, 1).requires_grad_();
  Tensor b = random_f64({4}, 2).requires_grad_();
  Tensor y = conv2d(x, w, b, {.stride = 2, .padding = 1});
  CHECK(y.shape() == Shape{0, 4, 3, 3});
  backward(y, zeros({0, 4, 3, 3}, DType::f64));
  CHECK(x.grad().shape() == Shape{0, 3, 6, 6});
  CHECK(w.grad().to_vector() == std::vector<double>(4 * 3 * 3 * 3, 0.0));
  CHECK(b.grad().to_vector() == std::vector<double>(4, 0.0));
}

TEST_CASE("conv2d options accept one integer or an {h, w} pair") {
  Tensor x = random_f64({1, 2, 9, 8}, 1);
  Tensor w = random_f64({3, 2, 3, 3}, 2);
  CHECK(conv2d(x, w, Tensor(), {.stride = 2}).shape() == Shape{1, 3, 4, 3});
  CHECK(conv2d(x, w, Tensor(), {.stride = {2, 1}, .padding = {1, 0}}).shape() == Shape{1, 3, 5, 6});
  CHECK(conv2d(x, w, Tensor(), Conv2dOptions{3, 2}).shape() == Shape{1, 3, 4, 4});
}

TEST_CASE("conv2d bad input names the op and the shapes") {
  Tensor x = zeros({2, 3, 8, 8});
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 2, 3, 3})),
                       "conv2d: x [2, 3, 8, 8] has 3 channels but weight [4, 2, 3, 3] with groups 1 expects 2", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), Tensor(), {.stride = {0, 1}}),
                       "conv2d: stride [0, 1] must be >= 1", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), Tensor(), {.stride = 1, .padding = -1}),
                       "conv2d: padding [-1, -1] must be >= 0", Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({1, 1, 2, 8}), zeros({1, 1, 3, 3}), Tensor(), {.stride = 1, .padding = {0, 1}}),
                       "conv2d: the 3x3 kernel does not fit the padded input 2x10 of x [1, 1, 2, 8] (padding [0, 1]): "
                       "the output would be smaller than 1x1",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 1, 3, 3}), Tensor(), {.groups = 2}),
                       "conv2d: groups 2 does not divide the 3 channels of x [2, 3, 8, 8]", Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({2, 4, 8, 8}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}),
                       "conv2d: groups 2 does not divide the 3 filters of weight [3, 2, 3, 3]", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), Tensor(), {.groups = 0}), "conv2d: groups must be >= 1, got 0",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}, DType::f64)),
                       "conv2d: dtype mismatch: x is f32 [2, 3, 8, 8] on cpu, weight is f64 [4, 3, 3, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), zeros({4}, DType::f64)),
                       "conv2d: dtype mismatch: x is f32 [2, 3, 8, 8] on cpu, bias is f64 [4] on cpu", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), zeros({5})),
                       "conv2d: bias [5] must be [4], one value per filter of weight [4, 3, 3, 3]", Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({3, 8, 8}), zeros({4, 3, 3, 3})),
                       "conv2d: argument 'x' must be 4-D, got f32 [3, 8, 8] on cpu", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3})), "conv2d: argument 'weight' must be 4-D, got f32 [4, 3, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({2, 3, 8, 8}, DType::i32), zeros({4, 3, 3, 3}, DType::i32)),
                       "conv2d: argument 'x' must be f32 or f64, got i32 [2, 3, 8, 8] on cpu", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({0, 3, 3, 3})), "conv2d: weight [0, 3, 3, 3] has a zero-sized dimension",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({2, 3, 0, 8}), zeros({4, 3, 3, 3})),
                       "conv2d: x [2, 3, 0, 8] must have at least one channel, row and column", Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor(), zeros({4, 3, 3, 3})), "conv2d: argument 'x' is an undefined tensor", Error);
}
