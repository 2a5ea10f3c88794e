// Sparse-channel compute, measured: a channel-granularity subnetwork's training pass (forward + backward)
// against the dense parent's next to their FLOP ratio, per capacity and per convolution, and whole SCPN steps
// with compact subnetworks on and off and in weight granularity (images/s). Every baseline runs in the same
// process, interleaved round by round; figures are medians over the rounds.
// Usage: bench_sparse_channel [--rounds N] [--archs resnet18,resnet50] [--skip passes,layers,steps] [KEY=VALUE ...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/loss.h"
#include "engine/optim/sgd.h"
#include "models/complexity.h"
#include "models/resnet.h"
#include "tools/cli_args.h"
#include "train/config.h"
#include "train/scpn/step.h"

using namespace scpn;
using models::ForwardContext;
using models::Granularity;

namespace {

const std::vector<double> kCapacities = {0.75, 0.5, 0.25};
// The share of the FLOP-ratio speedup each capacity should reach (the rest is what does not shrink:
// BatchNorm over the residual stream, the stem, the shortcuts, the head, per-call overheads).
const std::map<double, double> kGoal = {{0.75, 0.75}, {0.5, 0.55}, {0.25, 0.30}};

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Milliseconds of fn(), device work included.
double time_ms(Device device, const std::function<void()>& fn) {
  synchronize(device);
  const auto t0 = Clock::now();
  fn();
  synchronize(device);
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Bench {
  train::TrainConfig cfg;
  Device device = kCPU;
  int rounds = 5;
  models::ResNetConfig model_config(const std::string& arch, Granularity g) const {
    models::ResNetConfig mc = models::ResNetConfig::named(arch);
    mc.stem = cfg.stem;
    mc.in_channels = 1;
    mc.base_width = cfg.base_width;
    mc.feature_dim = cfg.feature_dim;
    mc.num_classes = 10;
    mc.granularity = g;
    mc.bn_capacities = cfg.capacities;
    return mc;
  }
  Tensor images(Generator& gen) const {
    return normal({cfg.batch_size, 1, cfg.image_size, cfg.image_size}, 0, 1, gen).to(device);
  }
  Tensor labels() const {
    std::vector<double> v;
    for (int64_t i = 0; i < cfg.batch_size; ++i) v.push_back(double(i % 10));
    return from_vector(v, {cfg.batch_size}, DType::i64, device);
  }
};

// One training pass per capacity, compact and masked, against the parent's pass.
void bench_passes(const Bench& b, const std::string& arch) {
  Generator gen(b.cfg.seed);
  models::ResNet model(b.model_config(arch, Granularity::channel), gen);
  model.to(b.device);
  model.train();
  Tensor x = b.images(gen), y = b.labels();
  std::vector<double> caps = {1.0};
  caps.insert(caps.end(), kCapacities.begin(), kCapacities.end());
  model.prepare_masks(caps);
  auto pass = [&](double c, bool compact) {
    ForwardContext ctx{.capacity = c};
    ctx.compact_channels = compact;
    GradientSlot slot;
    backward(cross_entropy(model.forward(x, ctx).logits, y), Tensor(), {&slot});
  };
  std::vector<std::pair<double, bool>> order = {{1.0, false}};
  for (double c : kCapacities)
    for (bool compact : {true, false}) order.push_back({c, compact});
  std::map<std::pair<double, bool>, std::vector<double>> ms;
  for (auto [c, compact] : order) pass(c, compact);  // warm-up: first-touch allocations, packing buffers
  // Each round starts at another variant, so no variant always follows the same one.
  for (int r = 0; r < b.rounds; ++r)
    for (size_t i = 0; i < order.size(); ++i) {
      auto [c, compact] = order[(i + size_t(r)) % order.size()];
      ms[{c, compact}].push_back(time_ms(b.device, [&, c = c, compact = compact] { pass(c, compact); }));
    }
  const double parent_ms = median(ms[{1.0, false}]);
  const int64_t dense_macs = models::count_complexity(model, 1.0, b.cfg.image_size, b.cfg.image_size).macs;
  std::printf("\n%s, one training pass (forward + backward), median of %d rounds\n", arch.c_str(), b.rounds);
  std::printf("%-9s %11s %9s %9s %9s %9s %8s %6s %10s\n", "capacity", "MACs/image", "FLOP x", "ms", "speedup",
              "% of FLOP", "goal", "met", "masked ms");
  std::printf("%-9s %11lld %9.2f %9.1f %9.2f %9s %8s %6s %10s\n", "parent", (long long)dense_macs, 1.0, parent_ms, 1.0,
              "", "", "", "");
  for (double c : kCapacities) {
    const int64_t macs = models::count_complexity(model, c, b.cfg.image_size, b.cfg.image_size).macs;
    const double flop_x = double(dense_macs) / double(macs);
    const double compact_ms = median(ms[{c, true}]);
    const double speedup = parent_ms / compact_ms;
    const double of_flop = speedup / flop_x;
    std::printf("%-9s %11lld %9.2f %9.1f %9.2f %8.0f%% %7.0f%% %6s %10.1f\n", models::capacity_key(c).c_str(),
                (long long)macs, flop_x, compact_ms, speedup, 100 * of_flop, 100 * kGoal.at(c),
                of_flop >= kGoal.at(c) ? "yes" : "no", median(ms[{c, false}]));
  }
}

// Every convolution of the model: its dense forward + backward against its compact one at each capacity.
void bench_layers(const Bench& b, const std::string& arch) {
  Generator gen(b.cfg.seed);
  models::ResNet model(b.model_config(arch, Granularity::channel), gen);
  std::vector<double> caps = kCapacities;
  model.prepare_masks(caps);
  // Each conv's input size: block convs after the first read their predecessor's output; a block's conv1
  // and downsample read the block's input, which is the previous block's last main conv's output.
  int64_t size = b.cfg.image_size, block_in = 0, main_out = 0;
  std::printf("\n%s, per convolution: forward + backward (data and filter), dense ms and the compact speedup at each "
              "capacity (MAC ratio in brackets), median of %d rounds\n",
              arch.c_str(), b.rounds);
  std::printf("%-22s %-20s %8s", "convolution", "dense shape", "dense ms");
  for (double c : kCapacities) std::printf("   %-16s", cat("c=", models::capacity_key(c)).c_str());
  std::printf("\n");
  const models::PrunableConv2d* previous = nullptr;
  for (auto& [name, conv] : model.convs()) {
    const bool stem = name == "conv1";
    int64_t in_size;
    const bool downsample = name.find("downsample") != std::string::npos;
    const bool block_first = name.size() > 6 && name.compare(name.size() - 6, 6, ".conv1") == 0;
    if (stem) {
      in_size = size;
    } else if (block_first || downsample) {
      if (block_first) block_in = main_out;
      in_size = block_in;
    } else {
      in_size = main_out;
    }
    const int64_t k = conv->kernel(), s = conv->options().stride.h, p = conv->options().padding.h;
    const int64_t out_size = (in_size + 2 * p - k) / s + 1;
    if (stem) {
      main_out = out_size;
      if (b.cfg.stem == models::Stem::imagenet) main_out = (out_size + 2 - 3) / 2 + 1;
    } else if (!downsample) {
      main_out = out_size;
    }
    // Kept input channels: those the previous conv in the block keeps (conv2, conv3 read conv1, conv2).
    const bool reads_previous = !stem && !block_first && !downsample;
    auto kept_count = [](const models::PrunableConv2d* c, double cap) -> int64_t {
      if (!c || !c->pruned() || c->granularity() != Granularity::channel) return -1;
      return c->kept_filters(cap).size(0);
    };
    Tensor x = normal({b.cfg.batch_size, conv->in_channels(), in_size, in_size}, 0, 1, gen).to(b.device);
    auto run = [&](int64_t cin, int64_t cout) {
      Tensor xi = cin == conv->in_channels() ? x : normal({b.cfg.batch_size, cin, in_size, in_size}, 0, 1, gen).to(b.device);
      Tensor w = normal({cout, cin, k, k}, 0, 0.1, gen).to(b.device).requires_grad_();
      xi.requires_grad_();
      return std::function<void()>([xi, w, s, p] {
        GradientSlot slot;
        Tensor yo = conv2d(xi, w, Tensor(), {.stride = s, .padding = p});
        backward(yo, ones(yo.shape(), yo.dtype(), yo.device()), {&slot});
      });
    };
    std::vector<std::function<void()>> variants = {run(conv->in_channels(), conv->out_channels())};
    std::vector<double> mac_ratio;
    for (double c : kCapacities) {
      const int64_t kin = reads_previous ? kept_count(previous, c) : -1;
      const int64_t kout = kept_count(conv, c);
      const int64_t cin = kin < 0 ? conv->in_channels() : kin, cout = kout < 0 ? conv->out_channels() : kout;
      variants.push_back(run(cin, cout));
      mac_ratio.push_back(double(conv->in_channels() * conv->out_channels()) / double(cin * cout));
    }
    std::vector<std::vector<double>> ms(variants.size());
    for (auto& v : variants) v();
    for (int r = 0; r < b.rounds; ++r)
      for (size_t i = 0; i < variants.size(); ++i) {
        const size_t v = (i + size_t(r)) % variants.size();
        ms[v].push_back(time_ms(b.device, variants[v]));
      }
    const double dense = median(ms[0]);
    std::printf("%-22s %-20s %8.2f", name.c_str(),
                cat(conv->in_channels(), "->", conv->out_channels(), " ", k, "x", k, "/", s, " @", in_size).c_str(), dense);
    for (size_t i = 0; i < kCapacities.size(); ++i)
      std::printf("   %5.2fx (%5.2fx) ", dense / median(ms[i + 1]), mac_ratio[i]);
    std::printf("\n");
    previous = conv;
  }
}

// Whole SCPN steps: channel granularity with compact subnetworks, the same masked, and weight granularity.
void bench_steps(const Bench& b, const std::string& arch) {
  struct Variant {
    std::string name;
    Granularity granularity;
    bool compact;
    std::unique_ptr<models::ResNet> model{};
    std::unique_ptr<SGD> opt{};
    std::unique_ptr<train::ScpnStep> step{};
    std::vector<double> ms{};
  };
  std::vector<Variant> variants;
  variants.push_back({"channel, compact subnetworks", Granularity::channel, true});
  variants.push_back({"channel, masked subnetworks", Granularity::channel, false});
  variants.push_back({"weight granularity (masked)", Granularity::weight, false});
  Generator data_gen(b.cfg.seed + 1);
  Tensor x = b.images(data_gen), y = b.labels();
  for (Variant& v : variants) {
    Generator gen(b.cfg.seed);
    v.model = std::make_unique<models::ResNet>(b.model_config(arch, v.granularity), gen);
    v.model->to(b.device);
    v.opt = std::make_unique<SGD>(v.model->parameters(), b.cfg.lr, SgdOptions{.momentum = 0.9, .weight_decay = 5e-4});
    train::StepOptions so;
    so.capacities = b.cfg.capacities;
    so.compact_subnets = v.compact;
    v.step = std::make_unique<train::ScpnStep>(*v.model, *v.opt, so, b.cfg.seed);
    v.step->run(x, y, 0);  // warm-up
  }
  for (int r = 0; r < b.rounds; ++r)
    for (size_t i = 0; i < variants.size(); ++i) {
      Variant& v = variants[(i + size_t(r)) % variants.size()];
      v.ms.push_back(time_ms(b.device, [&] { v.step->run(x, y, r + 1); }));
    }
  std::ostringstream caps;
  for (double c : b.cfg.capacities) caps << " " << models::capacity_key(c);
  std::printf("\n%s, whole SCPN step (parent +%s), median of %d rounds\n", arch.c_str(), caps.str().c_str(), b.rounds);
  std::printf("%-32s %10s %10s %14s\n", "variant", "step ms", "images/s", "vs compact");
  const double compact_ms = median(variants[0].ms);
  for (Variant& v : variants) {
    const double m = median(v.ms);
    std::printf("%-32s %10.1f %10.1f %13.2fx\n", v.name.c_str(), m, double(b.cfg.batch_size) * 1000.0 / m, compact_ms / m);
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  Bench b;
  std::vector<std::string> archs = {"resnet18", "resnet50"}, skip, overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool takes_value = a == "--rounds" || a == "--archs" || a == "--skip";
    SCPN_CHECK(!takes_value || i + 1 < argc, a, ": missing value");
    if (a == "--rounds") b.rounds = int(tools::parse_int("--rounds", argv[++i]));
    else if (a == "--archs") archs = split(argv[++i]);
    else if (a == "--skip") skip = split(argv[++i]);
    else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_sparse_channel [--rounds N] [--archs resnet18,resnet50] [--skip passes,layers,steps] "
                  "[KEY=VALUE ...]\n(train_scpn's keys: model.base_width, model.stem, train.batch_size, "
                  "train.capacities, data.image_size, device)\n");
      return 0;
    } else overrides.push_back(a);
  }
  SCPN_CHECK(b.rounds >= 1, "--rounds must be >= 1");
  b.cfg = train::parse_config("", overrides);
  b.device = resolve_device(b.cfg.device, "device");
  auto skipped = [&](const char* part) { return std::find(skip.begin(), skip.end(), part) != skip.end(); };
  std::printf("bench_sparse_channel: base width %lld, %s stem, batch %lld at %lldx%lld, f32, %s\n",
              (long long)b.cfg.base_width, models::to_string(b.cfg.stem), (long long)b.cfg.batch_size,
              (long long)b.cfg.image_size, (long long)b.cfg.image_size, b.device.str().c_str());
  for (const std::string& arch : archs) {
    if (!skipped("passes")) bench_passes(b, arch);
    if (!skipped("layers")) bench_layers(b, arch);
    if (!skipped("steps")) bench_steps(b, arch);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_sparse_channel: error: %s\n", e.what());
  return 1;
}
