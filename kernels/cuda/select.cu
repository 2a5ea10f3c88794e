// CUDA k-th smallest magnitudes and magnitude masks (contract: kernels/select.h). One radix sort of |S|
// serves every requested rank, then each rank is a gather. Results are exact elements of |S|, so they equal
// the CPU's bit for bit; gpu/select checks that (ties, NaN, unordered and repeated ranks).
#include <cub/device/device_radix_sort.cuh>

#include <cstdint>
#include <limits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/scratch.h"
#include "kernels/select.h"

namespace scpn::cuda {

namespace {

// |x| by clearing the sign bit. Written on the bits, not with fabs, so that a NaN also comes out with its
// sign cleared: the radix sort orders positive NaNs after +inf, which is the contract's "NaN ranks above
// every number", while a negative NaN would sort below -0. It also maps -0 to +0.
__device__ inline float magnitude_bits(float x) { return __uint_as_float(__float_as_uint(x) & 0x7fffffffu); }
__device__ inline double magnitude_bits(double x) {
  return __longlong_as_double(__double_as_longlong(x) & 0x7fffffffffffffffll);
}

template <class T>
__global__ void abs_copy_kernel(int64_t n, const T* __restrict__ scores, T* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = magnitude_bits(scores[i]);
}

// out[j] = sorted[ks[j] − 1]; a NaN there (a rank past the numbers) becomes the canonical quiet NaN, as on
// the CPU, whatever payload the score carried.
template <class T>
__global__ void gather_ranks_kernel(int64_t count, const T* __restrict__ sorted, const int64_t* __restrict__ ks,
                                    T* __restrict__ out) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < count; j += int64_t(gridDim.x) * blockDim.x) {
    const T v = sorted[ks[j] - 1];
    out[j] = isnan(v) ? std::numeric_limits<T>::quiet_NaN() : v;
  }
}

template <class T>
__global__ void magnitude_mask_kernel(int64_t n, const T* __restrict__ scores, T tau, T* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = fabs(scores[i]) >= tau ? T(1) : T(0);  // NaN compares false: 0
}

}  // namespace

void abs_kth_values(const ExecContext& ctx, DType dtype, const AbsKthParams& p, const void* scores,
                    const int64_t* ks, void* workspace, void* out) {
  switch_float(dtype, "abs_kth_values", [&](auto zero) {
    using T = decltype(zero);
    if (p.n <= 0 || p.count <= 0) return;
    const cudaStream_t stream = stream_of(ctx);

    // The ranks travel first: a pageable source is staged by the driver before the call returns, so the
    // caller's host array may go right after.
    Scratch ranks(ctx, size_t(p.count) * sizeof(int64_t));
    SCPN_CUDA_CHECK(
        cudaMemcpyAsync(ranks.get(), ks, size_t(p.count) * sizeof(int64_t), cudaMemcpyHostToDevice, stream));

    // |S| into the workspace, then one ascending sort. The double-buffer form sorts in place between the
    // workspace and one scratch buffer of n (the other form would need a second internal copy); the
    // sorted keys end in whichever buffer Current() names.
    T* magnitudes = static_cast<T*>(workspace);
    abs_copy_kernel<T><<<grid_for(p.n), kBlock, 0, stream>>>(p.n, static_cast<const T*>(scores), magnitudes);
    SCPN_CUDA_LAUNCH_CHECK("abs_copy_kernel");

    Scratch alternate(ctx, size_t(p.n) * sizeof(T));
    cub::DoubleBuffer<T> keys(magnitudes, alternate.as<T>());
    size_t temp_bytes = 0;
    SCPN_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temp_bytes, keys, p.n, 0, int(sizeof(T) * 8), stream));
    Scratch temp(ctx, temp_bytes);
    SCPN_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp.get(), temp_bytes, keys, p.n, 0, int(sizeof(T) * 8), stream));

    gather_ranks_kernel<T><<<grid_for(p.count), kBlock, 0, stream>>>(p.count, keys.Current(), ranks.as<int64_t>(),
                                                                     static_cast<T*>(out));
    SCPN_CUDA_LAUNCH_CHECK("gather_ranks_kernel");
  });
}

void magnitude_mask(const ExecContext& ctx, DType dtype, int64_t n, const void* scores, double threshold, void* out) {
  switch_float(dtype, "magnitude_mask", [&](auto zero) {
    using T = decltype(zero);
    if (n <= 0) return;
    // The threshold is compared after conversion to the dtype, exactly as the CPU does.
    magnitude_mask_kernel<T><<<grid_for(n), kBlock, 0, stream_of(ctx)>>>(n, static_cast<const T*>(scores), T(threshold),
                                                                          static_cast<T*>(out));
    SCPN_CUDA_LAUNCH_CHECK("magnitude_mask_kernel");
  });
}

}  // namespace scpn::cuda
