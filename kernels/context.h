// What a kernel is handed besides its operands: the device it runs on and, for CUDA, the stream and
// library handles of that device's context. CPU kernels only read `device`.
#pragma once
#include "kernels/common/dtype.h"

namespace scpn {

struct ExecContext {
  Device device;
  void* stream = nullptr;  // cudaStream_t on CUDA
  void* blas = nullptr;    // cublasHandle_t
  void* dnn = nullptr;     // cudnnHandle_t
};

inline constexpr int kMaxDims = 8;

}  // namespace scpn
