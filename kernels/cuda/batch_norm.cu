// Our batch norm on CUDA (contract: kernels/batch_norm.h), NCHW: statistics and backward sums in double,
// deterministic (fixed reduction trees, no atomics), with kernels/cpu/batch_norm.cpp's formulas.
#include "kernels/batch_norm.h"

#include <algorithm>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"
#include "kernels/cuda/scratch.h"

namespace scpn::cuda {
namespace {

// Reductions (training statistics, backward sums) split each channel into chunks of kChunk values in
// (image, pixel) order; one block reduces one chunk to partial sums in double, and a per-channel
// "finalize" block adds the partials in a fixed tree.
constexpr int kItems = 8;                             // values per thread in a reduction chunk
constexpr int64_t kChunk = int64_t(kBlock) * kItems;  // values of one channel per reduction block

// Where channel c's values lie: m = n·hw values, n rows of hw contiguous values a channel stride apart;
// value j in [0, m), j = image·hw + pixel, is at (image·C + c)·hw + pixel.
struct ChannelLayout {
  int64_t n = 0, C = 0, hw = 1, m = 0;
  int64_t chunks = 0;              // reduction chunks per channel
  int64_t step_n = 0, step_i = 0;  // kBlock = step_n·hw + step_i: how (image, pixel) moves when j += kBlock
};

ChannelLayout layout_of(const BatchNormShape& s) {
  ChannelLayout g;
  g.n = s.n;
  g.C = s.c;
  g.hw = s.hw;
  g.m = s.per_channel();
  g.chunks = (g.m + kChunk - 1) / kChunk;
  // hw = 0 (an empty image) leaves m = 0: no chunk is ever walked.
  g.step_n = s.hw > 0 ? kBlock / s.hw : 0;
  g.step_i = s.hw > 0 ? kBlock % s.hw : 0;
  return g;
}

__device__ int64_t chunk_count(const ChannelLayout& g, int64_t b) {
  const int64_t rest = g.m - b * kChunk;
  return rest < kChunk ? rest : kChunk;
}

// Calls f(s, offset) for this thread's values of chunk b of channel c: j = b·kChunk + threadIdx.x + s·kBlock
// for s < kItems and j < m. The valid s form a prefix, so a caller may count them.
template <class F>
__device__ void for_each_in_chunk(const ChannelLayout& g, int64_t c, int64_t b, F&& f) {
  const int64_t j0 = b * kChunk + threadIdx.x;
  int64_t image = j0 / g.hw, pixel = j0 - image * g.hw;
#pragma unroll
  for (int s = 0; s < kItems; ++s) {
    if (j0 + int64_t(s) * kBlock < g.m) f(s, (image * g.C + c) * g.hw + pixel);
    // pixel + step_i < 2·hw, so one carry keeps (image, pixel) exact.
    image += g.step_n;
    pixel += g.step_i;
    if (pixel >= g.hw) {
      pixel -= g.hw;
      ++image;
    }
  }
}

// Blocks for the per-chunk and per-channel reductions (grid-stride over units, a whole block per unit).
unsigned unit_grid(int64_t units) { return grid_for(units, 1); }

// The elementwise passes (y, grad_x) give each thread one column of the [C·hw] image plane (so one channel,
// whose coefficients it loads once) and walk it down the images: coalesced for every hw, BatchNorm1d's
// hw = 1 included, and no per-element index division.
// Blocks for the elementwise passes: x over the plane's columns, y over the images, about 2048 blocks in all.
dim3 plane_grid(int64_t n, int64_t plane) {
  const int64_t gx = std::min<int64_t>((plane + kBlock - 1) / kBlock, 4096);
  const int64_t gy = std::clamp<int64_t>((2048 + gx - 1) / gx, 1, std::min<int64_t>(n, 65535));
  return dim3(unsigned(gx), unsigned(gy));
}

// ---- training statistics -------------------------------------------------------------------------------

// The statistics keep the CPU's two-pass accuracy without a second read of x: a block holds its chunk in
// registers, sums it, then sums squared deviations from the chunk mean, and the finalize combines chunks
// exactly:  Σ(x − mean)² = Σ_chunks [ M2_chunk + count_chunk · (mean_chunk − mean)² ].
// Per chunk u = c·chunks + b: the sum of its values and the sum of squared deviations from its own mean.
template <class T>
__global__ void batch_norm_chunk_stats_kernel(ChannelLayout g, const T* __restrict__ x, double* partial_sum,
                                              double* partial_m2) {
  const int64_t units = g.C * g.chunks;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t c = u / g.chunks, b = u - c * g.chunks;
    double v[kItems];
    int valid = 0;
    double sum = 0;
    for_each_in_chunk(g, c, b, [&](int s, int64_t offset) {
      v[s] = double(x[offset]);
      sum += v[s];
      valid = s + 1;
    });
    sum = group_allreduce<kBlock>(sum, SumOp{});
    const double chunk_mean = sum / double(chunk_count(g, b));
    double m2 = 0;
#pragma unroll
    for (int s = 0; s < kItems; ++s) {
      if (s < valid) {
        const double d = v[s] - chunk_mean;
        m2 += d * d;
      }
    }
    m2 = group_allreduce<kBlock>(m2, SumOp{});
    if (threadIdx.x == 0) {
      partial_sum[u] = sum;
      partial_m2[u] = m2;
    }
  }
}

// Per channel: mean, biased variance and invstd from the chunk partials; writes the saved statistics, moves
// the running ones, and leaves y's coefficients (mean, scale, shift) in coef[0..C), [C..2C), [2C..3C).
template <class T>
__global__ void batch_norm_train_finalize_kernel(ChannelLayout g, double eps, double momentum,
                                                 const double* partial_sum, const double* partial_m2, const T* weight,
                                                 const T* bias, T* running_mean, T* running_var, T* save_mean,
                                                 T* save_invstd, double* coef) {
  for (int64_t c = blockIdx.x; c < g.C; c += gridDim.x) {
    const double* sums = partial_sum + c * g.chunks;
    const double* m2s = partial_m2 + c * g.chunks;
    double sum = 0;
    for (int64_t b = threadIdx.x; b < g.chunks; b += kBlock) sum += sums[b];
    sum = group_allreduce<kBlock>(sum, SumOp{});
    const double mean = sum / double(g.m);
    double squares = 0;
    for (int64_t b = threadIdx.x; b < g.chunks; b += kBlock) {
      const double count = double(chunk_count(g, b));
      const double d = sums[b] / count - mean;
      squares += m2s[b] + count * d * d;
    }
    squares = group_allreduce<kBlock>(squares, SumOp{});
    if (threadIdx.x == 0) {
      const double var = squares / double(g.m);
      const double invstd = 1.0 / sqrt(var + eps);
      save_mean[c] = T(mean);
      save_invstd[c] = T(invstd);
      if (running_mean && running_var) {
        // PyTorch's convention, as on the CPU: the running variance tracks the unbiased estimate.
        const double unbiased = var * double(g.m) / double(g.m - 1);
        running_mean[c] = T((1.0 - momentum) * double(running_mean[c]) + momentum * mean);
        running_var[c] = T((1.0 - momentum) * double(running_var[c]) + momentum * unbiased);
      }
      coef[c] = mean;
      coef[g.C + c] = invstd * (weight ? double(weight[c]) : 1.0);
      coef[2 * g.C + c] = bias ? double(bias[c]) : 0.0;
    }
  }
}

// ---- eval coefficients ---------------------------------------------------------------------------------

// Per channel, from the running statistics, with the CPU's expressions: saved mean/invstd (when asked for)
// and y's coefficients; the eval scale is weight / sqrt(var + eps), as the CPU computes it.
template <class T>
__global__ void batch_norm_eval_coefficients_kernel(int64_t C, double eps, const T* weight, const T* bias,
                                                    const T* running_mean, const T* running_var, T* save_mean,
                                                    T* save_invstd, double* coef) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    const double var = double(running_var[c]);
    if (save_mean) save_mean[c] = running_mean[c];
    if (save_invstd) save_invstd[c] = T(1.0 / sqrt(var + eps));
    coef[c] = double(running_mean[c]);
    coef[C + c] = (weight ? double(weight[c]) : 1.0) / sqrt(var + eps);
    coef[2 * C + c] = bias ? double(bias[c]) : 0.0;
  }
}

// y = (x − mean) · scale + shift with per-channel coefficients coef = [mean | scale | shift].
template <class T>
__global__ void batch_norm_apply_kernel(int64_t n, int64_t C, int64_t hw, const T* __restrict__ x,
                                        const double* __restrict__ coef, T* __restrict__ y) {
  const int64_t plane = C * hw;
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < plane;
       col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = col / hw;
    const double mean = coef[c], scale = coef[C + c], shift = coef[2 * C + c];
#pragma unroll 4
    for (int64_t image = blockIdx.y; image < n; image += gridDim.y) {
      const int64_t offset = image * plane + col;
      y[offset] = T((double(x[offset]) - mean) * scale + shift);
    }
  }
}

// ---- backward ------------------------------------------------------------------------------------------

// Per chunk u = c·chunks + b: Σg and Σg·(x − mean) over its values, mean being the saved one.
template <class T>
__global__ void batch_norm_backward_chunk_sums_kernel(ChannelLayout g, const T* __restrict__ x,
                                                      const T* __restrict__ grad_y, const T* __restrict__ mean,
                                                      double* partial_g, double* partial_gx) {
  const int64_t units = g.C * g.chunks;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t c = u / g.chunks, b = u - c * g.chunks;
    const double mean_c = double(mean[c]);
    double sum_g = 0, sum_g_xmu = 0;
    for_each_in_chunk(g, c, b, [&](int, int64_t offset) {
      const double gv = double(grad_y[offset]);
      sum_g += gv;
      sum_g_xmu += gv * (double(x[offset]) - mean_c);
    });
    sum_g = group_allreduce<kBlock>(sum_g, SumOp{});
    sum_g_xmu = group_allreduce<kBlock>(sum_g_xmu, SumOp{});
    if (threadIdx.x == 0) {
      partial_g[u] = sum_g;
      partial_gx[u] = sum_g_xmu;
    }
  }
}

// Per channel: adds the chunk sums (when there are any), writes grad_bias / grad_weight (when non-null) and
// leaves grad_x's coefficients [mean | g_mean | k | scale] in coef, with the CPU's expressions:
//   grad_x = (g − g_mean − (x − mean)·k) · scale.
template <class T>
__global__ void batch_norm_backward_finalize_kernel(ChannelLayout g, bool training, const double* partial_g,
                                                    const double* partial_gx, const T* weight, const T* mean,
                                                    const T* invstd, T* grad_weight, T* grad_bias, double* coef) {
  for (int64_t c = blockIdx.x; c < g.C; c += gridDim.x) {
    double sum_g = 0, sum_g_xmu = 0;
    if (partial_g) {
      for (int64_t b = threadIdx.x; b < g.chunks; b += kBlock) {
        sum_g += partial_g[c * g.chunks + b];
        sum_g_xmu += partial_gx[c * g.chunks + b];
      }
      sum_g = group_allreduce<kBlock>(sum_g, SumOp{});
      sum_g_xmu = group_allreduce<kBlock>(sum_g_xmu, SumOp{});
    }
    if (threadIdx.x == 0) {
      const double invstd_c = double(invstd[c]);
      if (grad_bias) grad_bias[c] = T(sum_g);
      if (grad_weight) grad_weight[c] = T(sum_g_xmu * invstd_c);  // Σ g·xhat
      coef[c] = double(mean[c]);
      coef[g.C + c] = training ? sum_g / double(g.m) : 0.0;
      coef[2 * g.C + c] = training ? sum_g_xmu * invstd_c * invstd_c / double(g.m) : 0.0;
      coef[3 * g.C + c] = invstd_c * (weight ? double(weight[c]) : 1.0);
    }
  }
}

template <class T>
__global__ void batch_norm_backward_data_kernel(int64_t n, int64_t C, int64_t hw, const T* __restrict__ x,
                                                const T* __restrict__ grad_y, const double* __restrict__ coef,
                                                T* __restrict__ grad_x) {
  const int64_t plane = C * hw;
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < plane;
       col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = col / hw;
    const double mean = coef[c], g_mean = coef[C + c], k = coef[2 * C + c], scale = coef[3 * C + c];
#pragma unroll 4
    for (int64_t image = blockIdx.y; image < n; image += gridDim.y) {
      const int64_t offset = image * plane + col;
      grad_x[offset] = T((double(grad_y[offset]) - g_mean - (double(x[offset]) - mean) * k) * scale);
    }
  }
}

}  // namespace

void batch_norm_forward_train(const ExecContext& ctx, DType t, const BatchNormShape& s, double eps, double momentum,
                              const void* x, const void* weight, const void* bias, void* running_mean,
                              void* running_var, void* y, void* save_mean, void* save_invstd) {
  switch_float(t, "batch_norm_forward_train", [&](auto zero) {
    using T = decltype(zero);
    if (s.c == 0) return;
    const ChannelLayout g = layout_of(s);
    const cudaStream_t stream = stream_of(ctx);
    const int64_t units = g.C * g.chunks;
    Scratch partials(ctx, sizeof(double) * size_t(2 * units));
    Scratch coef(ctx, sizeof(double) * size_t(3 * g.C));
    double* partial_sum = partials.as<double>();
    double* partial_m2 = partial_sum ? partial_sum + units : nullptr;
    if (units > 0) {
      batch_norm_chunk_stats_kernel<T><<<unit_grid(units), kBlock, 0, stream>>>(g, static_cast<const T*>(x),
                                                                                partial_sum, partial_m2);
      SCPN_CUDA_LAUNCH_CHECK("batch_norm_chunk_stats_kernel");
    }
    const bool running = running_mean && running_var;
    batch_norm_train_finalize_kernel<T><<<unit_grid(g.C), kBlock, 0, stream>>>(
        g, eps, momentum, partial_sum, partial_m2, static_cast<const T*>(weight), static_cast<const T*>(bias),
        running ? static_cast<T*>(running_mean) : nullptr, running ? static_cast<T*>(running_var) : nullptr,
        static_cast<T*>(save_mean), static_cast<T*>(save_invstd), coef.as<double>());
    SCPN_CUDA_LAUNCH_CHECK("batch_norm_train_finalize_kernel");
    if (g.m > 0) {
      batch_norm_apply_kernel<T><<<plane_grid(g.n, g.C * g.hw), kBlock, 0, stream>>>(
          g.n, g.C, g.hw, static_cast<const T*>(x), coef.as<double>(), static_cast<T*>(y));
      SCPN_CUDA_LAUNCH_CHECK("batch_norm_apply_kernel");
    }
  });
}

void batch_norm_forward_eval(const ExecContext& ctx, DType t, const BatchNormShape& s, double eps, const void* x,
                             const void* weight, const void* bias, const void* running_mean,
                             const void* running_var, void* y, void* save_mean, void* save_invstd) {
  switch_float(t, "batch_norm_forward_eval", [&](auto zero) {
    using T = decltype(zero);
    if (s.c == 0) return;
    const cudaStream_t stream = stream_of(ctx);
    Scratch coef(ctx, sizeof(double) * size_t(3 * s.c));
    batch_norm_eval_coefficients_kernel<T><<<grid_for(s.c), kBlock, 0, stream>>>(
        s.c, eps, static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<const T*>(running_mean),
        static_cast<const T*>(running_var), static_cast<T*>(save_mean), static_cast<T*>(save_invstd),
        coef.as<double>());
    SCPN_CUDA_LAUNCH_CHECK("batch_norm_eval_coefficients_kernel");
    if (s.per_channel() > 0) {
      batch_norm_apply_kernel<T><<<plane_grid(s.n, s.c * s.hw), kBlock, 0, stream>>>(
          s.n, s.c, s.hw, static_cast<const T*>(x), coef.as<double>(), static_cast<T*>(y));
      SCPN_CUDA_LAUNCH_CHECK("batch_norm_apply_kernel");
    }
  });
}

void batch_norm_backward(const ExecContext& ctx, DType t, const BatchNormShape& s, bool training, double, const void* x,
                         const void* grad_y, const void* weight, const void* mean, const void* invstd, void* grad_x,
                         void* grad_weight, void* grad_bias) {
  switch_float(t, "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    if (s.c == 0 || (!grad_x && !grad_weight && !grad_bias)) return;
    const ChannelLayout g = layout_of(s);
    const cudaStream_t stream = stream_of(ctx);
    // Eval-mode grad_x needs no sums: skip that pass when only grad_x is wanted.
    const bool need_sums = training || grad_weight || grad_bias;
    const int64_t units = need_sums ? g.C * g.chunks : 0;
    Scratch partials(ctx, sizeof(double) * size_t(2 * units));
    Scratch coef(ctx, sizeof(double) * size_t(4 * g.C));
    double* partial_g = partials.as<double>();
    double* partial_gx = partial_g ? partial_g + units : nullptr;
    if (units > 0) {
      batch_norm_backward_chunk_sums_kernel<T><<<unit_grid(units), kBlock, 0, stream>>>(
          g, static_cast<const T*>(x), static_cast<const T*>(grad_y), static_cast<const T*>(mean), partial_g,
          partial_gx);
      SCPN_CUDA_LAUNCH_CHECK("batch_norm_backward_chunk_sums_kernel");
    }
    // partial_g is null when there are no sums (eval grad_x only, or an empty batch): they count as zero.
    batch_norm_backward_finalize_kernel<T><<<unit_grid(g.C), kBlock, 0, stream>>>(
        g, training, partial_g, partial_gx, static_cast<const T*>(weight), static_cast<const T*>(mean),
        static_cast<const T*>(invstd), static_cast<T*>(grad_weight), static_cast<T*>(grad_bias), coef.as<double>());
    SCPN_CUDA_LAUNCH_CHECK("batch_norm_backward_finalize_kernel");
    if (grad_x && g.m > 0) {
      batch_norm_backward_data_kernel<T><<<plane_grid(g.n, g.C * g.hw), kBlock, 0, stream>>>(
          g.n, g.C, g.hw, static_cast<const T*>(x), static_cast<const T*>(grad_y), coef.as<double>(),
          static_cast<T*>(grad_x));
      SCPN_CUDA_LAUNCH_CHECK("batch_norm_backward_data_kernel");
    }
  });
}

}  // namespace scpn::cuda
