// CUDA sparse-channel kernels (contract: kernels/sparse_channel.h): gathers of kept channels and the
// scatters of their gradients. One thread per element of the output; the filter score sum is one block per
// kept filter with a fixed reduction order (deterministic). gpu/sparse_channel compares them with the CPU.
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"
#include "kernels/sparse_channel.h"

namespace scpn::cuda {

namespace {

// The dense element that element e of the compact tensor [outer, kept, inner] stands for: the same
// (o, i), channel kept_index[j].
__device__ inline int64_t dense_offset(const ChannelSelection& s, const int32_t* __restrict__ kept_index, int64_t e) {
  const int64_t i = e % s.inner;
  const int64_t j = (e / s.inner) % s.kept;
  const int64_t o = e / (s.inner * s.kept);
  return (o * s.channels + kept_index[j]) * s.inner + i;
}

template <class T>
__global__ void gather_channels_kernel(ChannelSelection s, const int32_t* __restrict__ kept_index,
                                       const T* __restrict__ dense, T* __restrict__ compact) {
  const int64_t n = s.compact_numel();
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    compact[e] = dense[dense_offset(s, kept_index, e)];
}

// Pass 1 of a scatter: every channel of the dense tensor is scaled (kept ones are overwritten by pass 2).
template <class T>
__global__ void scale_dense_kernel(int64_t n, T scale, T* __restrict__ dense) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    dense[e] = scale == T(0) ? T(0) : dense[e] * scale;  // 0 clears a NaN too, as the CPU's memset
}

template <class T>
__global__ void scatter_kept_kernel(ChannelSelection s, const int32_t* __restrict__ kept_index,
                                    const T* __restrict__ compact, T* __restrict__ dense) {
  const int64_t n = s.compact_numel();
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    dense[dense_offset(s, kept_index, e)] = compact[e];
}

// Block b owns kept filter j = b (grid-stride): copies its gradient row into the dense slot and reduces
// Σ W·g in double over the block (group_allreduce: a fixed order). Launched with exactly kBlock threads.
template <class T>
__global__ void kept_filters_backward_kernel(KeptFilterShape s, const int32_t* __restrict__ kept_index,
                                             const T* __restrict__ g, const T* __restrict__ w,
                                             const T* __restrict__ score, T* __restrict__ grad_w,
                                             T* __restrict__ grad_score) {
  for (int64_t j = blockIdx.x; j < s.kept; j += gridDim.x) {
    const int64_t f = kept_index[j];
    const T* gj = g + j * s.filter_size;
    const T* wf = w + f * s.filter_size;
    double sum = 0;
    for (int64_t i = threadIdx.x; i < s.filter_size; i += kBlock) {
      if (grad_w) grad_w[f * s.filter_size + i] = gj[i];
      sum += double(wf[i]) * double(gj[i]);
    }
    sum = group_allreduce<kBlock>(sum, SumOp{});
    if (threadIdx.x == 0 && grad_score) {
      const T v = score[f];
      grad_score[f] = T((v > T(0)) - (v < T(0))) * T(sum);
    }
  }
}

}  // namespace

void gather_channels(const ExecContext& ctx, DType dtype, const ChannelSelection& s, const int32_t* kept_index,
                     const void* dense, void* compact) {
  switch_float(dtype, "gather_channels", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = s.compact_numel();
    if (n <= 0) return;
    gather_channels_kernel<T><<<grid_for(n), kBlock, 0, stream_of(ctx)>>>(s, kept_index, static_cast<const T*>(dense),
                                                                          static_cast<T*>(compact));
    SCPN_CUDA_LAUNCH_CHECK("gather_channels_kernel");
  });
}

void scatter_channels(const ExecContext& ctx, DType dtype, const ChannelSelection& s, const int32_t* kept_index,
                      const void* compact, double others_scale, void* dense) {
  switch_float(dtype, "scatter_channels", [&](auto zero) {
    using T = decltype(zero);
    const cudaStream_t stream = stream_of(ctx);
    const int64_t n_dense = s.dense_numel();
    if (n_dense <= 0) return;
    if (others_scale != 1.0 && s.kept < s.channels) {
      scale_dense_kernel<T><<<grid_for(n_dense), kBlock, 0, stream>>>(n_dense, T(others_scale), static_cast<T*>(dense));
      SCPN_CUDA_LAUNCH_CHECK("scale_dense_kernel");
    }
    const int64_t n = s.compact_numel();
    if (n <= 0) return;
    scatter_kept_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(s, kept_index, static_cast<const T*>(compact),
                                                               static_cast<T*>(dense));
    SCPN_CUDA_LAUNCH_CHECK("scatter_kept_kernel");
  });
}

void kept_filters_backward(const ExecContext& ctx, DType dtype, const KeptFilterShape& s, const int32_t* kept_index,
                           const void* grad_compact, const void* weight, const void* score, void* grad_weight,
                           void* grad_score) {
  switch_float(dtype, "kept_filters_backward", [&](auto zero) {
    using T = decltype(zero);
    const cudaStream_t stream = stream_of(ctx);
    if (grad_weight && s.filters * s.filter_size > 0)
      SCPN_CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, size_t(s.filters * s.filter_size) * sizeof(T), stream));
    if (grad_score && s.filters > 0)
      SCPN_CUDA_CHECK(cudaMemsetAsync(grad_score, 0, size_t(s.filters) * sizeof(T), stream));
    if (s.kept <= 0 || (!grad_weight && !grad_score)) return;
    const unsigned blocks = unsigned(s.kept < 132 * 64 ? s.kept : 132 * 64);
    kept_filters_backward_kernel<T><<<blocks, kBlock, 0, stream>>>(
        s, kept_index, static_cast<const T*>(grad_compact), static_cast<const T*>(weight),
        static_cast<const T*>(score), static_cast<T*>(grad_weight), static_cast<T*>(grad_score));
    SCPN_CUDA_LAUNCH_CHECK("kept_filters_backward_kernel");
  });
}

}  // namespace scpn::cuda
