// Which devices this process can use, in every build: a CPU-only build sees no CUDA device. Tests use
// it to skip GPU suites with a message; train_scpn uses it to resolve device "auto".
#pragma once
#include <string>

namespace scpn {

bool cuda_backend_built();
int cuda_device_count();
// Why no CUDA device is usable ("this build has no CUDA backend", the driver's answer...); empty if one is.
std::string no_cuda_device_reason();

}  // namespace scpn
