// Launch helpers shared by the CUDA kernels: the stream of a context, grid sizes for grid-stride loops,
// and the dtype switch (f32 and f64 are the arithmetic dtypes, as on the CPU). Included only by .cu files.
#pragma once
#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/common/error.h"
#include "kernels/context.h"
#include "kernels/cuda/check.h"

namespace scpn::cuda {

inline cudaStream_t stream_of(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

inline constexpr int kBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the device (a few waves of 256-thread
// blocks on 132 SMs), never more than the elements need.
inline unsigned grid_for(int64_t n, int block = kBlock) {
  const int64_t needed = (n + block - 1) / block;
  return unsigned(std::clamp<int64_t>(needed, 1, 132 * 16));
}

// Calls f(T{}) with T = float or double; other dtypes are an error naming the kernel.
template <class F>
void switch_float(DType t, const char* kernel, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    default: throw Error(cat(kernel, ": dtype ", dtype_name(t), " is not supported on CUDA (f32, f64)"));
  }
}

}  // namespace scpn::cuda
