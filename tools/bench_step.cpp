// Per-phase timing of the SCPN training step (each subnetwork's forward and backward, the parent's, the
// integration, the optimizer) and images/s, on random data with the model of a train_scpn config.
// Usage: bench_step [--steps N] [KEY=VALUE ...]   (train_scpn's keys: model.*, train.batch_size, device, …)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/devices.h"
#include "engine/optim/sgd.h"
#include "models/complexity.h"
#include "models/resnet.h"
#include "train/config.h"
#include "train/scpn/step.h"

using namespace scpn;

int main(int argc, char** argv) try {
  int64_t steps = 5;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::stoll(argv[++i]);
    else overrides.push_back(a);
  }
  train::TrainConfig cfg = train::parse_config("", overrides);
  models::ResNetConfig mc = models::ResNetConfig::named(train::to_string(cfg.arch));
  mc.stem = cfg.stem;
  mc.in_channels = 1;
  mc.base_width = cfg.base_width;
  mc.feature_dim = cfg.feature_dim;
  mc.num_classes = 10;
  mc.granularity = cfg.granularity;
  mc.bn_capacities = cfg.capacities;
  Generator gen(cfg.seed);
  models::ResNet model(mc, gen);
  const Device device = resolve_device(cfg.device, "device");
  model.to(device);  // before the optimizer, which keeps handles to the parameters
  SGD opt(model.parameters(), cfg.lr, SgdOptions{.momentum = 0.9, .weight_decay = 5e-4});
  train::StepOptions so;
  so.mode = cfg.mode;
  so.capacities = cfg.mode == train::TrainMode::parent ? std::vector<double>{} : cfg.capacities;
  so.compact_subnets = cfg.compact_subnets;
  train::ScpnStep step(model, opt, so, cfg.seed);
  Tensor x = normal({cfg.batch_size, 1, cfg.image_size, cfg.image_size}, 0, 1, gen).to(device);
  std::vector<double> labels;
  for (int64_t i = 0; i < cfg.batch_size; ++i) labels.push_back(double(i % 10));
  Tensor y = from_vector(labels, {cfg.batch_size}, DType::i64, device);

  step.run(x, y, 0);  // warm-up (on a GPU: the convolution algorithm searches, the memory cache filling)
  synchronize(device);
  train::StepTimings sum;
  // On a GPU each step ends with a device synchronisation, so the total covers the device's work; a phase's
  // figure is the host's view of it (launch time, plus waiting where the step reads a value back).
  for (int64_t s = 1; s <= steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    train::StepTimings t = step.run(x, y, s).timings;
    synchronize(device);
    t.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
  }
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
  std::printf("images/s: %.1f\n", double(cfg.batch_size) * 1000.0 / sum.total_ms);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_step: error: %s\n", e.what());
  return 1;
}
