#include "engine/context.h"

#include "kernels/common/error.h"
#include "kernels/registry.h"

namespace scpn {

namespace {
ContextProvider& cuda_provider() {
  static ContextProvider p = nullptr;
  return p;
}
}  // namespace

void set_cuda_context_provider(ContextProvider provider) { cuda_provider() = provider; }

ExecContext exec_context(Device device) {
  if (device.is_cpu()) return ExecContext{device};
  kernels();  // the first use of the table installs the CUDA backend's hooks (engine/dispatch.cpp)
  if (!cuda_provider()) throw Error(cat("device ", device.str(), ": this build has no CUDA backend"));
  return cuda_provider()(device);
}

}  // namespace scpn
