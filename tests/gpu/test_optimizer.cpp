// CUDA SGD and AdamW (kernels/cuda/optimizer.cu) against the CPU kernels: the engine optimizers
// (engine/optim/sgd.h, adamw.h) over 200 parameters of random sizes (1 element up to several chunks) on
// cuda:0 and on the CPU, three steps with some parameters skipping the first one (so one launch mixes
// first and later steps, and AdamW step counts), every SGD variant; then direct kernel calls with an empty
// tensor in the list and AdamW steps far apart. f32 and f64. Skips without a CUDA device.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

const Device kGpu = cuda_device(0);

struct Tol {
  double atol, rtol;
};
// The same element formula in the same type on both devices; only FMA contraction may differ.
Tol tolerance(DType dtype) { return dtype == DType::f64 ? Tol{1e-12, 1e-12} : Tol{1e-6, 1e-5}; }

// 200 shapes: one element first, a few multi-chunk tensors (the kernel's chunk is 16384 elements), the
// rest random up to 3000 elements, some 4-D.
std::vector<Shape> parameter_shapes() {
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<int64_t> small(1, 3000);
  std::vector<Shape> shapes = {{1}, {16384}, {16385}, {100003}, {64, 64, 3, 3}, {1, 1, 1, 1}, {7, 3, 3, 3}};
  while (shapes.size() < 200) shapes.push_back({small(rng)});
  return shapes;
}

struct Twin {
  std::vector<Tensor> cpu, gpu;
};

Twin make_params(DType dtype, uint64_t seed) {
  Twin t;
  const std::vector<Shape> shapes = parameter_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    t.cpu.push_back(test::random_tensor(shapes[i], dtype, seed + i));
    t.gpu.push_back(t.cpu.back().to(kGpu));
  }
  return t;
}

// Step s's gradients: on step 0 only the even-numbered parameters get one (the others skip it).
void set_gradients(const Twin& params, int step, uint64_t seed) {
  for (size_t i = 0; i < params.cpu.size(); ++i) {
    if (step == 0 && i % 2 == 1) {
      params.cpu[i].set_grad(Tensor());
      params.gpu[i].set_grad(Tensor());
      continue;
    }
    Tensor g = test::random_tensor(params.cpu[i].shape(), params.cpu[i].dtype(), seed + 1000 * uint64_t(step) + i);
    params.cpu[i].set_grad(g);
    params.gpu[i].set_grad(g.to(kGpu));
  }
}

void check_same(const std::string& what, const Tensor& gpu, const Tensor& cpu) {
  const Tol tol = tolerance(cpu.dtype());
  INFO(what);
  CHECK(gpu.device() == kGpu);
  CHECK_CLOSE(gpu.to(kCPU), cpu, tol.atol, tol.rtol);
}

void check_optimizers(const std::string& label, const Twin& params, const Optimizer& cpu, const Optimizer& gpu) {
  for (size_t i = 0; i < params.cpu.size(); ++i)
    check_same(label + " param " + std::to_string(i), params.gpu[i], params.cpu[i]);
  const NamedTensors cpu_state = cpu.state_tensors(), gpu_state = gpu.state_tensors();
  REQUIRE(cpu_state.size() == gpu_state.size());
  for (size_t i = 0; i < cpu_state.size(); ++i) {
    CHECK(cpu_state[i].first == gpu_state[i].first);
    check_same(label + " " + cpu_state[i].first, gpu_state[i].second, cpu_state[i].second);
  }
}

// Three steps of the same optimizer built by `make` on both devices.
template <class Make>
void run_twins(const std::string& label, DType dtype, uint64_t seed, Make make) {
  Twin params = make_params(dtype, seed);
  auto cpu = make(params.cpu);
  auto gpu = make(params.gpu);
  for (int step = 0; step < 3; ++step) {
    set_gradients(params, step, seed);
    cpu.step();
    gpu.step();
  }
  check_optimizers(label + " " + dtype_name(dtype), params, cpu, gpu);
}

std::vector<Tensor> first_half(const std::vector<Tensor>& v) { return {v.begin(), v.begin() + v.size() / 2}; }
std::vector<Tensor> second_half(const std::vector<Tensor>& v) { return {v.begin() + v.size() / 2, v.end()}; }

}  // namespace

TEST_CASE("cuda SGD equals the CPU over 200 parameters, every variant") {
  SCPN_REQUIRE_CUDA();
  const std::vector<std::pair<std::string, SgdOptions>> variants = {
      {"plain", {}},
      {"weight decay, no momentum", {.weight_decay = 1e-3}},
      {"momentum 0.9 + decay 5e-4", {.momentum = 0.9, .weight_decay = 5e-4}},
      {"nesterov", {.momentum = 0.9, .weight_decay = 1e-4, .nesterov = true}},
      {"dampening", {.momentum = 0.5, .dampening = 0.3, .weight_decay = 1e-2}},
  };
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& [name, options] : variants)
      run_twins("SGD " + name, dtype, 7, [&](const std::vector<Tensor>& p) { return SGD(p, 0.1, options); });
    // The SCPN recipe's two groups (no decay on the second), with a group lr scale.
    run_twins("SGD two groups", dtype, 8, [&](const std::vector<Tensor>& p) {
      return SGD({SgdGroup{first_half(p), {.momentum = 0.9, .weight_decay = 5e-4}, 1.0},
                  SgdGroup{second_half(p), {.momentum = 0.9}, 0.5}},
                 0.1);
    });
  }
}

TEST_CASE("cuda AdamW equals the CPU over 200 parameters") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    run_twins("AdamW defaults", dtype, 9, [](const std::vector<Tensor>& p) { return AdamW(p, 1e-2); });
    run_twins("AdamW no decay", dtype, 10, [](const std::vector<Tensor>& p) {
      return AdamW(p, 3e-3, {.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0});
    });
  }
}

TEST_CASE("cuda sgd_step/adamw_step kernels: an empty tensor in the list, mixed first steps, distant steps") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    const std::vector<int64_t> sizes = {5, 0, 1, 40000, 333};
    // Per tensor: param, grad, momentum buffer / exp_avg, exp_avg_sq, on each device.
    std::vector<Tensor> cpu, gpu;
    for (size_t i = 0; i < sizes.size(); ++i)
      for (uint64_t k = 0; k < 4; ++k) {
        // Moments must be >= 0 for exp_avg_sq: draw them in [0, 1).
        Tensor t = test::random_tensor({sizes[i]}, dtype, 100 * i + k, k == 3 ? 0.0 : -1.0, 1.0);
        cpu.push_back(t);
        gpu.push_back(t.to(kGpu));
      }
    auto sgd_list = [&](std::vector<Tensor>& v) {
      std::vector<SgdTensor> list;
      for (size_t i = 0; i < sizes.size(); ++i)
        list.push_back({sizes[i], v[4 * i].raw_data(), v[4 * i + 1].raw_data(), v[4 * i + 2].raw_data(), i % 2 == 0});
      return list;
    };
    auto adamw_list = [&](std::vector<Tensor>& v) {
      const int64_t steps[] = {1, 2, 7, 1000, 3};
      std::vector<AdamWTensor> list;
      for (size_t i = 0; i < sizes.size(); ++i)
        list.push_back({sizes[i], v[4 * i].raw_data(), v[4 * i + 1].raw_data(), v[4 * i + 2].raw_data(),
                        v[4 * i + 3].raw_data(), steps[i]});
      return list;
    };
    for (Device d : {kCPU, kGpu}) {
      std::vector<Tensor>& v = d.is_cpu() ? cpu : gpu;
      std::vector<SgdTensor> sgd = sgd_list(v);
      SgdStepArgs sa;
      sa.lr = 0.05;
      sa.momentum = 0.9;
      sa.weight_decay = 1e-3;
      sa.tensors = sgd.data();
      sa.count = int64_t(sgd.size());
      kernels().sgd_step.on(d)(exec_context(d), dtype, sa);
      std::vector<AdamWTensor> adamw = adamw_list(v);
      AdamWStepArgs aa;
      aa.lr = 1e-3;
      aa.weight_decay = 0.1;
      aa.tensors = adamw.data();
      aa.count = int64_t(adamw.size());
      kernels().adamw_step.on(d)(exec_context(d), dtype, aa);
    }
    for (size_t i = 0; i < cpu.size(); ++i)
      check_same(std::string("kernel list tensor ") + std::to_string(i / 4) + " slot " + std::to_string(i % 4) + " " +
                     dtype_name(dtype),
                 gpu[i], cpu[i]);
  }
}
