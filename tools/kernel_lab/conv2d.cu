// The 3×3 convolution on CUDA, variants 1 and 2 (conv2d.h):
//   1: one thread per output, the definition's loops — every thread fetches its own 3×3×C window from
//      global memory, nine times the input's size in loads;
//   2: a block computes a 16×16 tile of outputs for kFilters filters: per input channel it stages the
//      18×18 input patch (tile + halo) and the kFilters×9 weights in shared memory once, and every thread
//      reuses them for kFilters×9 multiply-adds.
#include "tools/kernel_lab/conv2d.h"
#include "tools/kernel_lab/lab_cuda.h"

namespace lab {

namespace {

constexpr int kTile = 16, kFilters = 8;

__global__ void conv_thread_per_output(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const float* x,
                                       const float* w, float* y) {
  const int64_t total = N * K * H * W;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = o % W, oh = (o / W) % H, k = (o / (W * H)) % K, n = o / (W * H * K);
    float sum = 0;
    for (int64_t c = 0; c < C; ++c)
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) {
          const int64_t ih = oh + r - 1, iw = ow + s - 1;
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
          sum += x[((n * C + c) * H + ih) * W + iw] * w[((k * C + c) * 3 + r) * 3 + s];
        }
    y[o] = sum;
  }
}

// Grid: x = output tiles of the plane, y = groups of kFilters filters, z = images. Block: kTile × kTile.
__global__ void conv_shared_tile(int64_t C, int64_t H, int64_t W, int64_t K, const float* x, const float* w, float* y) {
  __shared__ float patch[kTile + 2][kTile + 2];
  __shared__ float weights[kFilters][9];
  const int64_t tiles_w = (W + kTile - 1) / kTile;
  const int64_t tile_h = blockIdx.x / tiles_w, tile_w = blockIdx.x % tiles_w;
  const int64_t k0 = int64_t(blockIdx.y) * kFilters, n = blockIdx.z;
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTile + tx;
  const int64_t oh = tile_h * kTile + ty, ow = tile_w * kTile + tx;
  float acc[kFilters] = {};
  for (int64_t c = 0; c < C; ++c) {
    const float* plane = x + (n * C + c) * H * W;
    for (int i = tid; i < (kTile + 2) * (kTile + 2); i += kTile * kTile) {
      const int64_t ih = tile_h * kTile - 1 + i / (kTile + 2), iw = tile_w * kTile - 1 + i % (kTile + 2);
      patch[i / (kTile + 2)][i % (kTile + 2)] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? plane[ih * W + iw] : 0.0f;
    }
    if (tid < kFilters * 9) {
      const int64_t k = k0 + tid / 9;
      weights[tid / 9][tid % 9] = k < K ? w[(k * C + c) * 9 + tid % 9] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int f = 0; f < kFilters; ++f)
#pragma unroll
      for (int r = 0; r < 3; ++r)
#pragma unroll
        for (int s = 0; s < 3; ++s) acc[f] += patch[ty + r][tx + s] * weights[f][r * 3 + s];
    __syncthreads();  // the patch and weights are rewritten for the next channel
  }
  if (oh >= H || ow >= W) return;
  for (int f = 0; f < kFilters && k0 + f < K; ++f) y[((n * K + k0 + f) * H + oh) * W + ow] = acc[f];
}

}  // namespace

Timing conv2d_cuda(int variant, const Conv2dProblem& p, std::vector<float>& y, const TimingPolicy* policy) {
  if (const std::string reason = cuda::unavailable(); !reason.empty()) return {0, reason};
  const cuda::Buffer<float> x(p.x), w(p.w);
  cuda::Buffer<float> d_y(size_t(p.output_size()));
  const Timing timing = cuda::run_on_device(
      [&] {
        if (variant == 1) {
          const int64_t blocks = std::min<int64_t>((p.output_size() + 255) / 256, 65535);
          conv_thread_per_output<<<unsigned(blocks), 256>>>(p.N, p.C, p.H, p.W, p.K, x.get(), w.get(), d_y.get());
        } else {
          const dim3 grid(unsigned(((p.H + kTile - 1) / kTile) * ((p.W + kTile - 1) / kTile)),
                          unsigned((p.K + kFilters - 1) / kFilters), unsigned(p.N));
          conv_shared_tile<<<grid, dim3(kTile, kTile)>>>(p.C, p.H, p.W, p.K, x.get(), w.get(), d_y.get());
        }
      },
      policy);
  d_y.copy_to(y);
  return timing;
}

}  // namespace lab
