// The process-wide kernel table and the per-device execution contexts.
#include "engine/dispatch.h"

#include "engine/error.h"
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


namespace {
ContextProvider& cuda_provider() {
  static ContextProvider p = nullptr;
  return p;
}
}  // namespace

void set_cuda_context_provider(ContextProvider provider) { cuda_provider() = provider; }

ExecContext exec_context(Device device) {
  if (device.is_cpu()) {
    ExecContext ctx{device};
    ctx.gemm = kernels().gemm.cpu;
    return ctx;
  }
  kernels();  // the first use of the table installs the CUDA backend's hooks
  if (!cuda_provider()) throw Error(cat("device ", device.str(), ": this build has no CUDA backend"));
  return cuda_provider()(device);
}

}  // namespace scpn
