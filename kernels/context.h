// What a kernel is handed besides its operands: the device; on the CPU the GEMM to call; on CUDA the
// device's stream, library handles, scratch memory from the caching allocator and the math mode.
#pragma once
#include <cstddef>

#include "kernels/common/dtype.h"

namespace scpn {

struct ExecContext;
struct GemmArgs;  // kernels/gemm.h
using GemmFn = void(const ExecContext&, DType, const GemmArgs&);

struct ExecContext {
  Device device;
  void* stream = nullptr;   // cudaStream_t: the device's one compute stream
  void* blas = nullptr;     // cublasHandle_t, bound to `stream`
  void* blas_lt = nullptr;  // cublasLtHandle_t
  void* dnn = nullptr;      // cudnnHandle_t, bound to `stream`
  // Scratch device memory (cuDNN workspaces, CUB temporaries) from the caching allocator. A buffer may be
  // released as soon as the work using it is enqueued: memory is reused only by later work on the same
  // stream, which runs after it (kernels/cuda/scratch.h wraps the pair).
  void* (*allocate)(size_t bytes, int device_index) = nullptr;
  void (*release)(void* ptr, size_t bytes, int device_index) = nullptr;
  // Math mode (engine/cuda/runtime.h): TF32 tensor cores for f32 convolutions and GEMMs, and whether
  // only deterministic algorithms may run. Parity tests turn TF32 off and determinism on.
  bool allow_tf32 = true;
  bool deterministic = false;
  // The CPU GEMM that GEMM-based CPU kernels (conv2d) call: kernels never read the dispatch table, the
  // engine hands them the registered one (tests and benchmarks may hand another).
  GemmFn* gemm = nullptr;
};

inline constexpr int kMaxDims = 8;

}  // namespace scpn
