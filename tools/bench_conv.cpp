// conv2d benchmark: forward and backward (data + filter) time of every convolution shape of a small-stem
// ResNet-18 (CIFAR's at batch 32 by default), f32, through the CPU dispatch slots, against the f32 peak and a
// same-size GEMM.
// Usage: bench_conv [--quick] [--batch N] [--workspace MiB] [--layer NAME] [--in-channels C] [--width W]
//                   [--image-size S]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "tools/cli_args.h"

using namespace scpn;

namespace {

struct Layer {
  const char* name;
  int count;  // how many convolutions of this shape one ResNet-18 forward runs
  int64_t cin, cout, in_hw, kernel, stride, pad;
};

// ResNet-18 with the small-image stem (3x3 stride 1, no max-pool), basic blocks [2, 2, 2, 2]: every distinct
// convolution shape and how many times one forward runs it. The default (3 input channels, width 64, 32x32)
// is CIFAR's ResNet-18; train_scpn's default model is 1 channel, width 12-16, 28x28.
std::vector<Layer> resnet18_layers(int64_t in_channels, int64_t width, int64_t hw) {
  std::vector<Layer> out = {{"conv1 (stem)", 1, in_channels, width, hw, 3, 1, 1},
                            {"layer1 3x3", 4, width, width, hw, 3, 1, 1}};
  const char* names[3][3] = {{"layer2.0 3x3/2", "layer2 3x3", "layer2.0 1x1/2"},
                             {"layer3.0 3x3/2", "layer3 3x3", "layer3.0 1x1/2"},
                             {"layer4.0 3x3/2", "layer4 3x3", "layer4.0 1x1/2"}};
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t in_hw = hw, out_hw = (hw - 1) / 2 + 1;
    out.push_back({names[stage][0], 1, width, 2 * width, in_hw, 3, 2, 1});
    out.push_back({names[stage][1], 3, 2 * width, 2 * width, out_hw, 3, 1, 1});
    out.push_back({names[stage][2], 1, width, 2 * width, in_hw, 1, 2, 0});
    width *= 2;
    hw = out_hw;
  }
  return out;
}

struct Peak {
  int cores = 0;
  double mhz = 0;
  double gflops = 0;
  std::string how;
};

// Peak f32 = physical cores × clock × 32 flop/cycle (AVX2 + FMA: 2 FMA pipes × 8 lanes × 2 flop).
Peak estimate_peak() {
  Peak p;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, physical = "0";
  std::set<std::string> cores;
  int processors = 0;
  double mhz_sum = 0;
  int mhz_count = 0;
  auto value = [](const std::string& l) { return l.substr(l.find(':') + 1); };
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("processor", 0) == 0) ++processors;
    if (line.rfind("physical id", 0) == 0) physical = value(line);
    if (line.rfind("core id", 0) == 0) cores.insert(physical + "/" + value(line));
    if (line.rfind("cpu MHz", 0) == 0) {
      mhz_sum += std::stod(value(line));
      ++mhz_count;
    }
  }
  p.cores = cores.empty() ? processors : int(cores.size());
  p.mhz = mhz_count ? mhz_sum / mhz_count : 0;
  p.gflops = p.cores * p.mhz * 1e-3 * 32;
  p.how = cat(p.cores, " physical cores (", processors, " logical CPUs) x ", p.mhz,
              " MHz (mean \"cpu MHz\" of /proc/cpuinfo) x 32 f32 flop/cycle (AVX2+FMA: 2 FMA units x 8 lanes x 2)");
  return p;
}

// Median seconds of `fn` over `reps` timed runs after two warm-up runs (first-touch of buffers, thread
// pools, allocator growth).
template <class Fn>
double median_seconds(Fn&& fn, int reps) {
  fn();
  fn();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::vector<float> random_vector(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

const char* gemm_name() {
  GemmFn* const slot = kernels().gemm.cpu;
  if (slot == cpu::gemm_ours) return "ours (kernels/cpu/gemm.cpp)";
#if defined(SCPN_HAVE_OPENBLAS)
  if (slot == cpu::gemm_openblas) return "OpenBLAS";
#endif
  return "unknown";
}

}  // namespace

// --quick: 3 timed runs per figure instead of 7; --workspace: the kernels' scratch limit
// (Conv2dParams::workspace_limit_bytes; default: the backend's own choice), for tuning the chunking.
int main(int argc, char** argv) try {
  bool quick = false;
  int64_t batch = 32;
  int64_t workspace_mib = 0;
  int64_t in_channels = 3, width = 64, image_size = 32;
  std::string only;  // --layer: only the layers whose name contains this
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
      batch = tools::parse_int("--batch", argv[++i]);
    } else if (std::strcmp(argv[i], "--workspace") == 0 && i + 1 < argc) {
      workspace_mib = tools::parse_int("--workspace", argv[++i]);
    } else if (std::strcmp(argv[i], "--layer") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (std::strcmp(argv[i], "--in-channels") == 0 && i + 1 < argc) {
      in_channels = tools::parse_int("--in-channels", argv[++i]);
    } else if (std::strcmp(argv[i], "--width") == 0 && i + 1 < argc) {
      width = tools::parse_int("--width", argv[++i]);
    } else if (std::strcmp(argv[i], "--image-size") == 0 && i + 1 < argc) {
      image_size = tools::parse_int("--image-size", argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_conv [--quick] [--batch N] [--workspace MiB] [--layer NAME] [--in-channels C] "
                           "[--width W] [--image-size S]\n");
      return 2;
    }
  }
  for (auto [name, value] : {std::pair{"--batch", batch}, {"--in-channels", in_channels}, {"--width", width},
                              {"--image-size", image_size}})
    SCPN_CHECK(value >= 1, name, ": ", value, " must be at least 1");
  SCPN_CHECK(workspace_mib >= 0, "--workspace: ", workspace_mib, " MiB must not be negative");
  const int reps = quick ? 3 : 7;
  const Peak peak = estimate_peak();
  std::printf("bench_conv: ResNet-18 (small-image stem) convolutions, %lld input channels, width %lld, %lldx%lld, "
              "batch %lld, f32, CPU; median of %d timed runs after 1 s of warm-up and 2 untimed runs per figure\n",
              (long long)in_channels, (long long)width, (long long)image_size, (long long)image_size, (long long)batch,
              reps);
  std::printf("estimated f32 peak: %.1f GFLOP/s = %s\n", peak.gflops, peak.how.c_str());
  std::printf("GEMM in the dispatch slot: %s; OpenMP threads: %d; workspace limit: %s\n", gemm_name(),
              omp_get_max_threads(), workspace_mib > 0 ? cat(workspace_mib, " MiB").c_str() : "backend default");
  {
    std::ifstream load("/proc/loadavg");
    std::string l;
    if (std::getline(load, l)) std::printf("load average (other processes skew timings): %s\n", l.c_str());
  }
  std::printf("fwd = forward; bwd = backward data + backward filter (dX, dW shown apart); flop = 2·N·K·P·Q·C·R·S "
              "(bwd 2x); GEMM = one plain GEMM [K x CRS]·[CRS x N·P·Q] of the forward's size, a ceiling\n\n");
  std::printf("%-16s %-16s %3s | %7s %7s %5s | %7s %7s %7s %7s %5s | %7s\n", "layer", "C->K @HxW", "x", "fwd ms",
              "GFLOP/s", "%pk", "dX ms", "dW ms", "bwd ms", "GFLOP/s", "%pk", "GEMM");

  std::mt19937 rng(7);
  const ExecContext ctx = exec_context(kCPU);
  {
    // One second of convolutions before any timing: after an idle spell the first layers measured up
    // to 2x slow on this (virtual) machine while the cores came back to speed.
    Conv2dParams p;
    p.N = 8, p.C = 64, p.H = p.W = 32, p.K = 64, p.R = p.S = 3, p.pad_h = p.pad_w = 1;
    auto x = random_vector(p.N * p.C * p.H * p.W, rng), w = random_vector(p.K * p.C * 9, rng);
    std::vector<float> y(size_t(p.N * p.K * p.H * p.W));
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(1))
      kernels().conv2d_forward.on(kCPU)(ctx, DType::f32, p, x.data(), w.data(), nullptr, y.data());
  }
  double total_ms = 0, total_flop = 0, total_3x3_ms = 0, total_3x3_flop = 0;
  for (const Layer& L : resnet18_layers(in_channels, width, image_size)) {
    if (!only.empty() && std::string(L.name).find(only) == std::string::npos) continue;
    Conv2dParams p;
    p.N = batch, p.C = L.cin, p.H = L.in_hw, p.W = L.in_hw, p.K = L.cout, p.R = L.kernel, p.S = L.kernel;
    p.stride_h = p.stride_w = L.stride;
    p.pad_h = p.pad_w = L.pad;
    p.workspace_limit_bytes = workspace_mib << 20;
    const int64_t PQ = p.P() * p.Q(), CRS = p.C * p.R * p.S;
    auto x = random_vector(p.N * p.C * p.H * p.W, rng);
    auto w = random_vector(p.K * CRS, rng);
    auto dy = random_vector(p.N * p.K * PQ, rng);
    std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());

    const double fwd = median_seconds(
        [&] { kernels().conv2d_forward.on(kCPU)(ctx, DType::f32, p, x.data(), w.data(), nullptr, y.data()); }, reps);
    const double bwd_data = median_seconds(
        [&] { kernels().conv2d_backward_data.on(kCPU)(ctx, DType::f32, p, dy.data(), w.data(), dx.data()); }, reps);
    const double bwd_filter = median_seconds(
        [&] { kernels().conv2d_backward_filter.on(kCPU)(ctx, DType::f32, p, dy.data(), x.data(), dw.data()); },
        reps);
    // The ceiling: the forward's arithmetic as one GEMM with no im2col, layout copies or chunking.
    std::vector<float> cols = random_vector(CRS * p.N * PQ, rng);
    const GemmArgs g = dense_gemm(false, false, p.K, p.N * PQ, CRS, w.data(), cols.data(), y.data());
    const double gemm = median_seconds([&] { kernels().gemm.on(kCPU)(ctx, DType::f32, g); }, reps);

    const double flop = 2.0 * double(p.N * p.K * PQ) * double(CRS);
    const double bwd = bwd_data + bwd_filter;
    const double fwd_rate = flop / fwd * 1e-9, bwd_rate = 2 * flop / bwd * 1e-9;
    std::printf("%-16s %-16s %3d | %7.2f %7.1f %4.0f%% | %7.2f %7.2f %7.2f %7.1f %4.0f%% | %7.1f\n", L.name,
                cat(L.cin, "->", L.cout, " @", L.in_hw, "x", L.in_hw).c_str(), L.count, fwd * 1e3, fwd_rate,
                100 * fwd_rate / peak.gflops, bwd_data * 1e3, bwd_filter * 1e3, bwd * 1e3, bwd_rate,
                100 * bwd_rate / peak.gflops, flop / gemm * 1e-9);
    std::fflush(stdout);
    total_ms += L.count * (fwd + bwd) * 1e3;
    total_flop += L.count * 3 * flop;
    if (L.kernel == 3) {
      total_3x3_ms += L.count * (fwd + bwd) * 1e3;
      total_3x3_flop += L.count * 3 * flop;
    }
  }
  std::printf("\nwhole network (each shape x its count, fwd + bwd): %.1f ms per step, %.1f GFLOP/s (%.0f%% of peak)\n",
              total_ms, total_flop / total_ms * 1e-6, 100 * total_flop / total_ms * 1e-6 / peak.gflops);
  std::printf("3x3 convolutions only: %.1f ms, %.1f GFLOP/s (%.0f%% of peak)\n", total_3x3_ms,
              total_3x3_flop / total_3x3_ms * 1e-6, 100 * total_3x3_flop / total_3x3_ms * 1e-6 / peak.gflops);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_conv: error: %s\n", e.what());
  return 1;
}
