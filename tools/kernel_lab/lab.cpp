// The kernel lab's bench harness (lab.h): timing, measured peaks, comparison with a reference, tables.
#include "tools/kernel_lab/lab.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

namespace lab {

double median_seconds(const std::function<void()>& run, const TimingPolicy& policy) {
  run();  // warm-up
  std::vector<double> times;
  const double start = seconds_now();
  while (int(times.size()) < policy.repeats || seconds_now() - start < policy.min_seconds) {
    const double t0 = seconds_now();
    run();
    times.push_back(seconds_now() - t0);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

namespace {

// A peak is what the machine can do at best, so the fastest of the runs, not their median.
double fastest_seconds(const std::function<void()>& run, int runs) {
  run();  // warm-up
  double best = INFINITY;
  for (int i = 0; i < runs; ++i) {
    const double t0 = seconds_now();
    run();
    best = std::min(best, seconds_now() - t0);
  }
  return best;
}

// 64 MiB per buffer: twice the 32 MiB L3 of the machines this lab was written on, so the copy streams
// from and to memory.
constexpr int64_t kCopyFloats = int64_t(16) << 20;

double copy_gbs(int threads, float* src, float* dst) {
  const double seconds = fastest_seconds(
      [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < kCopyFloats; ++i) dst[i] = src[i];
      },
      10);
  return 2.0 * double(kCopyFloats) * sizeof(float) / seconds * 1e-9;
}

// Independent chains of acc = acc·a + b on 16-float vectors (GCC's vector extension: one 512-bit register,
// or two 256-bit ones): enough chains to cover the FMA latency on every FMA pipe.
using Floats16 = float __attribute__((vector_size(64)));
constexpr int kChains = 12;

double fma_gflops(int threads) {
  constexpr int64_t kIterations = 4'000'000;
  double sink = 0;
  const double seconds = fastest_seconds(
      [&] {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
          Floats16 acc[kChains];
          for (int c = 0; c < kChains; ++c)
            for (int l = 0; l < 16; ++l) acc[c][l] = float(c + l + omp_get_thread_num());
          const float a = 0.9999999f, b = 1e-7f;
          for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 12
            for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;  // -ffp-contract=fast: one FMA
          for (int c = 0; c < kChains; ++c)
            for (int l = 0; l < 16; ++l) sink += double(acc[c][l]);
        }
      },
      5);
  if (sink == 42.0) std::printf(" ");  // keeps the chains alive
  return 2.0 * double(kIterations) * kChains * 16 * threads / seconds * 1e-9;
}

}  // namespace

Peaks measure_peaks() {
  Peaks p;
  p.threads = omp_get_max_threads();
  auto src = std::make_unique_for_overwrite<float[]>(size_t(kCopyFloats));
  auto dst = std::make_unique_for_overwrite<float[]>(size_t(kCopyFloats));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < kCopyFloats; ++i) {
    src[i] = float(i & 1023);
    dst[i] = 0;
  }
  p.copy_gbs_one = copy_gbs(1, src.get(), dst.get());
  p.copy_gbs_all = copy_gbs(p.threads, src.get(), dst.get());
  p.fma_gflops_one = fma_gflops(1);
  p.fma_gflops_all = fma_gflops(p.threads);
  return p;
}

Comparison compare(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol) {
  Comparison c;
  if (got.size() != want.size()) {
    c.ok = false;
    c.worst_ratio = INFINITY;
    return c;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::fabs(double(got[i]) - want[i]);
    const double allowance = atol + rtol * std::fabs(want[i]);
    // A NaN (in the output or the reference) counts as an infinite error.
    const double ratio =
        std::isnan(error) ? INFINITY : allowance > 0 ? error / allowance : (error > 0 ? INFINITY : 0.0);
    c.max_abs_error = std::isnan(error) ? INFINITY : std::max(c.max_abs_error, error);
    if (ratio > c.worst_ratio || c.worst_index < 0) {
      c.worst_ratio = ratio;
      c.worst_index = int64_t(i);
      c.worst_got = got[i];
      c.worst_want = want[i];
    }
  }
  c.ok = c.worst_ratio <= 1.0;
  return c;
}

namespace {

std::string check_cell(const Row& r) {
  if (!r.checked) return "-";
  char buf[256];
  if (r.check.ok)
    std::snprintf(buf, sizeof buf, "ok (%.1e)", r.check.max_abs_error);
  else
    std::snprintf(buf, sizeof buf, "MISMATCH at element %lld: %.6g, reference %.6g (%s)",
                  (long long)r.check.worst_index, r.check.worst_got, r.check.worst_want, r.file.c_str());
  return buf;
}

}  // namespace

bool print_timing_table(const std::string& title, const std::string& unit, const std::vector<Row>& rows) {
  std::printf("\n%s\n", title.c_str());
  std::printf("%-26s %7s %10s %10s %8s %8s  %s\n", "variant", "threads", "ms", unit.c_str(), "% peak", "speedup",
              "check (max abs error)");
  double baseline = 0;
  bool ok = true;
  for (const Row& r : rows) {
    if (!r.timing.skipped.empty()) {
      std::printf("%-26s %7s %10s %10s %8s %8s  skipped: %s\n", r.variant.c_str(), "-", "-", "-", "-", "-",
                  r.timing.skipped.c_str());
      continue;
    }
    if (baseline == 0) baseline = r.timing.seconds;
    char peak[16] = "-";
    if (r.peak > 0) std::snprintf(peak, sizeof peak, "%.1f", 100.0 * r.rate / r.peak);
    std::printf("%-26s %7d %10.3f %10.2f %8s %7.1fx  %s\n", r.variant.c_str(), r.threads, r.timing.seconds * 1e3,
                r.rate, peak, baseline / r.timing.seconds, check_cell(r).c_str());
    ok = ok && (!r.checked || r.check.ok);
  }
  return ok;
}

bool print_check_table(const std::string& problem, const std::vector<Row>& rows) {
  std::printf("\n%s\n", problem.c_str());
  std::printf("  %-26s %14s %14s  %s\n", "variant", "max abs error", "error/allowed", "verdict");
  bool ok = true;
  for (const Row& r : rows) {
    if (!r.timing.skipped.empty()) {
      std::printf("  %-26s %14s %14s  skipped: %s\n", r.variant.c_str(), "-", "-", r.timing.skipped.c_str());
      continue;
    }
    std::printf("  %-26s %14.3e %14.3f  %s\n", r.variant.c_str(), r.check.max_abs_error, r.check.worst_ratio,
                r.check.ok ? "ok" : check_cell(r).c_str());
    ok = ok && r.check.ok;
  }
  return ok;
}

}  // namespace lab
