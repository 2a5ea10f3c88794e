// CUDA batch norm's two implementations, ours (kernels/cuda/batch_norm.cu) and cuDNN's, called directly
// against the CPU kernels (train/eval forward, backward with every subset of gradients, odd shapes, f32 and
// f64), and ours bitwise repeatable. The op itself: tests/ops/test_batch_norm.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/cuda/runtime.h"
#include "engine/ops/batch_norm.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

const Device kGpu = cuda_device(0);

struct Impl {
  const char* name;
  BatchNormForwardTrainFn* train;
  BatchNormForwardEvalFn* eval;
  BatchNormBackwardFn* backward;
};

const Impl kOurs{"ours", cuda::batch_norm_forward_train, cuda::batch_norm_forward_eval, cuda::batch_norm_backward};
const Impl kCudnn{"cudnn", cudnn::batch_norm_forward_train, cudnn::batch_norm_forward_eval, cudnn::batch_norm_backward};

bool is_ours(const Impl& impl) { return impl.train == kOurs.train; }

// Ours accumulates in double like the CPU and differs only in the order of the additions, so f32 results
// are within an ulp or two. cuDNN accumulates f32 in float: its per-channel sums (grad_weight, grad_bias)
// of m terms carry errors growing with m.
Tolerance value_tolerance(const Impl& impl, DType dt) {
  if (dt == DType::f64) return is_ours(impl) ? Tolerance{1e-12, 1e-12} : Tolerance{1e-10, 1e-10};
  return is_ours(impl) ? Tolerance{1e-5, 1e-5} : Tolerance{1e-4, 1e-4};
}
Tolerance sum_tolerance(const Impl& impl, DType dt, int64_t m) {
  if (dt == DType::f64) return is_ours(impl) ? Tolerance{1e-12, 1e-12} : Tolerance{1e-10, 1e-10};
  return is_ours(impl) ? Tolerance{1e-5, 1e-5} : Tolerance{1e-4 + 1e-7 * double(m), 1e-3};
}

BatchNormShape shape_of(const Shape& x) {
  BatchNormShape s;
  s.n = x[0];
  s.c = x[1];
  s.hw = x.size() == 4 ? x[2] * x[3] : 1;
  return s;
}

// ResNet layers at batch 2, odd sizes, batch 1, several reduction chunks per channel (the CUDA kernels
// reduce 2048 values per block) with partial last chunks and pixel counts that do not divide the block,
// BatchNorm1d shapes (hw = 1) with one and with several chunks.
const std::vector<Shape> kShapes = {
    {2, 64, 56, 56}, {2, 512, 7, 7}, {3, 5, 7, 9}, {1, 3, 5, 7},  {8, 16, 33, 33}, {300, 4, 5, 7},
    {4, 5, 3, 1},    {5, 4},         {4100, 3},    {7, 33},       {256, 512},      {2, 1}};

// One batch-norm problem: CPU tensors of x and the per-channel arrays. x is centred away from zero
// ([-1, 3)) so the statistics have a mean to remove.
struct Problem {
  Shape shape;
  BatchNormShape s;
  DType dt;
  double eps, momentum;
  Tensor x, weight, bias, running_mean, running_var, grad_y;
};

Problem make_problem(const Shape& shape, DType dt, uint64_t seed) {
  Problem p;
  p.shape = shape;
  p.s = shape_of(shape);
  p.dt = dt;
  // Two epsilons: the backward must use the forward's saved invstd, whatever eps produced it.
  p.eps = seed % 2 ? 1e-3 : 1e-5;
  p.momentum = seed % 2 ? 0.3 : 0.1;
  const Shape c{p.s.c};
  p.x = random_tensor(shape, dt, seed, -1.0, 3.0);
  p.weight = random_tensor(c, dt, seed + 1, 0.5, 1.5);
  p.bias = random_tensor(c, dt, seed + 2);
  p.running_mean = random_tensor(c, dt, seed + 3, -0.5, 0.5);
  p.running_var = random_tensor(c, dt, seed + 4, 0.5, 2.0);
  p.grad_y = random_tensor(shape, dt, seed + 5);
  return p;
}

void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
Tensor on_gpu_or_none(const Tensor& t, bool present) { return present ? t.to(kGpu) : Tensor(); }
Tensor clone_or_none(const Tensor& t, bool present) { return present ? t.clone() : Tensor(); }
// Output buffers: NaN-filled on the GPU, so an element a kernel forgets to write shows up.
Tensor nan_output(const Shape& shape, DType dt, bool present) { return present ? full(shape, NAN, dt, kGpu) : Tensor(); }

void compare(const char* what, const Tensor& gpu, const Tensor& cpu, Tolerance tol) {
  CAPTURE(what);
  CHECK_CLOSE(gpu.to(kCPU), cpu, tol.atol, tol.rtol);
}

std::string label(const Impl& impl, const Problem& p) {
  return cat(impl.name, " ", shape_str(p.shape), " ", dtype_name(p.dt), " eps ", p.eps);
}

// Training forward with weight/bias and running statistics present or not.
void check_forward_train(const Impl& impl, const Problem& p, bool affine, bool running) {
  INFO(label(impl, p), " affine ", affine, " running ", running);
  const Shape c{p.s.c};
  Tensor y_cpu = Tensor::empty(p.shape, p.dt), mean_cpu = Tensor::empty(c, p.dt), invstd_cpu = Tensor::empty(c, p.dt);
  Tensor rm_cpu = clone_or_none(p.running_mean, running), rv_cpu = clone_or_none(p.running_var, running);
  kernels().batch_norm_forward_train.on(kCPU)(exec_context(kCPU), p.dt, p.s, p.eps, p.momentum, p.x.raw_data(),
                                              affine ? p.weight.raw_data() : nullptr,
                                              affine ? p.bias.raw_data() : nullptr, data_or_null(rm_cpu),
                                              data_or_null(rv_cpu), y_cpu.raw_data(), mean_cpu.raw_data(),
                                              invstd_cpu.raw_data());

  Tensor x = p.x.to(kGpu), w = on_gpu_or_none(p.weight, affine), b = on_gpu_or_none(p.bias, affine);
  Tensor rm = on_gpu_or_none(p.running_mean, running), rv = on_gpu_or_none(p.running_var, running);
  Tensor y = nan_output(p.shape, p.dt, true), mean = nan_output(c, p.dt, true), invstd = nan_output(c, p.dt, true);
  impl.train(exec_context(kGpu), p.dt, p.s, p.eps, p.momentum, x.raw_data(), data_or_null(w), data_or_null(b),
             data_or_null(rm), data_or_null(rv), y.raw_data(), mean.raw_data(), invstd.raw_data());

  const Tolerance tol = value_tolerance(impl, p.dt);
  compare("y", y, y_cpu, tol);
  compare("save_mean", mean, mean_cpu, tol);
  compare("save_invstd", invstd, invstd_cpu, tol);
  if (running) {
    compare("running_mean", rm, rm_cpu, tol);
    compare("running_var", rv, rv_cpu, tol);
  }
}

// Eval forward, with the saved statistics asked for or not.
void check_forward_eval(const Impl& impl, const Problem& p, bool affine, bool saves) {
  INFO(label(impl, p), " eval affine ", affine, " saves ", saves);
  const Shape c{p.s.c};
  Tensor y_cpu = Tensor::empty(p.shape, p.dt), mean_cpu = Tensor::empty(c, p.dt), invstd_cpu = Tensor::empty(c, p.dt);
  kernels().batch_norm_forward_eval.on(kCPU)(exec_context(kCPU), p.dt, p.s, p.eps, p.x.raw_data(),
                                             affine ? p.weight.raw_data() : nullptr,
                                             affine ? p.bias.raw_data() : nullptr, p.running_mean.raw_data(),
                                             p.running_var.raw_data(), y_cpu.raw_data(), mean_cpu.raw_data(),
                                             invstd_cpu.raw_data());

  Tensor x = p.x.to(kGpu), w = on_gpu_or_none(p.weight, affine), b = on_gpu_or_none(p.bias, affine);
  Tensor rm = p.running_mean.to(kGpu), rv = p.running_var.to(kGpu);
  Tensor y = nan_output(p.shape, p.dt, true), mean = nan_output(c, p.dt, saves), invstd = nan_output(c, p.dt, saves);
  impl.eval(exec_context(kGpu), p.dt, p.s, p.eps, x.raw_data(), data_or_null(w), data_or_null(b), rm.raw_data(),
            rv.raw_data(), y.raw_data(), data_or_null(mean), data_or_null(invstd));

  const Tolerance tol = value_tolerance(impl, p.dt);
  compare("y", y, y_cpu, tol);
  if (saves) {
    compare("save_mean", mean, mean_cpu, tol);
    compare("save_invstd", invstd, invstd_cpu, tol);
  }
  // Eval leaves the running statistics alone.
  CHECK(rm.to_vector() == p.running_mean.to_vector());
  CHECK(rv.to_vector() == p.running_var.to_vector());
}

// Backward from the statistics the CPU forward saved (the same numbers on both devices), for one subset
// of the gradients (bit 0: grad_x, bit 1: grad_weight, bit 2: grad_bias).
void check_backward(const Impl& impl, const Problem& p, bool training, bool affine, int wanted) {
  INFO(label(impl, p), training ? " training" : " eval", " backward affine ", affine, " gradients ", wanted);
  const Shape c{p.s.c};
  Tensor y = Tensor::empty(p.shape, p.dt), mean = Tensor::empty(c, p.dt), invstd = Tensor::empty(c, p.dt);
  Tensor rm = p.running_mean.clone(), rv = p.running_var.clone();
  if (training)
    kernels().batch_norm_forward_train.on(kCPU)(exec_context(kCPU), p.dt, p.s, p.eps, p.momentum, p.x.raw_data(),
                                                p.weight.raw_data(), p.bias.raw_data(), rm.raw_data(), rv.raw_data(),
                                                y.raw_data(), mean.raw_data(), invstd.raw_data());
  else
    kernels().batch_norm_forward_eval.on(kCPU)(exec_context(kCPU), p.dt, p.s, p.eps, p.x.raw_data(),
                                               p.weight.raw_data(), p.bias.raw_data(), rm.raw_data(), rv.raw_data(),
                                               y.raw_data(), mean.raw_data(), invstd.raw_data());
  const bool want_x = wanted & 1, want_w = wanted & 2, want_b = wanted & 4;
  Tensor gx_cpu = Tensor::empty(p.shape, p.dt), gw_cpu = Tensor::empty(c, p.dt), gb_cpu = Tensor::empty(c, p.dt);
  kernels().batch_norm_backward.on(kCPU)(exec_context(kCPU), p.dt, p.s, training, p.eps, p.x.raw_data(), p.grad_y.raw_data(),
                                         affine ? p.weight.raw_data() : nullptr, mean.raw_data(), invstd.raw_data(),
                                         gx_cpu.raw_data(), gw_cpu.raw_data(), gb_cpu.raw_data());

  Tensor x = p.x.to(kGpu), gy = p.grad_y.to(kGpu), w = on_gpu_or_none(p.weight, affine);
  Tensor mean_g = mean.to(kGpu), invstd_g = invstd.to(kGpu);
  Tensor gx = nan_output(p.shape, p.dt, want_x), gw = nan_output(c, p.dt, want_w), gb = nan_output(c, p.dt, want_b);
  impl.backward(exec_context(kGpu), p.dt, p.s, training, p.eps, x.raw_data(), gy.raw_data(), data_or_null(w),
                mean_g.raw_data(), invstd_g.raw_data(), data_or_null(gx), data_or_null(gw), data_or_null(gb));

  if (want_x) compare("grad_x", gx, gx_cpu, value_tolerance(impl, p.dt));
  if (want_w) compare("grad_weight", gw, gw_cpu, sum_tolerance(impl, p.dt, p.s.per_channel()));
  if (want_b) compare("grad_bias", gb, gb_cpu, sum_tolerance(impl, p.dt, p.s.per_channel()));
}

void check_implementation(const Impl& impl, uint64_t seed) {
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : kShapes) {
      const Problem p = make_problem(shape, dt, ++seed);
      for (bool affine : {true, false}) {
        for (bool running : {true, false}) check_forward_train(impl, p, affine, running);
        for (bool saves : {true, false}) check_forward_eval(impl, p, affine, saves);
        for (bool training : {true, false})
          for (int wanted = 1; wanted < 8; ++wanted) check_backward(impl, p, training, affine, wanted);
      }
    }
  }
}

}  // namespace

TEST_CASE("our CUDA batch norm matches the CPU kernels (train/eval forward, backward, null arguments)") {
  SCPN_REQUIRE_CUDA();
  check_implementation(kOurs, 4000);
}

TEST_CASE("cuDNN batch norm matches the CPU kernels (train/eval forward, backward, null arguments)") {
  SCPN_REQUIRE_CUDA();
  check_implementation(kCudnn, 4100);
}

TEST_CASE("our CUDA batch norm is bitwise repeatable") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    const Problem p = make_problem({8, 16, 33, 33}, dt, 4300);
    const Shape c{p.s.c};
    auto run = [&] {
      Tensor x = p.x.to(kGpu), w = p.weight.to(kGpu), b = p.bias.to(kGpu), gy = p.grad_y.to(kGpu);
      Tensor rm = p.running_mean.to(kGpu), rv = p.running_var.to(kGpu);
      Tensor y = Tensor::empty(p.shape, dt, kGpu), mean = Tensor::empty(c, dt, kGpu), invstd = Tensor::empty(c, dt, kGpu);
      Tensor gx = Tensor::empty(p.shape, dt, kGpu), gw = Tensor::empty(c, dt, kGpu), gb = Tensor::empty(c, dt, kGpu);
      const ExecContext ctx = exec_context(kGpu);
      cuda::batch_norm_forward_train(ctx, dt, p.s, p.eps, p.momentum, x.raw_data(), w.raw_data(), b.raw_data(),
                                     rm.raw_data(), rv.raw_data(), y.raw_data(), mean.raw_data(), invstd.raw_data());
      cuda::batch_norm_backward(ctx, dt, p.s, true, p.eps, x.raw_data(), gy.raw_data(), w.raw_data(), mean.raw_data(),
                                invstd.raw_data(), gx.raw_data(), gw.raw_data(), gb.raw_data());
      std::vector<std::vector<double>> out;
      for (const Tensor& t : {y, mean, invstd, rm, rv, gx, gw, gb}) out.push_back(t.to_vector());
      return out;
    };
    CHECK(run() == run());
  }
}
