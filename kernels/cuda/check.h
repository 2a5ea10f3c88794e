// Status checks for CUDA runtime, cuBLAS and cuDNN calls and for kernel launches, throwing scpn::Error.
// Header-only, so that both engine/cuda/ and kernels/ use it.
#pragma once
#include <string>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/common/error.h"

namespace scpn::cuda_check {

// The describe() functions need no device, so the CPU tests check the messages too.
inline std::string describe(cudaError_t s) {
  return cat(cudaGetErrorName(s), " (", cudaGetErrorString(s), ")");
}
inline std::string describe(cublasStatus_t s) {
  return cat(cublasGetStatusName(s), " (", cublasGetStatusString(s), ")");
}
inline std::string describe(cudnnStatus_t s) { return cat(cudnnGetErrorString(s), " (cudnnStatus_t ", int(s), ")"); }

inline bool ok(cudaError_t s) { return s == cudaSuccess; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }

[[noreturn]] inline void fail(const char* call, const std::string& status, const char* file, int line) {
  throw Error(cat(call, " failed: ", status, " at ", file, ":", line));
}

}  // namespace scpn::cuda_check

// A failure throws scpn::Error naming the call as written, the status name and description, and the file
// and line:
//   "cudaMalloc(&ptr, bytes) failed: cudaErrorMemoryAllocation (out of memory) at engine/cuda/allocator.cpp:88"
// One macro per library keeps the call site readable; all share describe()/fail() above. NCCL's twin
// (SCPN_NCCL_CHECK) lives in engine/cuda/check_nccl.h, so that only code talking to NCCL includes nccl.h.
#define SCPN_CUDA_CHECK(call)                                                                   \
  do {                                                                                          \
    const auto scpn_status_ = (call);                                                           \
    if (!::scpn::cuda_check::ok(scpn_status_))                                                  \
      ::scpn::cuda_check::fail(#call, ::scpn::cuda_check::describe(scpn_status_), __FILE__, __LINE__); \
  } while (0)
#define SCPN_CUBLAS_CHECK(call) SCPN_CUDA_CHECK(call)
#define SCPN_CUDNN_CHECK(call) SCPN_CUDA_CHECK(call)

// After every <<<...>>> launch, so that launch errors surface at once, not at the next synchronising call:
// configuration errors (too many threads, too much shared memory) are reported by cudaGetLastError, not by
// the launch itself.
#define SCPN_CUDA_LAUNCH_CHECK(kernel_name)                                                        \
  do {                                                                                             \
    const cudaError_t scpn_status_ = cudaGetLastError();                                           \
    if (scpn_status_ != cudaSuccess)                                                               \
      ::scpn::cuda_check::fail("launch of " kernel_name, ::scpn::cuda_check::describe(scpn_status_), \
                               __FILE__, __LINE__);                                                \
  } while (0)
