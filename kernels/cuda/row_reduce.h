// Row-wise work on CUDA for the softmax, loss, l2_normalize, pooling and conv-bias kernels: deterministic
// reductions over the threads sharing one row (a warp, or a whole block), the row layout of a launch, and
// the row log-sum-exp built on them. Included only by .cu files.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"

namespace scpn::cuda {

inline constexpr int kWarpSize = 32;

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// The larger of two partial maxima. Each partial skipped NaN already (`x > m ? x : m` never picks
// NaN), so neither argument is NaN and the result does not depend on the order.
struct MaxOp {
  __device__ double operator()(double a, double b) const { return b > a ? b : a; }
};

// Combines v over the kGroup threads sharing a row and returns the result to every one of them:
// kGroup = 32 is one warp (all 32 lanes must call it together); kGroup > 32 is the whole block, which
// must then have exactly kGroup threads, all calling it (it synchronises the block).
// The combining order is fixed by the thread layout, so a launch gives the same bits on every run.
// The xor butterfly gives each lane the same value (at every step the two partners add the same two
// numbers, and + is commutative); the warps' results are then combined by every thread in warp order.
template <int kGroup, class Op>
__device__ double group_allreduce(double v, Op op) {
  static_assert(kGroup % kWarpSize == 0 && kGroup <= 1024, "a row group is whole warps of one block");
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if constexpr (kGroup == kWarpSize) {
    return v;
  } else {
    __shared__ double warp_results[kGroup / kWarpSize];
    __syncthreads();  // the previous call's readers are done with warp_results
    if (threadIdx.x % kWarpSize == 0) warp_results[threadIdx.x / kWarpSize] = v;
    __syncthreads();
    double total = warp_results[0];
    for (int w = 1; w < kGroup / kWarpSize; ++w) total = op(total, warp_results[w]);
    return total;
  }
}

// Which rows a thread works on when kGroup threads share a row and kBlock-thread blocks hold
// kBlock / kGroup rows each; rows are visited with a grid-stride loop, so every thread of a group sees
// the same rows (the group reductions above need the whole group present).
template <int kGroup>
struct RowLayout {
  static constexpr int kRowsPerBlock = kBlock / kGroup;
  static unsigned grid(int64_t rows) { return grid_for(rows, kRowsPerBlock); }
  __device__ static int lane() { return int(threadIdx.x % kGroup); }
  __device__ static int64_t first_row() { return int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup; }
  __device__ static int64_t row_stride() { return int64_t(gridDim.x) * kRowsPerBlock; }
};

// Rows up to this many values get one warp each (8 rows per block: narrow rows would leave most of a
// block idle); wider rows get a whole block, so a 1000- or 11000-class row is spread over 256 threads.
inline constexpr int64_t kWarpRowLimit = 512;

// Calls f(std::integral_constant<int, kGroup>{}) with the row group suited to rows of `cols` values.
template <class F>
void with_row_group(int64_t cols, F&& f) {
  if (cols <= kWarpRowLimit)
    f(std::integral_constant<int, kWarpSize>{});
  else
    f(std::integral_constant<int, kBlock>{});
}

// The group-parallel twin of row_logsumexp (kernels/common/logsumexp.h): m + log Σ exp(x − m) in double,
// m = max(x) skipping NaN, so NaN and +inf reach the result exactly as on the CPU. Only the order of the
// additions differs. Every thread of the group gets the value.
template <int kGroup, class T>
__device__ double group_row_logsumexp(const T* x, int64_t n, int lane) {
  double m = -INFINITY;
  for (int64_t i = lane; i < n; i += kGroup) m = double(x[i]) > m ? double(x[i]) : m;
  m = group_allreduce<kGroup>(m, MaxOp{});
  double s = 0;
  for (int64_t i = lane; i < n; i += kGroup) s += exp(double(x[i]) - m);
  s = group_allreduce<kGroup>(s, SumOp{});
  return m + log(s);
}

}  // namespace scpn::cuda
