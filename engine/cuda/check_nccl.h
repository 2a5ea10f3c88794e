// SCPN_NCCL_CHECK: the NCCL member of the check-macro family (kernels/cuda/check.h), kept apart so that
// only code that talks to NCCL includes nccl.h. Same message shape: call, status name and description,
// file and line. Tested (without a device) by tests/gpu/test_runtime.cpp.
#pragma once
#include <nccl.h>

#include "kernels/cuda/check.h"

namespace scpn::cuda_check {

// NCCL has no ncclGetErrorName; the enum's names, as the other libraries' messages carry theirs.
inline const char* nccl_status_name(ncclResult_t s) {
  switch (s) {
    case ncclSuccess: return "ncclSuccess";
    case ncclUnhandledCudaError: return "ncclUnhandledCudaError";
    case ncclSystemError: return "ncclSystemError";
    case ncclInternalError: return "ncclInternalError";
    case ncclInvalidArgument: return "ncclInvalidArgument";
    case ncclInvalidUsage: return "ncclInvalidUsage";
    case ncclRemoteError: return "ncclRemoteError";
    case ncclInProgress: return "ncclInProgress";
    default: return "ncclResult_t";
  }
}
inline std::string describe(ncclResult_t s) {
  return cat(nccl_status_name(s), " (", ncclGetErrorString(s), "; ncclResult_t ", int(s), ")");
}
inline bool ok(ncclResult_t s) { return s == ncclSuccess; }

}  // namespace scpn::cuda_check

#define SCPN_NCCL_CHECK(call) SCPN_CUDA_CHECK(call)
