#include "engine/devices.h"

#include <omp.h>

#include <algorithm>
#include <cctype>

#include "kernels/common/error.h"

#if defined(SCPN_WITH_CUDA)
#include "engine/cuda/runtime.h"
#endif

namespace scpn {

#if defined(SCPN_WITH_CUDA)
bool cuda_backend_built() { return true; }
int cuda_device_count() { return cuda::device_count(); }
std::string no_cuda_device_reason() { return cuda_device_count() > 0 ? "" : cuda::no_device_reason(); }
void synchronize(Device d) {
  if (d.is_cuda()) cuda::synchronize(d.index);
}
ParityModeScope::ParityModeScope() {
  const cuda::MathMode saved = cuda::math_mode();
  allow_tf32_ = saved.allow_tf32;
  deterministic_ = saved.deterministic;
  cuda::set_math_mode({.allow_tf32 = false, .deterministic = true});
}
ParityModeScope::~ParityModeScope() { cuda::set_math_mode({.allow_tf32 = allow_tf32_, .deterministic = deterministic_}); }
#else
bool cuda_backend_built() { return false; }
int cuda_device_count() { return 0; }
std::string no_cuda_device_reason() { return "this build has no CUDA backend (configure with -DSCPN_CUDA=ON)"; }
void synchronize(Device d) { SCPN_CHECK(d.is_cpu(), "synchronize: ", d.str(), " requested, but this build has no CUDA backend"); }
ParityModeScope::ParityModeScope() = default;
ParityModeScope::~ParityModeScope() = default;
#endif

namespace {

// "cpu" or "cuda:N"; anything else, "auto" included, is an error naming `what`.
Device parse_device(const std::string& text, const std::string& what) {
  if (text == "cpu") return kCPU;
  const std::string prefix = "cuda:";
  const std::string digits = text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : "";
  bool whole_number = !digits.empty() && digits.size() <= 4;
  for (char c : digits) whole_number = whole_number && std::isdigit(static_cast<unsigned char>(c));
  SCPN_CHECK(whole_number, what, ": '", text, "' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)");
  return cuda_device(std::stoi(digits));
}

}  // namespace

void check_device_name(const std::string& text, const std::string& what) {
  if (text != "auto") parse_device(text, what);
}

Device resolve_device(const std::string& text, const std::string& what) {
  if (text == "auto") return cuda_device_count() > 0 ? cuda_device(0) : kCPU;
  const Device d = parse_device(text, what);
  if (d.is_cuda() && d.index >= cuda_device_count()) {
    const int count = cuda_device_count();
    throw Error(cat(what, ": ", d.str(), " requested, but ",
                    count == 0 ? cat("no CUDA device is usable (", no_cuda_device_reason(), ")")
                               : cat("only ", count, " CUDA device(s) are visible (cuda:0 to cuda:", count - 1, ")")));
  }
  return d;
}

int cpu_threads() { return omp_get_max_threads(); }

void set_cpu_threads(int threads) { omp_set_num_threads(std::max(1, threads)); }

}  // namespace scpn
