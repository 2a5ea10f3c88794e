// The process-wide kernel table, filled on first use by the CPU registration and, in CUDA builds, the
// CUDA registration (which also installs device memory when a device is present).
#include "kernels/registry.h"

#if defined(SCPN_WITH_CUDA)
#include "engine/cuda/runtime.h"
#endif

namespace scpn {

KernelTable& kernels() {
  static KernelTable* table = [] {
    auto* t = new KernelTable();  // never freed: kernels may run during static destruction
    register_cpu_kernels(*t);
#if defined(SCPN_WITH_CUDA)
    // Hooks are installed even without a device: using cuda:N then fails with the reason, not a crash.
    cuda::install();
    register_cuda_kernels(*t);
#endif
    return t;
  }();
  return *table;
}

}  // namespace scpn
