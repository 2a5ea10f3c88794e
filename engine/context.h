// The execution context handed to kernels for a device. On the CPU it is just the device; the CUDA
// backend installs a provider that returns the device's stream and library handles.
#pragma once
#include "kernels/context.h"

namespace scpn {

ExecContext exec_context(Device device);
using ContextProvider = ExecContext (*)(Device);
void set_cuda_context_provider(ContextProvider provider);

}  // namespace scpn
