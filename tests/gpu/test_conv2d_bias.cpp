// CUDA vs CPU parity of the conv2d bias gradient (kernels/cuda/conv2d.cu): the kernel called directly
// (independent of cuDNN: odd planes, batch 1, an empty batch, ResNet-sized planes), then through conv2d
// with a bias, where the whole op's gradients run on cuDNN and our kernel together.
#include <doctest/doctest.h>

#include <vector>

#include "engine/dispatch.h"
#include "engine/ops/conv2d.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

// db[k] for dy [N, K, P, Q] on one device (a 1x1 convolution of an image of P x Q has exactly that dy).
Tensor bias_gradient_on(Device device, const Tensor& dy) {
  Conv2dParams p;
  p.N = dy.size(0);
  p.C = 1;
  p.K = dy.size(1);
  p.H = dy.size(2);
  p.W = dy.size(3);
  p.R = p.S = 1;
  Tensor on_device = dy.to(device);
  Tensor db = Tensor::empty({p.K}, dy.dtype(), device);
  kernels().conv2d_backward_bias.on(device)(exec_context(device), dy.dtype(), p, on_device.raw_data(), db.raw_data());
  return db.to(kCPU);
}

}  // namespace

TEST_CASE("conv2d_backward_bias on CUDA matches the CPU kernel") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1500;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{1, 7, 5, 3}, Shape{3, 33, 13, 11}, Shape{0, 4, 3, 3},
                               Shape{2, 64, 56, 56}, Shape{8, 512, 7, 7}, Shape{1, 10, 1, 1}}) {
      CAPTURE(shape_str(shape));
      CAPTURE(dtype_name(dt));
      Tensor dy = random_tensor(shape, dt, ++seed);
      // The CPU adds each plane in T before the images in double; the GPU adds everything in double. The
      // f32 difference grows with the plane: allow ~1e-7 per term added.
      const double terms = double(shape[0] * shape[2] * shape[3]);
      const double atol = dt == DType::f64 ? 1e-14 * terms : 1e-7 * terms;
      CHECK_CLOSE(bias_gradient_on(cuda_device(0), dy), bias_gradient_on(kCPU, dy), atol, 1e-6);
    }
  }
}

TEST_CASE("conv2d with a bias on CUDA matches the CPU, bias gradient included") {
  SCPN_REQUIRE_CUDA();
  struct Case {
    Shape x, w;
    Conv2dOptions options;
  };
  const std::vector<Case> cases = {
      {{2, 3, 15, 17}, {8, 3, 3, 3}, {.stride = 2, .padding = 1}},
      {{1, 16, 7, 7}, {32, 16, 1, 1}, {}},
      {{2, 4, 9, 9}, {6, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}},
      {{1, 3, 32, 32}, {16, 3, 7, 7}, {.stride = 2, .padding = 3}},
  };
  uint64_t seed = 1600;
  for (DType dt : {DType::f32, DType::f64}) {
    // cuDNN runs in parity mode (no TF32, deterministic algorithms), but sums in its own order.
    const Tolerance tol = dt == DType::f64 ? Tolerance{1e-11, 1e-11} : Tolerance{1e-4, 1e-4};
    for (const Case& c : cases) {
      Tensor x = random_tensor(c.x, dt, ++seed).requires_grad_();
      Tensor w = random_tensor(c.w, dt, ++seed, -0.5, 0.5).requires_grad_();
      Tensor b = random_tensor({c.w[0]}, dt, ++seed).requires_grad_();
      auto conv = [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], c.options); };
      CHECK_PARITY(cat("conv2d+bias x", shape_str(c.x), " w", shape_str(c.w), " ", dtype_name(dt)), conv,
                   (std::vector<Tensor>{x, w, b}), tol, tol);
    }
  }
}
