// kernel_lab [--kernel grad_integration|conv2d|all] [--check] [--repeats N] [--min-seconds S]: every numbered
// variant of a kernel checked against its f64 reference and timed, with the rate, the share of this
// machine's measured peak and the speedup over variant 1. --check runs each variant once on small odd-sized
// problems and exits 1 on any mismatch (CTest: kernel_lab/check). Variants: tools/kernel_lab/README.md.
#include <omp.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/kernel_lab/conv2d.h"
#include "tools/kernel_lab/grad_integration.h"
#include "tools/kernel_lab/lab.h"

namespace lab {

namespace {

// A variant runs on a problem into `out`: timed under the policy, or once when it is null.
template <class Problem>
using RunFn = std::function<Timing(const Problem&, std::vector<float>& out, const TimingPolicy*)>;

template <class Problem>
struct Variant {
  std::string name, file;
  int threads = 1;  // 0: a GPU
  RunFn<Problem> run;
};

int64_t output_size(const IntegrationProblem& p) { return p.numel; }
int64_t output_size(const Conv2dProblem& p) { return p.output_size(); }

template <class Problem>
RunFn<Problem> on_cpu(void (*kernel)(const Problem&, float*)) {
  return [kernel](const Problem& p, std::vector<float>& out, const TimingPolicy* policy) -> Timing {
    // NaN until written: an element a variant forgets fails the comparison.
    out.assign(size_t(output_size(p)), std::numeric_limits<float>::quiet_NaN());
    if (!policy) {
      kernel(p, out.data());
      return {};
    }
    return {median_seconds([&] { kernel(p, out.data()); }, *policy), ""};
  };
}

// The one place that knows whether the CUDA variants were built.
template <class Problem>
RunFn<Problem> on_cuda(Timing (*kernel)(int, const Problem&, std::vector<float>&, const TimingPolicy*), int variant) {
#if defined(SCPN_LAB_WITH_CUDA)
  return [kernel, variant](const Problem& p, std::vector<float>& out, const TimingPolicy* policy) {
    return kernel(variant, p, out, policy);
  };
#else
  (void)kernel;
  (void)variant;
  return [](const Problem&, std::vector<float>&, const TimingPolicy*) {
    return Timing{0, "built without CUDA (configure with -DSCPN_CUDA=ON)"};
  };
#endif
}

std::vector<Variant<IntegrationProblem>> grad_integration_variants() {
  const int all = omp_get_max_threads();
  return {
      {"1 naive", "tools/kernel_lab/grad_integration_1_naive.cpp", 1, on_cpu(grad_integration_1_naive)},
      {"2 gram once per row", "tools/kernel_lab/grad_integration_2_gram.cpp", 1, on_cpu(grad_integration_2_gram)},
      {"3 fused gram pass", "tools/kernel_lab/grad_integration_3_fused.cpp", 1, on_cpu(grad_integration_3_fused)},
      {"4 fused + threads", "tools/kernel_lab/grad_integration_3_fused.cpp", all, on_cpu(grad_integration_4_threads)},
      {"engine cpu::grad_integrate", "kernels/cpu/grad_integration.cpp", all, on_cpu(grad_integration_engine_cpu)},
      {"cuda 1 thread per row", "tools/kernel_lab/grad_integration.cu", 0, on_cuda(grad_integration_cuda, 1)},
      {"cuda 2 block per row", "tools/kernel_lab/grad_integration.cu", 0, on_cuda(grad_integration_cuda, 2)},
  };
}

std::vector<Variant<Conv2dProblem>> conv2d_variants() {
  const int all = omp_get_max_threads();
  return {
      {"1 direct loops", "tools/kernel_lab/conv2d_1_direct.cpp", 1, on_cpu(conv2d_1_direct)},
      {"2 im2col + tiled gemm", "tools/kernel_lab/conv2d_2_im2col.cpp", 1, on_cpu(conv2d_2_im2col)},
      {"3 packed 8x16 registers", "tools/kernel_lab/conv2d_3_blocked.cpp", 1, on_cpu(conv2d_3_blocked)},
      {"4 packed + threads", "tools/kernel_lab/conv2d_3_blocked.cpp", all, on_cpu(conv2d_4_threads)},
      {"engine cpu::conv2d_forward", "kernels/cpu/conv2d.cpp", all, on_cpu(conv2d_engine_cpu)},
      {"cuda 1 thread per output", "tools/kernel_lab/conv2d.cu", 0, on_cuda(conv2d_cuda, 1)},
      {"cuda 2 shared-memory tile", "tools/kernel_lab/conv2d.cu", 0, on_cuda(conv2d_cuda, 2)},
  };
}

// Float results against the f64 reference. Integration: the output is a combination of K gradients
// whose entries are O(1), computed in double and rounded once; convolution: conv2d_tolerance.
Comparison check(const IntegrationProblem& p, const std::vector<float>& out, const std::vector<double>& ref) {
  return compare(out, ref, 1e-5 * p.K, 1e-5);
}
Comparison check(const Conv2dProblem& p, const std::vector<float>& out, const std::vector<double>& ref) {
  return compare(out, ref, conv2d_tolerance(p), 1e-5);
}

template <class Problem>
std::vector<Row> run_variants(const std::vector<Variant<Problem>>& variants, const Problem& p,
                              const std::vector<double>& ref, const TimingPolicy* policy) {
  std::vector<Row> rows;
  std::vector<float> out;
  for (const Variant<Problem>& v : variants) {
    Row r;
    r.variant = v.name;
    r.file = v.file;
    r.threads = v.threads;
    r.timing = v.run(p, out, policy);
    if (r.timing.skipped.empty()) {
      r.check = check(p, out, ref);
      r.checked = true;
    }
    rows.push_back(r);
  }
  return rows;
}

template <class Problem>
bool check_all(const char* kernel, const std::vector<Problem>& problems, const std::vector<Variant<Problem>>& variants,
               std::vector<double> (*reference)(const Problem&)) {
  bool ok = true;
  for (const Problem& p : problems)
    ok = print_check_table(std::string(kernel) + ": " + p.name, run_variants(variants, p, reference(p), nullptr)) && ok;
  return ok;
}

bool time_grad_integration(const Peaks& peaks, const TimingPolicy& policy) {
  const IntegrationProblem p = resnet18_grad_integration_problem();
  std::vector<Row> rows = run_variants(grad_integration_variants(), p, grad_integration_reference(p), &policy);
  for (Row& r : rows) {
    if (!r.timing.skipped.empty()) continue;
    r.rate = p.compulsory_bytes() / r.timing.seconds * 1e-9;
    r.peak = r.threads == 0 ? 0 : r.threads == 1 ? peaks.copy_gbs_one : peaks.copy_gbs_all;
  }
  return print_timing_table("grad_integration: " + p.name + ", GB/s = (K + 1)·numel·4 bytes / time", "GB/s", rows);
}

bool time_conv2d(const Peaks& peaks, const TimingPolicy& policy) {
  const Conv2dProblem p = resnet_conv2d_problem();
  std::vector<Row> rows = run_variants(conv2d_variants(), p, conv2d_reference(p), &policy);
  for (Row& r : rows) {
    if (!r.timing.skipped.empty()) continue;
    r.rate = p.flops() / r.timing.seconds * 1e-9;
    r.peak = r.threads == 0 ? 0 : r.threads == 1 ? peaks.fma_gflops_one : peaks.fma_gflops_all;
  }
  return print_timing_table("conv2d: " + p.name, "GFLOP/s", rows);
}

const char* kUsage =
    "usage: kernel_lab [--kernel grad_integration|conv2d|all] [--check] [--repeats N] [--min-seconds S]\n"
    "  Runs every variant of the chosen kernels, checks it against the f64 reference and times it\n"
    "  (median of at least N runs and S seconds; defaults 3 and 0.3). --check: each variant once on small\n"
    "  problems, no timing; exit status 1 on any mismatch.\n";

}  // namespace

}  // namespace lab

int main(int argc, char** argv) {
  using namespace lab;
  try {
    std::string kernel = "all";
    bool check_mode = false;
    TimingPolicy policy;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return std::string(argv[++i]);
      };
      auto number = [&] {
        const std::string text = value();
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size()) throw std::invalid_argument(a + ": '" + text + "' is not a number");
        return v;
      };
      if (a == "--help" || a == "-h") {
        std::printf("%s", kUsage);
        return 0;
      } else if (a == "--kernel") {
        kernel = value();
      } else if (a == "--check") {
        check_mode = true;
      } else if (a == "--repeats") {
        policy.repeats = int(number());
      } else if (a == "--min-seconds") {
        policy.min_seconds = number();
      } else {
        throw std::invalid_argument("unknown argument '" + a + "'");
      }
    }
    if (kernel != "all" && kernel != "grad_integration" && kernel != "conv2d")
      throw std::invalid_argument("--kernel " + kernel + ": expected grad_integration, conv2d or all");
    if (policy.repeats < 1) throw std::invalid_argument("--repeats must be >= 1");
    const bool integration = kernel != "conv2d", conv = kernel != "grad_integration";

    bool ok = true;
    if (check_mode) {
      if (integration)
        ok = check_all("grad_integration", grad_integration_check_problems(), grad_integration_variants(),
                       grad_integration_reference) && ok;
      if (conv) ok = check_all("conv2d", conv2d_check_problems(), conv2d_variants(), conv2d_reference) && ok;
      std::printf("\nkernel_lab --check: %s\n", ok ? "every variant matches its reference" : "MISMATCH");
      return ok ? 0 : 1;
    }
    const Peaks peaks = measure_peaks();
    std::printf("peaks measured here: copy %.1f GB/s (1 thread), %.1f GB/s (%d threads); f32 FMA %.1f GFLOP/s "
                "(1 thread), %.1f GFLOP/s (%d threads)\n",
                peaks.copy_gbs_one, peaks.copy_gbs_all, peaks.threads, peaks.fma_gflops_one, peaks.fma_gflops_all,
                peaks.threads);
    if (integration) ok = time_grad_integration(peaks, policy) && ok;
    if (conv) ok = time_conv2d(peaks, policy) && ok;
    if (!ok) std::printf("\nMISMATCH: a variant disagrees with its reference\n");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_lab: error: %s\n\n%s", e.what(), kUsage);
    return 2;
  }
}
