// Joining the job's process group: the launch environment (launch.h) and a backend choice give a
// communicator, TCP for CPU training and NCCL for GPUs.
#pragma once
#include <memory>
#include <string>

#include "engine/dist/communicator.h"
#include "engine/dist/launch.h"

namespace scpn::dist {

// backend: "tcp", "nccl", or "auto" (NCCL for a CUDA device, TCP for the CPU). Errors name the backend
// when this build cannot provide it.
std::unique_ptr<Communicator> connect(const LaunchInfo& info, const std::string& backend, Device device,
                                      Seconds timeout);

// Whether this build has the NCCL communicator.
bool nccl_available();

}  // namespace scpn::dist
