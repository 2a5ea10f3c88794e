// Which devices this process can use, in every build: a CPU-only build sees no CUDA device. Tests use
// it to skip GPU suites with a message; train_scpn uses it to resolve device "auto".
#pragma once
#include <string>

#include "kernels/common/dtype.h"

namespace scpn {

bool cuda_backend_built();
int cuda_device_count();
// Why no CUDA device is usable ("this build has no CUDA backend", the driver's answer...); empty if one is.
std::string no_cuda_device_reason();

// Device names as configs and command lines write them: "auto", "cpu" or "cuda:N" (N a whole number).
// Anything else is an error naming `what` (the config key or option) and the text. Checks the form only,
// not whether the device exists (a config may be written for another machine).
void check_device_name(const std::string& text, const std::string& what);
// The device to run on: "auto" is cuda:0 when a CUDA device is usable and the CPU otherwise; "cuda:N"
// must exist (the error names `what`, the device and why not).
Device resolve_device(const std::string& text, const std::string& what);

// For its lifetime, CUDA kernels run in parity mode (TF32 off, deterministic algorithms only), so that a
// test can compare devices; restores the previous mode. Does nothing in a build without CUDA.
class ParityModeScope {
 public:
  ParityModeScope();
  ~ParityModeScope();
  ParityModeScope(const ParityModeScope&) = delete;
  ParityModeScope& operator=(const ParityModeScope&) = delete;

 private:
  bool allow_tf32_ = true, deterministic_ = false;
};

// Threads of the CPU kernels (OpenMP): the OMP_NUM_THREADS default is every core, which several training
// processes on one machine would each claim; a launcher's ranks share the cores out instead.
int cpu_threads();
void set_cpu_threads(int threads);

// Waits until the work queued on `d` has finished (a no-op on the CPU, whose kernels are synchronous):
// for timings that must cover the device's work, not only its launch.
void synchronize(Device d);

}  // namespace scpn
