// CUDA masked-weight kernels (contract: kernels/masked_weight.h): W_eff = M ⊙ W and the straight-through
// gradients. The per-filter score gradient is a sum in double by one block per filter with a fixed
// reduction tree, so it is deterministic. gpu/masked_weight compares it with the CPU.
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/masked_weight.h"

namespace scpn::cuda {

namespace {

// sign(v) as the CPU writes it: −1, 0 or 1 (0 for NaN).
template <class T>
__device__ inline T score_sign(T v) {
  return T((v > T(0)) - (v < T(0)));
}

template <class T>
__global__ void masked_weight_forward_kernel(MaskedWeightParams p, const T* __restrict__ w, const T* __restrict__ mask,
                                             T* __restrict__ w_eff) {
  const int64_t n = p.filters * p.filter_size;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    w_eff[i] = (p.per_filter ? mask[i / p.filter_size] : mask[i]) * w[i];
}

// Element-wise backward: grad_w for either granularity, and grad_score for weight granularity.
template <class T>
__global__ void masked_weight_backward_elementwise_kernel(MaskedWeightParams p, const T* __restrict__ g,
                                                          const T* __restrict__ w, const T* __restrict__ score,
                                                          const T* __restrict__ mask, T* __restrict__ grad_w,
                                                          T* __restrict__ grad_score) {
  const int64_t n = p.filters * p.filter_size;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (grad_w) grad_w[i] = (p.per_filter ? mask[i / p.filter_size] : mask[i]) * g[i];
    if (grad_score && !p.per_filter) grad_score[i] = score_sign(score[i]) * w[i] * g[i];
  }
}

// Channel granularity with a score gradient: block f owns filter f (grid-stride over filters), writes its
// grad_w elements and reduces Σⱼ w·g in double: each thread sums a fixed stride of the filter, then a
// fixed tree over the block's threads. Launched with exactly kBlock threads.
template <class T>
__global__ void masked_weight_backward_per_filter_kernel(MaskedWeightParams p, const T* __restrict__ g,
                                                         const T* __restrict__ w, const T* __restrict__ score,
                                                         const T* __restrict__ mask, T* __restrict__ grad_w,
                                                         T* __restrict__ grad_score) {
  __shared__ double partial[kBlock];
  for (int64_t f = blockIdx.x; f < p.filters; f += gridDim.x) {
    const int64_t base = f * p.filter_size;
    const T m = mask[f];
    double sum = 0;
    for (int64_t j = threadIdx.x; j < p.filter_size; j += kBlock) {
      const int64_t i = base + j;
      if (grad_w) grad_w[i] = m * g[i];
      sum += double(w[i]) * double(g[i]);
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half /= 2) {
      if (int(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) grad_score[f] = score_sign(score[f]) * T(partial[0]);
    __syncthreads();  // partial[] is reused by this block's next filter
  }
}

}  // namespace

void masked_weight_forward(const ExecContext& ctx, DType dtype, const MaskedWeightParams& p, const void* w,
                           const void* mask, void* w_eff) {
  switch_float(dtype, "masked_weight_forward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = p.filters * p.filter_size;
    if (n <= 0) return;
    masked_weight_forward_kernel<T><<<grid_for(n), kBlock, 0, stream_of(ctx)>>>(
        p, static_cast<const T*>(w), static_cast<const T*>(mask), static_cast<T*>(w_eff));
    SCPN_CUDA_LAUNCH_CHECK("masked_weight_forward_kernel");
  });
}

void masked_weight_backward(const ExecContext& ctx, DType dtype, const MaskedWeightParams& p, const void* grad_eff,
                            const void* w, const void* score, const void* mask, void* grad_w, void* grad_score) {
  switch_float(dtype, "masked_weight_backward", [&](auto zero) {
    using T = decltype(zero);
    const cudaStream_t stream = stream_of(ctx);
    const T* g = static_cast<const T*>(grad_eff);
    const T* ws = static_cast<const T*>(w);
    const T* s = static_cast<const T*>(score);
    const T* m = static_cast<const T*>(mask);
    T* gw = static_cast<T*>(grad_w);
    T* gs = static_cast<T*>(grad_score);
    if (p.filters <= 0) return;
    if (p.per_filter && gs) {
      // One block per filter; filter_size may be 0, and then every grad_score[f] is sign·0 as on the CPU.
      const unsigned blocks = unsigned(p.filters < 132 * 64 ? p.filters : 132 * 64);
      masked_weight_backward_per_filter_kernel<T><<<blocks, kBlock, 0, stream>>>(p, g, ws, s, m, gw, gs);
      SCPN_CUDA_LAUNCH_CHECK("masked_weight_backward_per_filter_kernel");
      return;
    }
    const int64_t n = p.filters * p.filter_size;
    if (n <= 0 || (!gw && !gs)) return;
    masked_weight_backward_elementwise_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(p, g, ws, s, m, gw, gs);
    SCPN_CUDA_LAUNCH_CHECK("masked_weight_backward_elementwise_kernel");
  });
}

}  // namespace scpn::cuda
