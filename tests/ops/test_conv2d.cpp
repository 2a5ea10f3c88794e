// conv2d: forward and all three gradients against the naive 7-loop convolution
// (tests/support/reference.cpp) over many geometries in f32 and f64, the kernels' image chunking under
// small workspace limits, f64 gradient checks against central differences, and the exact error messages.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/conv2d.h"
#include "tests/support/check.h"
#include "tests/support/reference.h"

using namespace scpn;
using test::random_f64;
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

Conv2dOptions options_of(const Conv2dShape& s) {
  return Conv2dOptions{{s.stride_h, s.stride_w}, {s.pad_h, s.pad_w}, s.groups};
}

// Geometries covering every path of the CPU kernels: im2col with one and several images per chunk,
// padding wider than the kernel's reach, strides, groups, depthwise, and both 1x1 paths (per-image GEMM
// for wide images or a single image, packed images otherwise).
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
      // Large enough for the kernels' own loops (im2col, col2im, copies) to run on several threads.
      make("threaded 3x3 pad 1, groups 2", 3, 16, 20, 19, 8, 3, 3, {.stride = 1, .padding = 1, .groups = 2}, true),
      make("threaded 1x1 wide images", 2, 32, 24, 24, 8, 1, 1, {}, true),
  };
}

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

double tolerance(DType dtype) { return dtype == DType::f32 ? 2e-5 : 1e-12; }

}  // namespace

// Runs `body` with each CPU GEMM of this build in the dispatch slot (ours, and OpenBLAS when built): the
// convolution must be right whichever GEMM the context hands it. The registered GEMM is put back when the
// body ends, a failed REQUIRE (an exception) included.
template <class Body>
void with_each_gemm(Body&& body) {
  struct RestoreGemm {
    GemmFn* registered = kernels().gemm.cpu;
    ~RestoreGemm() { kernels().gemm.cpu = registered; }
  } restore;
  std::vector<std::pair<const char*, GemmFn*>> gemms = {{"our GEMM", cpu::gemm_ours}};
#if defined(SCPN_HAVE_OPENBLAS)
  gemms.push_back({"OpenBLAS", cpu::gemm_openblas});
#endif
  for (const auto& [name, fn] : gemms) {
    kernels().gemm.cpu = fn;
    CAPTURE(name);
    body();
  }
}

TEST_CASE("conv2d forward and gradients match the direct convolution (f32 and f64)") {
  uint64_t seed = 100;
  with_each_gemm([&] {
    for (DType dtype : {DType::f32, DType::f64}) {
      for (const Config& cfg : forward_configs()) {
        const Conv2dShape& s = cfg.s;
        CAPTURE(cfg.label);
        CAPTURE(dtype_name(dtype));
        Operands o = make_operands(s, cfg.bias, dtype, seed += 10);
        o.x.requires_grad_();
        o.w.requires_grad_();
        if (cfg.bias) o.b.requires_grad_();

        Tensor y = conv2d(o.x, o.w, o.b, options_of(s));
        REQUIRE(y.shape() == Shape{s.N, s.K, s.P(), s.Q()});
        CHECK(y.dtype() == dtype);
        const double tol = tolerance(dtype);
        CHECK_CLOSE(y.to_vector(), test::reference::conv2d_direct(s, o.xv, o.wv, o.bv), tol, tol);

        backward(y, o.dy);
        auto expected = test::reference::conv2d_direct_backward(s, o.xv, o.wv, o.dyv);
        CHECK_CLOSE(o.x.grad().to_vector(), expected.dx, tol, tol);
        CHECK_CLOSE(o.w.grad().to_vector(), expected.dw, tol, tol);
        if (cfg.bias) CHECK_CLOSE(o.b.grad().to_vector(), expected.db, tol, tol);
      }
    }
  });
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

TEST_CASE("conv2d gradient check (f64 central differences) w.r.t. x, weight and bias") {
  const std::vector<Config> configs = {
      make("3x3 pad 1, batch 1", 1, 2, 5, 4, 3, 3, 3, {.stride = 1, .padding = 1}, true),
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
  uint64_t seed = 500;
  for (const Config& cfg : configs) {
    const Conv2dShape& s = cfg.s;
    const Conv2dOptions opts = options_of(s);
    Tensor x = random_f64({s.N, s.C, s.H, s.W}, seed += 10).requires_grad_();
    Tensor w = random_f64({s.K, s.C / s.groups, s.R, s.S}, seed + 1).requires_grad_();
    std::vector<Tensor> inputs = {x, w};
    if (cfg.bias) inputs.push_back(random_f64({s.K}, seed + 2).requires_grad_());
    CHECK_GRADCHECK("conv2d " + cfg.label,
                    [opts](const std::vector<Tensor>& v) {
                      return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), opts);
                    },
                    inputs);
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
