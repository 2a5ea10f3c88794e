// The kernel lab's bench harness: a seeded generator for inputs, a timer that reports the median of
// repeated runs, the machine's measured peaks (copy bandwidth, f32 FMA rate), the comparison of a
// variant's output with an f64 reference, and the table every lab prints.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lab {

// splitmix64: small, seedable and the same on every compiler, so a problem is the same everywhere.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double low = -1.0, double high = 1.0) { return low + (high - low) * double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

inline double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// How long to measure: one untimed warm-up call (first-touch page faults, cold caches), then calls until
// at least `repeats` calls and `min_seconds` have passed.
struct TimingPolicy {
  int repeats = 3;
  double min_seconds = 0.3;
};

// The median time of `run` under the policy, in seconds. The median rather than the minimum: the lab
// shares its cores, and one lucky run says little about the next.
double median_seconds(const std::function<void()>& run, const TimingPolicy& policy);

// What a variant's run gives back: its time, or why it did not run (no CUDA device, not built).
struct Timing {
  double seconds = 0;
  std::string skipped;
};

// Measured once per process, the fastest of several runs: a copy loop over buffers far larger than the
// caches (GB/s counted as bytes read + bytes written, STREAM's convention) and independent FMA chains on
// registers (GFLOP/s, 2 flops per FMA), each with one thread and with every OpenMP thread.
struct Peaks {
  int threads = 1;
  double copy_gbs_one = 0, copy_gbs_all = 0;
  double fma_gflops_one = 0, fma_gflops_all = 0;
};
Peaks measure_peaks();

// |got − want| <= atol + rtol·|want| everywhere; the worst element (by the ratio of its error to its
// allowance) is reported.
struct Comparison {
  bool ok = true;
  double max_abs_error = 0;
  double worst_ratio = 0;  // max over elements of error / allowance: <= 1 passes
  int64_t worst_index = -1;
  double worst_got = 0, worst_want = 0;
};
Comparison compare(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol);

// One line of a lab's table. `rate` is GB/s or GFLOP/s as the lab's unit says; `peak` is the same unit's
// measured peak for the variant's thread count (0: no peak, e.g. a GPU variant).
struct Row {
  std::string variant, file;  // the file is named when the variant disagrees with the reference
  int threads = 1;
  Timing timing;
  double rate = 0, peak = 0;
  Comparison check;
  bool checked = false;
};

// Prints the timing table (variant, threads, ms, rate, % of peak, speedup over the first row that ran,
// worst error relative to its allowance) and returns whether every row that ran passed its check.
bool print_timing_table(const std::string& title, const std::string& unit, const std::vector<Row>& rows);

// Prints the check table of one problem (variant, max error, worst error / allowance, verdict) and
// returns whether every row that ran passed.
bool print_check_table(const std::string& problem, const std::vector<Row>& rows);

}  // namespace lab
