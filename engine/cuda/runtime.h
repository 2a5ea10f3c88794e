// The CUDA runtime of the engine: per-device contexts, the process-wide math mode, and install(), which
// hands the engine its device memory and context provider. Compiled only in CUDA builds (engine/devices.h
// is the portable face).
#pragma once
#include <cstdint>
#include <mutex>

#include "kernels/context.h"

namespace scpn::cuda {

// Devices visible to this process; 0 when there is none or no driver (never throws).
int device_count();
// Why there is no device (the runtime's answer), for skip messages and errors; empty when there is one.
const char* no_device_reason();

// Math mode. TF32 is allowed for f32 convolutions and GEMMs by default; parity mode (TF32 off,
// deterministic algorithms only) is for tests and bit-reproducible runs. SCPN_CUDA_PARITY=1 in the
// environment starts a process in parity mode.
struct MathMode {
  bool allow_tf32 = true;
  bool deterministic = false;
};
MathMode math_mode();
void set_math_mode(const MathMode& mode);
// Sets `mode` for a scope and restores the previous mode when it ends.
class MathModeGuard {
 public:
  explicit MathModeGuard(const MathMode& mode);
  ~MathModeGuard();
  MathModeGuard(const MathModeGuard&) = delete;
  MathModeGuard& operator=(const MathModeGuard&) = delete;

 private:
  MathMode saved_;
};
// Parity mode for a scope (tests): TF32 off, deterministic algorithms only.
class ParityModeGuard : public MathModeGuard {
 public:
  ParityModeGuard() : MathModeGuard({.allow_tf32 = false, .deterministic = true}) {}
};

// Throws, naming the device and why, unless cuda:index exists.
void require_device(int index);

// One DeviceContext per device (compute stream, cuBLAS, cuBLASLt and cuDNN handles, cuBLAS workspace, a
// Philox offset counter): never global handles shared between devices.
struct DeviceContext;
// The context of device `index` (created on first use; throws naming the device when it does not exist).
DeviceContext& device_context(int index);
// The ExecContext handed to kernels for device `index`.
ExecContext exec_context_for(int index);
// Waits until all work queued on the device's stream has finished (errors surface here with the call).
void synchronize(int index);

// Installs the CUDA memory hooks and context provider into the engine (engine/dispatch.cpp calls it once).
void install();

}  // namespace scpn::cuda
