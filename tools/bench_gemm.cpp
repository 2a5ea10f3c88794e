// GEMM benchmark: GFLOP/s of our CPU GEMM (cpu::gemm_ours) and, when built with it, OpenBLAS, at square
// sizes and at ResNet-18's im2col GEMM shapes, with the ratio ours/OpenBLAS and the share of the f32 peak.
// Usage: bench_gemm [--quick] [--threads N] [--only TEXT]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/dispatch.h"

#if defined(SCPN_HAVE_OPENBLAS)
#include <cblas.h>
#endif

using namespace scpn;

namespace {

struct Problem {
  std::string label;
  bool trans_a, trans_b;
  int64_t m, n, k;
};

struct Peak {
  int cores = 1;
  double mhz = 0;
  double gflops = 0;
  std::string how;
};

// Peak f32 rate = cores × clock × 32 flop/cycle (two 8-wide FMA units per core: 2 × 8 × 2).
Peak estimate_peak() {
  Peak p;
  const int hw = int(std::thread::hardware_concurrency());
  const int omp = omp_get_max_threads();  // OMP_NUM_THREADS or --threads, else the core count
  p.cores = std::max(1, std::min(hw > 0 ? hw : omp, omp));
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) p.mhz = std::max(p.mhz, std::stod(line.substr(colon + 1)));
    }
  }
  const std::string clock = p.mhz > 0 ? cat(p.mhz, " MHz from /proc/cpuinfo \"cpu MHz\"") : "unknown clock";
  p.gflops = p.cores * p.mhz * 1e-3 * 32;
  p.how = cat(p.cores, " cores (min of hardware_concurrency ", hw, " and omp_get_max_threads ", omp, ") x ", clock,
              " x 32 flop/cycle/core (AVX2: 2 FMA units x 8 f32 lanes x 2 flop)");
  return p;
}

double seconds_of(GemmFn* gemm, const GemmArgs& g) {
  auto t0 = std::chrono::steady_clock::now();
  gemm(ExecContext{kCPU}, DType::f32, g);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

GemmArgs args_of(const Problem& p, const std::vector<float>& a, const std::vector<float>& b, std::vector<float>& c) {
  return dense_gemm(p.trans_a, p.trans_b, p.m, p.n, p.k, a.data(), b.data(), c.data());
}

std::vector<Problem> problems() {
  std::vector<Problem> list;
  for (int64_t s : {256, 512, 1024, 2048}) list.push_back({cat("square ", s), false, false, s, s, s});
  // ResNet-18 convolutions (3x3, small-image stem) at 32x32 input, batch 32, as im2col GEMMs with
  // cols = [Cin·9, 32·H·W] (H·W the output size):
  //   forward        Y[Cout, N]      = W[Cout, K] · cols[K, N]
  //   weight grad    dW[Cout, K]     = dY[Cout, N] · cols[K, N]ᵀ
  //   input grad     dcols[K, N]     = W[Cout, K]ᵀ · dY[Cout, N]
  struct Conv {
    const char* name;
    int64_t cin, cout, hw;
  };
  const Conv convs[] = {{"conv1", 3, 64, 32},        {"layer1", 64, 64, 32},    {"layer2.0", 64, 128, 16},
                        {"layer2", 128, 128, 16},    {"layer3.0", 128, 256, 8}, {"layer3", 256, 256, 8},
                        {"layer4.0", 256, 512, 4},   {"layer4", 512, 512, 4}};
  for (const Conv& c : convs) {
    const int64_t M = c.cout, N = 32 * c.hw * c.hw, K = c.cin * 9;
    list.push_back({cat(c.name, " fwd"), false, false, M, N, K});
    list.push_back({cat(c.name, " dW"), false, true, M, K, N});
    list.push_back({cat(c.name, " dX"), true, false, K, N, M});
  }
  return list;
}

}  // namespace

// --quick: fewer repetitions; --threads: both libraries' thread count (default all); --only: the rows whose
// label contains TEXT. Each figure is the median of several timed runs after two warm-ups; the im2col shapes
// are those of a 32x32 input at batch 32.
int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      omp_set_num_threads(std::max(1, std::atoi(argv[++i])));
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: bench_gemm [--quick] [--threads N] [--only TEXT]\n");
      return 2;
    }
  }
#if defined(SCPN_HAVE_OPENBLAS)
  openblas_set_num_threads(omp_get_max_threads());
#endif
  const Peak peak = estimate_peak();
  std::printf("bench_gemm: f32, C = op(A)·op(B), beta = 0; median of %s timed runs after 2 warm-up runs\n",
              quick ? "3" : "7 (3 for the largest)");
  std::printf("estimated f32 peak: %.1f GFLOP/s = %s\n", peak.gflops, peak.how.c_str());
  std::printf("(\"cpu MHz\" is the nominal clock; a boosting core can exceed this peak)\n");
  {
    std::ifstream load("/proc/loadavg");
    std::string l;
    if (std::getline(load, l)) std::printf("load average (other processes skew timings): %s\n", l.c_str());
  }
#if defined(SCPN_HAVE_OPENBLAS)
  std::printf("OpenBLAS: %s, %d threads\n", openblas_get_config(), openblas_get_num_threads());
  GemmFn* openblas = cpu::gemm_openblas;
#else
  std::printf("OpenBLAS: not built (only our GEMM is timed)\n");
  GemmFn* openblas = nullptr;
#endif
  std::printf("\n%-15s %-2s %6s %6s %6s | %9s %9s | %6s | %6s\n", "shape", "op", "M", "N", "K", "ours", "OpenBLAS",
              "ratio", "% peak");
  std::printf("%-15s %-2s %6s %6s %6s | %9s %9s | %6s | %6s\n", "", "", "", "", "", "GFLOP/s", "GFLOP/s", "", "ours");

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Problem& p : problems()) {
    if (p.label.find(only) == std::string::npos) continue;
    std::vector<float> a(size_t(p.m * p.k)), b(size_t(p.k * p.n)), c(size_t(p.m * p.n));
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);
    const double flop = 2.0 * double(p.m) * double(p.n) * double(p.k);
    const int reps = quick ? 3 : (flop > 8e9 ? 3 : 7);
    const GemmArgs g = args_of(p, a, b, c);
    // One library at a time: each keeps its worker threads spinning for a while after a call, which
    // would steal the cores from the other one if the calls alternated.
    auto time_median = [&](GemmFn* fn) {
      std::vector<double> t;
      for (int r = 0; r < 2; ++r) seconds_of(fn, g);  // warm-up: buffers, thread pool, caches
      for (int r = 0; r < reps; ++r) t.push_back(seconds_of(fn, g));
      return median(t);
    };
    const double ours = flop / time_median(cpu::gemm_ours) * 1e-9;
    const double theirs = openblas ? flop / time_median(openblas) * 1e-9 : 0.0;
    const char* op = p.trans_a ? "TN" : p.trans_b ? "NT" : "NN";
    const double of_peak = peak.gflops > 0 ? 100.0 * ours / peak.gflops : 0.0;
    if (openblas)
      std::printf("%-15s %-2s %6lld %6lld %6lld | %9.1f %9.1f | %6.2f | %5.0f%%\n", p.label.c_str(), op,
                  (long long)p.m, (long long)p.n, (long long)p.k, ours, theirs, ours / theirs, of_peak);
    else
      std::printf("%-15s %-2s %6lld %6lld %6lld | %9.1f %9s | %6s | %5.0f%%\n", p.label.c_str(), op, (long long)p.m,
                  (long long)p.n, (long long)p.k, ours, "-", "-", of_peak);
    std::fflush(stdout);
  }
  return 0;
}
