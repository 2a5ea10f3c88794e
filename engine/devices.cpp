#include "engine/devices.h"

#if defined(SCPN_WITH_CUDA)
#include "engine/cuda/runtime.h"
#endif

namespace scpn {

#if defined(SCPN_WITH_CUDA)
bool cuda_backend_built() { return true; }
int cuda_device_count() { return cuda::device_count(); }
std::string no_cuda_device_reason() { return cuda_device_count() > 0 ? "" : cuda::no_device_reason(); }
#else
bool cuda_backend_built() { return false; }
int cuda_device_count() { return 0; }
std::string no_cuda_device_reason() { return "this build has no CUDA backend (configure with -DSCPN_CUDA=ON)"; }
#endif

}  // namespace scpn
