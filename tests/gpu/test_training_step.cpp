// The whole SCPN training step (train/scpn/step.h) on cuda:0: the first step equals the CPU's in parity
// mode, and a steady step performs no cudaMalloc. Skips without a CUDA device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/optim/sgd.h"
#include "kernels/cuda/check.h"
#include "models/resnet.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"
#include "train/scpn/step.h"

using namespace scpn;
using namespace scpn::models;
using namespace scpn::train;

namespace {

const Device kGpu = cuda_device(0);

// Four stages of one basic block, 16x16 inputs: stage 4 still sees 2x2 planes, so every BatchNorm has
// batch statistics over more than one value per channel.
ResNetConfig small_config(Granularity granularity) {
  ResNetConfig c;
  c.arch = "custom";
  c.layers = {1, 1, 1, 1};
  c.stem = Stem::small;
  c.in_channels = 3;
  c.base_width = 4;
  c.feature_dim = 8;
  c.num_classes = 5;
  c.granularity = granularity;
  c.bn_capacities = {0.5, 0.25};
  return c;
}

// Two trained subnetworks plus one random capacity per step, as in training.
StepOptions step_options(ConflictSemantics semantics = ConflictSemantics::last, bool compact_subnets = true) {
  StepOptions so;
  so.compact_subnets = compact_subnets;
  so.mode = TrainMode::scpn;
  so.capacities = {0.5, 0.25};
  so.extra_random_capacities = 1;
  so.integration.semantics = semantics;
  return so;
}

// A model, its optimizer and its step on one device, from the same seeds whatever the device: the model is
// initialised on the CPU and moved. Module::to replaces the parameter tensors, so the optimizer and the
// step (which keep handles to them) are built after the move, as a trainer must.
struct Trainee {
  std::unique_ptr<ResNet> model;
  std::unique_ptr<SGD> optimizer;
  std::unique_ptr<ScpnStep> step;
  Tensor images, labels;

  Trainee(Granularity granularity, DType dtype, Device device, ConflictSemantics semantics = ConflictSemantics::last,
          bool compact_subnets = true) {
    Generator init(5);
    model = std::make_unique<ResNet>(small_config(granularity), init, dtype);
    model->to(device);
    // The recipe's groups: weight decay on everything but the projector's and classifier's biases.
    const SgdOptions decay{.momentum = 0.9, .weight_decay = 5e-4};
    const SgdOptions no_decay{.momentum = 0.9, .weight_decay = 0};
    optimizer = std::make_unique<SGD>(
        std::vector<SgdGroup>{{model->decay_parameters(), decay, 1.0}, {model->no_decay_parameters(), no_decay, 1.0}},
        0.05);
    step = std::make_unique<ScpnStep>(*model, *optimizer, step_options(semantics, compact_subnets), 11);
    Generator data(77);
    images = normal({8, 3, 16, 16}, 0, 1, data, dtype).to(device);
    labels = from_vector({0, 1, 2, 3, 4, 0, 1, 2}, {8}, DType::i64, device);
  }
};

struct Tolerance {
  double loss_rtol;   // losses and the gradient norm
  double atol, rtol;  // parameters, buffers and optimizer state after the step
};
// f32: cuDNN/cuBLAS and our kernels sum in other orders than the CPU (TF32 is off in parity mode).
Tolerance tolerance(DType dtype) {
  return dtype == DType::f64 ? Tolerance{1e-9, 1e-10, 1e-8} : Tolerance{1e-3, 1e-4, 1e-3};
}

// The integration rule compared in each dtype. `last` (the default) is discontinuous where a partner's dot
// product crosses 0 (another partner then decides the row), so f32 rounding differences between the
// devices could flip a row; f64's cannot in practice. `chain` is continuous there, so f32 runs it.
ConflictSemantics parity_semantics(DType dtype) {
  return dtype == DType::f64 ? ConflictSemantics::last : ConflictSemantics::chain;
}

const char* dtype_label(DType t) { return t == DType::f64 ? "f64" : "f32"; }

double relative_error(double actual, double expected) {
  return std::fabs(actual - expected) / std::max(std::fabs(expected), 1e-30);
}

}  // namespace

TEST_CASE("the first SCPN step on cuda:0 equals the CPU's: losses, gradient norm, parameters (parity mode)") {
  SCPN_REQUIRE_CUDA();
  cuda::ParityModeGuard parity;
  for (DType dtype : {DType::f32, DType::f64}) {
    // Channel granularity twice: compact subnetworks on both devices, and compact on cuda:0 against the
    // masked reference path on the CPU (sparse-channel compute against what it replaces).
    for (auto [granularity, cpu_compact] : {std::pair{Granularity::weight, true}, std::pair{Granularity::channel, true},
                                            std::pair{Granularity::channel, false}}) {
      const ConflictSemantics semantics = parity_semantics(dtype);
      const std::string label =
          cat(to_string(granularity), " granularity", granularity == Granularity::weight ? "" : cpu_compact ? " compact" : " compact vs CPU masked",
              ", ", dtype_label(dtype), ", ", semantics == ConflictSemantics::last ? "last" : "chain", " integration");
      CAPTURE(label);
      const Tolerance tol = tolerance(dtype);
      Trainee cpu(granularity, dtype, kCPU, semantics, cpu_compact), gpu(granularity, dtype, kGpu, semantics);
      for (const auto& [name, t] : gpu.model->state()) {
        CAPTURE(name);
        CHECK(t.device() == kGpu);
      }
      const StepResult rc = cpu.step->run(cpu.images, cpu.labels, 0);
      const StepResult rg = gpu.step->run(gpu.images, gpu.labels, 0);

      // The losses are forward values from identical parameters and masks.
      CHECK(rg.capacities == rc.capacities);
      double worst_loss = relative_error(rg.parent_loss, rc.parent_loss);
      CHECK(rg.parent_loss == doctest::Approx(rc.parent_loss).epsilon(tol.loss_rtol));
      REQUIRE(rg.subnet_losses.size() == rc.subnet_losses.size());
      for (size_t i = 0; i < rc.subnet_losses.size(); ++i) {
        CAPTURE(rc.capacities[i]);
        CHECK(rg.subnet_losses[i] == doctest::Approx(rc.subnet_losses[i]).epsilon(tol.loss_rtol));
        worst_loss = std::max(worst_loss, relative_error(rg.subnet_losses[i], rc.subnet_losses[i]));
      }
      CHECK(std::isfinite(rg.grad_norm));
      CHECK(rg.grad_norm == doctest::Approx(rc.grad_norm).epsilon(tol.loss_rtol));
      CHECK(rg.task_rows == rc.task_rows);
      // Which rows count as projected can differ where a dot product is within rounding of 0: only in f32.
      if (dtype == DType::f64) CHECK(rg.projected_rows == rc.projected_rows);

      // After integration, clipping and SGD: every parameter and buffer, and the momentum buffers.
      NamedTensors sc = cpu.model->state(), sg = gpu.model->state();
      const NamedTensors oc = cpu.optimizer->state_tensors(), og = gpu.optimizer->state_tensors();
      sc.insert(sc.end(), oc.begin(), oc.end());
      sg.insert(sg.end(), og.begin(), og.end());
      REQUIRE(sg.size() == sc.size());
      double worst_state = 0;
      std::string worst_name;
      for (size_t i = 0; i < sc.size(); ++i) {
        CAPTURE(sc[i].first);
        REQUIRE(sg[i].first == sc[i].first);
        CHECK(sg[i].second.device() == kGpu);
        const test::CloseReport r = test::compare(sg[i].second.to(kCPU), sc[i].second, tol.atol, tol.rtol);
        INFO(r.message);
        CHECK(r.ok);
        if (r.max_abs >= worst_state) {
          worst_state = r.max_abs;
          worst_name = sc[i].first;
        }
      }
      std::printf("parity scpn step (%s): parent loss cpu %.10g gpu %.10g, worst loss rel. error %.3g, grad norm "
                  "cpu %.10g gpu %.10g, worst state abs. error %.3g (%s), projected rows cpu %lld gpu %lld of %lld\n",
                  label.c_str(), rc.parent_loss, rg.parent_loss, worst_loss, rc.grad_norm, rg.grad_norm, worst_state,
                  worst_name.c_str(), static_cast<long long>(rc.projected_rows),
                  static_cast<long long>(rg.projected_rows), static_cast<long long>(rg.task_rows));
    }
  }
}

TEST_CASE("a steady SCPN step on cuda:0 performs no cudaMalloc") {
  SCPN_REQUIRE_CUDA();
  // The default math mode (TF32 allowed), as training runs.
  for (Granularity granularity : {Granularity::weight, Granularity::channel}) {
    CAPTURE(to_string(granularity));
    Trainee gpu(granularity, DType::f32, kGpu);
    const cuda::MemoryStats before = cuda::memory_stats(0);
    int64_t index = 0;
    // Warm-up: convolution algorithm searches, momentum buffers, the cache filling up.
    for (; index < 3; ++index) gpu.step->run(gpu.images, gpu.labels, index);
    cuda::synchronize(0);
    const cuda::MemoryStats warm = cuda::memory_stats(0);
    size_t free_warm = 0, total = 0;
    SCPN_CUDA_CHECK(cudaMemGetInfo(&free_warm, &total));

    for (; index < 6; ++index) {
      CAPTURE(index);
      const StepResult r = gpu.step->run(gpu.images, gpu.labels, index);
      CHECK(std::isfinite(r.parent_loss));
      CHECK(cuda::memory_stats(0).malloc_calls == warm.malloc_calls);
    }
    cuda::synchronize(0);
    const cuda::MemoryStats steady = cuda::memory_stats(0);
    size_t free_steady = 0;
    SCPN_CUDA_CHECK(cudaMemGetInfo(&free_steady, &total));
    INFO("after warm-up: " << cuda::describe(warm));
    INFO("after 3 more steps: " << cuda::describe(steady));
    CHECK(steady.malloc_calls == warm.malloc_calls);
    CHECK(steady.free_calls == warm.free_calls);
    CHECK(steady.reserved == warm.reserved);
    // Between steps the same tensors are live (parameters, gradients, momentum and BatchNorm buffers):
    // nothing accumulates from one step to the next.
    CHECK(steady.allocated == warm.allocated);
    // The driver's view, for the log only: libraries allocating behind the allocator would show here.
    std::printf("steady scpn step (%s granularity, f32): %lld cudaMalloc calls in 3 warm-up steps, %lld in 3 "
                "steady steps; reserved %.1f MiB, peak allocated %.1f MiB; device free memory changed by %lld "
                "bytes over the steady steps\n",
                to_string(granularity), static_cast<long long>(warm.malloc_calls - before.malloc_calls),
                static_cast<long long>(steady.malloc_calls - warm.malloc_calls), double(steady.reserved) / 1048576.0,
                double(steady.peak_allocated) / 1048576.0,
                static_cast<long long>(int64_t(free_steady) - int64_t(free_warm)));
  }
}

TEST_CASE("a CPU batch for a cuda:0 model is an error naming both devices") {
  SCPN_REQUIRE_CUDA();
  Trainee gpu(Granularity::weight, DType::f32, kGpu);
  const Tensor cpu_images = gpu.images.to(kCPU);
  std::string message = "(no scpn::Error was thrown)";
  try {
    gpu.step->run(cpu_images, gpu.labels, 0);
  } catch (const Error& e) {
    message = e.what();
  }
  INFO("message: " << message);
  CHECK(message.find("device mismatch") != std::string::npos);
  CHECK(message.find("on cpu") != std::string::npos);
  CHECK(message.find("on cuda:0") != std::string::npos);
  // The failed step left the model usable.
  CHECK(std::isfinite(gpu.step->run(gpu.images, gpu.labels, 0).parent_loss));
}
