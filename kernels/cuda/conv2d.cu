// The conv2d bias gradient on CUDA (contract: kernels/conv2d.h); the convolutions themselves run in cuDNN
// (kernels/cudnn/conv2d.cpp). Tested against the CPU kernel, alone and inside a biased conv2d, by
// tests/gpu/test_conv2d_bias.cpp.
#include "kernels/conv2d.h"

#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"

namespace scpn::cuda {
namespace {

// One block per output channel k, reducing its N·P·Q gradient values in double (the CPU adds each image's
// plane in T, then the images in double; double throughout is at least as accurate). The block's
// combining order is fixed, so the result is deterministic without atomics.
template <class T>
__global__ void conv2d_backward_bias_kernel(int64_t N, int64_t K, int64_t PQ, const T* dy, T* db) {
  const int64_t count = N * PQ;
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    double sum = 0;
    for (int64_t j = threadIdx.x; j < count; j += kBlock) {
      const int64_t n = j / PQ, pq = j - n * PQ;
      sum += double(dy[(n * K + k) * PQ + pq]);
    }
    sum = group_allreduce<kBlock>(sum, SumOp{});
    if (threadIdx.x == 0) db[k] = T(sum);
  }
}

}  // namespace

void conv2d_backward_bias(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* dy, void* db) {
  switch_float(t, "conv2d_backward_bias", [&](auto zero) {
    using T = decltype(zero);
    conv2d_backward_bias_kernel<T><<<grid_for(p.K, 1), kBlock, 0, stream_of(ctx)>>>(
        p.N, p.K, p.P() * p.Q(), static_cast<const T*>(dy), static_cast<T*>(db));
    SCPN_CUDA_LAUNCH_CHECK("conv2d_backward_bias_kernel");
  });
}

}  // namespace scpn::cuda
