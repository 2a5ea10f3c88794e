// The process-wide kernel table, filled on first use by the CPU registration and, in CUDA builds, the
// CUDA registration (which also installs device memory when a device is present).
#include "kernels/registry.h"

namespace scpn {

KernelTable& kernels() {
  static KernelTable* table = [] {
    auto* t = new KernelTable();  // never freed: kernels may run during static destruction
    register_cpu_kernels(*t);
#if defined(SCPN_WITH_CUDA)
    register_cuda_kernels(*t);
#endif
    return t;
  }();
  return *table;
}

}  // namespace scpn
