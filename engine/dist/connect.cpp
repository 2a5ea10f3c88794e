// The communicator factory (connect.h); the one file that knows whether NCCL was built in.
#include "engine/dist/connect.h"

#include "engine/dist/tcp_communicator.h"
#if defined(SCPN_HAVE_NCCL)
#include "engine/dist/nccl_communicator.h"
#endif

namespace scpn::dist {

bool nccl_available() {
#if defined(SCPN_HAVE_NCCL)
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> connect(const LaunchInfo& info, const std::string& backend, Device device,
                                      Seconds timeout) {
  const std::string chosen = backend == "auto" ? (device.is_cuda() ? "nccl" : "tcp") : backend;
  if (chosen == "tcp") {
    SCPN_CHECK(device.is_cpu(), "dist.backend=tcp moves CPU tensors; the model is on ", device.str(),
               " (use dist.backend=nccl or auto)");
    return std::make_unique<TcpCommunicator>(info, timeout);
  }
  SCPN_CHECK(chosen == "nccl", "dist.backend must be auto, tcp or nccl, got '", backend, "'");
  SCPN_CHECK(device.is_cuda(), "dist.backend=nccl needs a CUDA device; the model is on ", device.str());
#if defined(SCPN_HAVE_NCCL)
  return std::make_unique<NcclCommunicator>(info, device, timeout);
#else
  throw Error("dist.backend=nccl: this build has no NCCL (configure with the CUDA backend and NCCL_ROOT)");
#endif
}

}  // namespace scpn::dist
