// Per-phase timing of the SCPN training step (each subnetwork's forward and backward, the parent's, the
// integration, the optimizer) and images/s, on random data with the model, optimizer and step options of a
// train_scpn config (train/scpn/recipe.h builds them for both).
// Usage: bench_step [--steps N] [--save-first-step DIR] [KEY=VALUE ...]   (train_scpn's keys)
// --save-first-step writes what tools/bench/scpn_step_twin.py needs to redo the first (warm-up) step and
// compare: DIR/state.safetensors (the model's initial state, the input and the labels), DIR/gradients.safetensors
// (every parameter's final gradient after the step) and DIR/step.json (model, options, losses).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/devices.h"
#include "engine/safetensors.h"
#include "models/complexity.h"
#include "models/resnet.h"
#include "train/atomic_write.h"
#include "tools/cli_args.h"
#include "train/config.h"
#include "train/scpn/recipe.h"
#include "train/scpn/step.h"

using namespace scpn;

namespace {

constexpr int64_t kInChannels = 1, kClasses = 10;

std::vector<NamedTensor> named(const NamedTensors& tensors) {
  std::vector<NamedTensor> out;
  for (auto& [name, t] : tensors) out.push_back({name, t});
  return out;
}

nlohmann::json step_description(const train::TrainConfig& cfg, const models::ResNetConfig& mc,
                                const train::StepOptions& so, const models::ResNet& model) {
  nlohmann::json no_decay = nlohmann::json::array();
  for (auto& [name, p] : model.named_parameters())
    for (auto& q : model.no_decay_parameters())
      if (q.same(p)) no_decay.push_back(name);
  const IntegrationOptions& io = so.integration;
  return {{"model", mc.to_json()},
          {"image_size", cfg.image_size},
          {"batch_size", cfg.batch_size},
          {"options",
           {{"mode", train::to_string(so.mode)},
            {"capacities", so.capacities},
            {"task_clip_norm", so.task_clip_norm},
            {"clip_norm", so.clip_norm},
            {"label_smoothing", so.label_smoothing},
            {"bn_stats", so.bn_stats == models::BnStatsMode::own ? "own" : "parent"},
            {"semantics", io.semantics == ConflictSemantics::last ? "last" : "chain"},
            {"weighting", io.weighting == TaskWeighting::cosine ? "cosine" : "none"},
            {"gamma", io.gamma},
            {"integration_granularity", io.granularity == IntegrationGranularity::filter ? "filter" : "tensor"},
            {"fixed_order", io.fixed_order},
            {"lr", cfg.lr},
            {"momentum", cfg.momentum},
            {"weight_decay", cfg.weight_decay},
            {"no_decay", no_decay}}}};
}

}  // namespace

int main(int argc, char** argv) try {
  int64_t steps = 5;
  std::string save_dir;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = tools::parse_int("--steps", argv[++i]);
    else if (a == "--save-first-step" && i + 1 < argc) save_dir = argv[++i];
    else overrides.push_back(a);
  }
  SCPN_CHECK(steps >= 0, "--steps: ", steps, " must not be negative");
  const train::TrainConfig cfg = train::parse_config("", overrides);
  const models::ResNetConfig mc = train::model_config(cfg, kInChannels, kClasses);
  Generator gen(cfg.seed);
  models::ResNet model(mc, gen);
  const Device device = resolve_device(cfg.device, "device");
  model.to(device);  // before the optimizer, which keeps handles to the parameters
  std::unique_ptr<SGD> opt = train::make_optimizer(cfg, model);
  const train::StepOptions so = train::step_options(cfg);
  train::ScpnStep step(model, *opt, so, cfg.seed);
  Tensor x = normal({cfg.batch_size, kInChannels, cfg.image_size, cfg.image_size}, 0, 1, gen).to(device);
  std::vector<double> labels;
  for (int64_t i = 0; i < cfg.batch_size; ++i) labels.push_back(double(i % kClasses));
  Tensor y = from_vector(labels, {cfg.batch_size}, DType::i64, device);

  if (!save_dir.empty()) {
    std::filesystem::create_directories(save_dir);
    std::vector<NamedTensor> state = named(model.state());
    state.push_back({"input", x});
    state.push_back({"labels", y});
    save_safetensors(save_dir + "/state.safetensors", state);
  }
  // The warm-up step (on a GPU: the convolution algorithm searches, the memory cache filling).
  const train::StepResult first = step.run(x, y, 0);
  synchronize(device);
  if (!save_dir.empty()) {
    std::vector<NamedTensor> grads;
    for (auto& [name, p] : model.named_parameters()) grads.push_back({name, p.grad()});
    save_safetensors(save_dir + "/gradients.safetensors", grads);
    nlohmann::json j = step_description(cfg, mc, so, model);
    j["result"] = {{"parent_loss", first.parent_loss},
                   {"subnet_losses", first.subnet_losses},
                   {"grad_norm", first.grad_norm},
                   {"projected_rows", first.projected_rows},
                   {"task_rows", first.task_rows}};
    train::write_text_atomic(save_dir + "/step.json", j.dump(2) + "\n");
    std::printf("bench_step: the first step's state, gradients and description are in %s\n", save_dir.c_str());
  }

  train::StepTimings sum;
  std::vector<double> step_ms;
  // On a GPU each step ends with a device synchronisation, so the total covers the device's work; a phase's
  // figure is the host's view of it (launch time, plus waiting where the step reads a value back).
  for (int64_t s = 1; s <= steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    train::StepTimings t = step.run(x, y, s).timings;
    synchronize(device);
    t.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step_ms.push_back(t.total_ms);
    if (sum.subnet_forward_ms.empty()) {
      sum.subnet_forward_ms.assign(t.subnet_forward_ms.size(), 0);
      sum.subnet_backward_ms.assign(t.subnet_backward_ms.size(), 0);
    }
    for (size_t i = 0; i < t.subnet_forward_ms.size(); ++i) {
      sum.subnet_forward_ms[i] += t.subnet_forward_ms[i] / double(steps);
      sum.subnet_backward_ms[i] += t.subnet_backward_ms[i] / double(steps);
    }
    sum.parent_forward_ms += t.parent_forward_ms / double(steps);
    sum.parent_backward_ms += t.parent_backward_ms / double(steps);
    sum.integration_ms += t.integration_ms / double(steps);
    sum.optimizer_ms += t.optimizer_ms / double(steps);
    sum.total_ms += t.total_ms / double(steps);
    sum.concurrent_passes = t.concurrent_passes;
  }
  if (steps <= 0) return 0;
  std::printf("bench_step: %s base_width %lld, %s granularity%s, mode %s, batch %lld at %lldx%lld, %lld parameters, mean of %lld steps on %s\n",
              train::to_string(cfg.arch), (long long)cfg.base_width, models::to_string(cfg.granularity),
              cfg.granularity == models::Granularity::channel ? (cfg.compact_subnets ? " (compact subnetworks)" : " (masked subnetworks)") : "",
              train::to_string(cfg.mode),
              (long long)cfg.batch_size, (long long)cfg.image_size, (long long)cfg.image_size,
              (long long)model.parameter_count(), (long long)steps, device.str().c_str());
  // A subnetwork's forward + backward against the parent's, and the FLOP ratio it could reach (channel
  // granularity with compact subnetworks: the compact network's MACs; otherwise the masked pass does the
  // parent's work whatever it keeps).
  const double parent_ms = sum.parent_forward_ms + sum.parent_backward_ms;
  const int64_t dense_macs = models::count_complexity(model, 1.0, cfg.image_size, cfg.image_size).macs;
  if (sum.concurrent_passes > 1)
    std::printf("passes side by side: %d at a time, one thread each (train.concurrent_passes=1 runs them one after "
                "another); their phase times overlap\n",
                sum.concurrent_passes);
  std::printf("%-24s %10s %10s %12s %12s\n", "phase", "forward ms", "backward ms", "÷ parent", "MACs ÷ parent");
  for (size_t i = 0; i < sum.subnet_forward_ms.size(); ++i) {
    const double c = so.capacities[i];
    const double macs = double(models::count_complexity(model, c, cfg.image_size, cfg.image_size).macs);
    std::printf("subnet %-17s %10.1f %10.1f %12.2f %12.2f\n", models::capacity_key(c).c_str(), sum.subnet_forward_ms[i],
                sum.subnet_backward_ms[i], (sum.subnet_forward_ms[i] + sum.subnet_backward_ms[i]) / parent_ms,
                macs / double(dense_macs));
  }
  std::printf("%-24s %10.1f %10.1f\n", "parent", sum.parent_forward_ms, sum.parent_backward_ms);
  std::printf("%-24s %10.1f\n%-24s %10.1f\n%-24s %10.1f\n", "integration", sum.integration_ms, "clip + optimizer",
              sum.optimizer_ms, "step total", sum.total_ms);
  std::printf("each step's ms:");
  for (double ms : step_ms) std::printf(" %.0f", ms);
  std::printf("\nimages/s: %.1f\n", double(cfg.batch_size) * 1000.0 / sum.total_ms);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_step: error: %s\n", e.what());
  return 1;
}
