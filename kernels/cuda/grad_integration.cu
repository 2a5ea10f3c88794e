// CUDA gradient integration (contract: kernels/grad_integration.h) and the sum-of-squares and scale kernels
// behind the global-norm clip.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/common/grad_integration_rule.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/multi_tensor.h"
#include "kernels/cuda/scratch.h"
#include "kernels/grad_integration.h"

namespace scpn::cuda {

namespace {

// The chunk of the contract: partial sums cover fixed 4096-element pieces of a row (as on the CPU).
constexpr int64_t kChunk = 4096;
// Elements per block work item of the element-wise scale.
constexpr int64_t kScaleChunk = 16384;
constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = kBlock / kWarp;

// ---- integration ----------------------------------------------------------------------------------------

// The contract's two-pass Gram-matrix method, all on the device (no host synchronisation), for every tensor
// of the call at once:
//   1. gram:     one block per fixed 4096-element chunk of a row writes the chunk's Gram partial sums;
//   2. rows:     one thread per row adds its chunks' partials in chunk order and applies the projection rule
//                (kernels/common/grad_integration_rule.h, the CPU's own code) to get A and the cosine terms;
//   3. tensors:  one thread per tensor adds its rows' terms in row order and computes the task weights;
//   4. combine:  one block per chunk writes out = Σₖ βₖ·gₖ with β from the row's A and the weights.
// Every sum has a fixed order (partials within a chunk use a fixed warp tree), so results are deterministic
// and independent of the grid size.

template <class T>
struct IntegrationDesc {
  int64_t rows, row_len, chunks_per_row;
  const T* grads[kMaxIntegrationTasks];
  int32_t order[kMaxIntegrationTasks];
  T* out;  // may be one of grads: no __restrict__ anywhere on these
};

// Where chunk c of the whole call lies: its tensor, its row (within the tensor and in the whole call) and
// its element range [begin, end) in the tensor's buffers.
struct ChunkPlace {
  int64_t tensor, global_row, begin, end;
};

template <class T>
__device__ inline ChunkPlace place_chunk(const IntegrationDesc<T>* descs, const int64_t* chunk_begin,
                                         const int64_t* row_begin, int64_t count, int64_t c) {
  const int64_t t = owner_of(chunk_begin, count, c);
  const IntegrationDesc<T>& d = descs[t];
  const int64_t local = c - chunk_begin[t];
  const int64_t r = local / d.chunks_per_row, q = local % d.chunks_per_row;
  const int64_t row_end = (q + 1) * kChunk < d.row_len ? (q + 1) * kChunk : d.row_len;
  return {t, row_begin[t] + r, r * d.row_len + q * kChunk, r * d.row_len + row_end};
}

// Pass 1. For chunk c, partial[c·K² + a·K + b] = Σₑ gₐ[e]·g_b[e] over the chunk, for a ≤ b (the lower
// triangle is never read). Warp w takes the pairs numbered w, w + 8, …; its lanes take strided elements
// and a fixed shuffle tree adds them. Every pair re-reads its two slices, which the L1/L2 caches serve:
// simple, any K, and no register array per pair.
template <class T>
__global__ void gram_chunks_kernel(const IntegrationDesc<T>* descs, const int64_t* chunk_begin,
                                   const int64_t* row_begin, int64_t count, int64_t chunks, int K, double* partial) {
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  const int64_t KK = int64_t(K) * K;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const ChunkPlace at = place_chunk(descs, chunk_begin, row_begin, count, c);
    const IntegrationDesc<T>& d = descs[at.tensor];
    int pair = 0;
    for (int a = 0; a < K; ++a) {
      for (int b = a; b < K; ++b, ++pair) {
        if (pair % kWarpsPerBlock != warp) continue;
        const T* ga = d.grads[a];
        const T* gb = d.grads[b];
        double s = 0;
        for (int64_t e = at.begin + lane; e < at.end; e += kWarp) s += double(ga[e]) * double(gb[e]);
        for (int offset = kWarp / 2; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
        if (lane == 0) partial[c * KK + a * K + b] = s;
      }
    }
  }
}

// Per row (one thread each): the Gram matrix from the chunk partials in chunk order, the projection
// coefficients A, the row's cosine terms [⟨hᵢ,gᵢ⟩ | ‖hᵢ‖² | ‖gᵢ‖²] and how many tasks it projected.
template <class T>
__global__ void row_rule_kernel(const IntegrationDesc<T>* descs, const int64_t* chunk_begin, const int64_t* row_begin,
                                int64_t count, int64_t total_rows, int K, ConflictSemantics semantics,
                                const double* partial, double* gram, double* coeff, double* row_terms,
                                int64_t* row_projected) {
  const int64_t KK = int64_t(K) * K;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < total_rows; g += stride) {
    const int64_t t = owner_of(row_begin, count, g);
    const IntegrationDesc<T>& d = descs[t];
    const int64_t first_chunk = chunk_begin[t] + (g - row_begin[t]) * d.chunks_per_row;
    double* G = gram + g * KK;
    for (int64_t e = 0; e < KK; ++e) G[e] = 0.0;
    for (int64_t q = 0; q < d.chunks_per_row; ++q) {
      const double* p = partial + (first_chunk + q) * KK;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b) G[a * K + b] += p[a * K + b];
    }
    for (int a = 0; a < K; ++a)
      for (int b = a + 1; b < K; ++b) G[b * K + a] = G[a * K + b];
    double* A = coeff + g * KK;
    row_projected[g] = integration_row_coefficients(semantics, K, d.order, G, A);
    double* terms = row_terms + g * 3 * K;
    integration_row_cosine_terms(K, G, A, terms, terms + K, terms + 2 * K);
  }
}

// Per tensor (one thread each): the rows' cosine terms added in row order, the task weights, and the
// projected-row count.
template <class T>
__global__ void tensor_weights_kernel(const IntegrationDesc<T>* descs, const int64_t* row_begin, int64_t count, int K,
                                      TaskWeighting weighting, double gamma, const double* row_terms,
                                      const int64_t* row_projected, double* sums, double* weights,
                                      int64_t* projected_rows) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < count; t += int64_t(gridDim.x) * blockDim.x) {
    double* s = sums + t * 3 * K;  // [Σ⟨hᵢ,gᵢ⟩ | Σ‖hᵢ‖² | Σ‖gᵢ‖²]
    for (int e = 0; e < 3 * K; ++e) s[e] = 0.0;
    int64_t projected = 0;
    for (int64_t g = row_begin[t]; g < row_begin[t] + descs[t].rows; ++g) {
      const double* terms = row_terms + g * 3 * K;
      for (int e = 0; e < 3 * K; ++e) s[e] += terms[e];
      projected += row_projected[g];
    }
    integration_task_weights(weighting, gamma, K, s, s + K, s + 2 * K, weights + t * K);
    if (projected_rows) projected_rows[t] = projected;
  }
}

// Pass 2. For chunk c: β of its row (thread 0, into shared memory), then out[e] = Σₖ βₖ·gₖ[e] in double.
// Each thread reads every gradient's element e before it writes out[e], so out may alias a gradient.
template <class T>
__global__ void combine_chunks_kernel(const IntegrationDesc<T>* descs, const int64_t* chunk_begin,
                                      const int64_t* row_begin, int64_t count, int64_t chunks, int K,
                                      const double* coeff, const double* weights) {
  __shared__ double beta[kMaxIntegrationTasks];
  const int64_t KK = int64_t(K) * K;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const ChunkPlace at = place_chunk(descs, chunk_begin, row_begin, count, c);
    const IntegrationDesc<T>& d = descs[at.tensor];
    if (threadIdx.x == 0) integration_row_beta(K, weights + at.tensor * K, coeff + at.global_row * KK, beta);
    __syncthreads();
    for (int64_t e = at.begin + threadIdx.x; e < at.end; e += blockDim.x) {
      double v = 0;
      for (int k = 0; k < K; ++k) v += beta[k] * double(d.grads[k][e]);
      d.out[e] = T(v);
    }
    __syncthreads();  // beta is rewritten for this block's next chunk
  }
}

// ---- the global-norm clip ---------------------------------------------------------------------------------

// One block per 4096-element chunk of a buffer: strided per-thread sums, then a fixed tree.
template <class T>
__global__ void sum_squares_chunks_kernel(const T* const* buffers, const int64_t* sizes, const int64_t* chunk_begin,
                                          int64_t count, int64_t chunks, double* partial) {
  __shared__ double tree[kBlock];
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t t = owner_of(chunk_begin, count, c);
    const T* x = buffers[t];
    const int64_t begin = (c - chunk_begin[t]) * kChunk;
    const int64_t end = begin + kChunk < sizes[t] ? begin + kChunk : sizes[t];
    double s = 0;
    for (int64_t e = begin + threadIdx.x; e < end; e += kBlock) s += double(x[e]) * double(x[e]);
    tree[threadIdx.x] = s;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half /= 2) {
      if (int(threadIdx.x) < half) tree[threadIdx.x] += tree[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) partial[c] = tree[0];
    __syncthreads();  // tree is reused for the next chunk
  }
}

// One thread per buffer: its chunk partials added in chunk order, as the CPU does.
__global__ void sum_squares_totals_kernel(const int64_t* chunk_begin, int64_t count, const double* partial,
                                          double* sum_squares) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < count; t += int64_t(gridDim.x) * blockDim.x) {
    double total = 0;
    for (int64_t c = chunk_begin[t]; c < chunk_begin[t + 1]; ++c) total += partial[c];
    sum_squares[t] = total;
  }
}

template <class T>
__global__ void scale_chunks_kernel(T* const* buffers, const int64_t* sizes, const int64_t* chunk_begin, int64_t count,
                                    int64_t chunks, T factor) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t t = owner_of(chunk_begin, count, c);
    T* x = buffers[t];
    const int64_t begin = (c - chunk_begin[t]) * kScaleChunk;
    const int64_t end = begin + kScaleChunk < sizes[t] ? begin + kScaleChunk : sizes[t];
    for (int64_t e = begin + threadIdx.x; e < end; e += blockDim.x) x[e] = x[e] * factor;
  }
}

}  // namespace

void grad_integrate(const ExecContext& ctx, DType dtype, const GradIntegrationArgs& args) {
  SCPN_CHECK(args.tasks >= 1 && args.tasks <= kMaxIntegrationTasks, "grad_integrate: ", args.tasks,
             " tasks, expected 1..", kMaxIntegrationTasks);
  switch_float(dtype, "grad_integrate", [&](auto zero) {
    using T = decltype(zero);
    const int K = args.tasks;
    const int64_t count = args.count;
    if (count <= 0) return;
    const cudaStream_t stream = stream_of(ctx);

    // Descriptors, and where each tensor's chunks and rows start in the whole call's lists.
    std::vector<IntegrationDesc<T>> descs(static_cast<size_t>(count));
    std::vector<int64_t> chunk_begin(size_t(count) + 1, 0), row_begin(size_t(count) + 1, 0);
    for (int64_t t = 0; t < count; ++t) {
      const GradIntegrationTensor& src = args.tensors[t];
      bool seen[kMaxIntegrationTasks] = {};
      for (int p = 0; p < K; ++p) {
        const int32_t j = src.order[p];
        SCPN_CHECK(j >= 0 && j < K && !seen[j], "grad_integrate: the task order is not a permutation of 0..", K - 1);
        seen[j] = true;
      }
      IntegrationDesc<T>& d = descs[size_t(t)];
      d.rows = src.rows;
      d.row_len = src.row_len;
      d.chunks_per_row = std::max<int64_t>(1, (src.row_len + kChunk - 1) / kChunk);
      for (int k = 0; k < kMaxIntegrationTasks; ++k) {
        d.grads[k] = k < K ? static_cast<const T*>(src.grads[k]) : nullptr;
        d.order[k] = k < K ? src.order[k] : 0;
      }
      d.out = static_cast<T*>(src.out);
      chunk_begin[size_t(t) + 1] = chunk_begin[size_t(t)] + src.rows * d.chunks_per_row;
      row_begin[size_t(t) + 1] = row_begin[size_t(t)] + src.rows;
    }
    const int64_t chunks = chunk_begin[size_t(count)], rows = row_begin[size_t(count)];
    PackedUpload upload;
    const size_t descs_at = upload.append(descs), chunk_begin_at = upload.append(chunk_begin),
                 row_begin_at = upload.append(row_begin);
    upload.send(ctx);
    const IntegrationDesc<T>* d_descs = upload.at<IntegrationDesc<T>>(descs_at);
    const int64_t* d_chunk_begin = upload.at<int64_t>(chunk_begin_at);
    const int64_t* d_row_begin = upload.at<int64_t>(row_begin_at);

    const size_t KK = size_t(K) * size_t(K);
    Scratch partial(ctx, size_t(chunks) * KK * sizeof(double));
    Scratch gram(ctx, size_t(rows) * KK * sizeof(double));
    Scratch coeff(ctx, size_t(rows) * KK * sizeof(double));
    Scratch row_terms(ctx, size_t(rows) * 3 * size_t(K) * sizeof(double));
    Scratch row_projected(ctx, size_t(rows) * sizeof(int64_t));
    Scratch sums(ctx, size_t(count) * 3 * size_t(K) * sizeof(double));
    Scratch own_weights(ctx, args.weights ? 0 : size_t(count) * size_t(K) * sizeof(double));
    double* weights = args.weights ? args.weights : own_weights.as<double>();

    if (chunks > 0) {
      gram_chunks_kernel<T><<<multi_tensor_blocks(chunks), kBlock, 0, stream>>>(
          d_descs, d_chunk_begin, d_row_begin, count, chunks, K, partial.as<double>());
      SCPN_CUDA_LAUNCH_CHECK("gram_chunks_kernel");
    }
    if (rows > 0) {
      row_rule_kernel<T><<<grid_for(rows), kBlock, 0, stream>>>(
          d_descs, d_chunk_begin, d_row_begin, count, rows, K, args.semantics, partial.as<double>(),
          gram.as<double>(), coeff.as<double>(), row_terms.as<double>(), row_projected.as<int64_t>());
      SCPN_CUDA_LAUNCH_CHECK("row_rule_kernel");
    }
    tensor_weights_kernel<T><<<grid_for(count), kBlock, 0, stream>>>(
        d_descs, d_row_begin, count, K, args.weighting, args.gamma, row_terms.as<double>(),
        row_projected.as<int64_t>(), sums.as<double>(), weights, args.projected_rows);
    SCPN_CUDA_LAUNCH_CHECK("tensor_weights_kernel");
    if (chunks > 0) {
      combine_chunks_kernel<T><<<multi_tensor_blocks(chunks), kBlock, 0, stream>>>(
          d_descs, d_chunk_begin, d_row_begin, count, chunks, K, coeff.as<double>(), weights);
      SCPN_CUDA_LAUNCH_CHECK("combine_chunks_kernel");
    }
  });
}

void grad_sum_squares(const ExecContext& ctx, DType dtype, const GradListArgs& list, double* sum_squares) {
  switch_float(dtype, "grad_sum_squares", [&](auto zero) {
    using T = decltype(zero);
    const int64_t count = list.count;
    if (count <= 0) return;
    const cudaStream_t stream = stream_of(ctx);
    // Every buffer keeps its entry (an empty one gets 0), so the owner search sees them all.
    const std::vector<int64_t> chunk_begin = chunk_offsets(list.sizes, count, kChunk);
    std::vector<const T*> buffers(static_cast<size_t>(count));
    for (int64_t t = 0; t < count; ++t) buffers[size_t(t)] = static_cast<const T*>(list.buffers[t]);
    const std::vector<int64_t> sizes(list.sizes, list.sizes + count);
    PackedUpload upload;
    const size_t buffers_at = upload.append(buffers), sizes_at = upload.append(sizes),
                 chunk_begin_at = upload.append(chunk_begin);
    upload.send(ctx);
    const int64_t chunks = chunk_begin.back();
    Scratch partial(ctx, size_t(chunks) * sizeof(double));
    if (chunks > 0) {
      sum_squares_chunks_kernel<T><<<multi_tensor_blocks(chunks), kBlock, 0, stream>>>(
          upload.at<const T*>(buffers_at), upload.at<int64_t>(sizes_at), upload.at<int64_t>(chunk_begin_at), count,
          chunks, partial.as<double>());
      SCPN_CUDA_LAUNCH_CHECK("sum_squares_chunks_kernel");
    }
    sum_squares_totals_kernel<<<grid_for(count), kBlock, 0, stream>>>(upload.at<int64_t>(chunk_begin_at), count,
                                                                      partial.as<double>(), sum_squares);
    SCPN_CUDA_LAUNCH_CHECK("sum_squares_totals_kernel");
  });
}

void grad_scale(const ExecContext& ctx, DType dtype, const GradListArgs& list, double factor) {
  switch_float(dtype, "grad_scale", [&](auto zero) {
    using T = decltype(zero);
    const int64_t count = list.count;
    if (count <= 0) return;
    const std::vector<int64_t> chunk_begin = chunk_offsets(list.sizes, count, kScaleChunk);
    const int64_t chunks = chunk_begin.back();
    if (chunks == 0) return;
    std::vector<T*> buffers(static_cast<size_t>(count));
    for (int64_t t = 0; t < count; ++t) buffers[size_t(t)] = static_cast<T*>(list.buffers[t]);
    const std::vector<int64_t> sizes(list.sizes, list.sizes + count);
    PackedUpload upload;
    const size_t buffers_at = upload.append(buffers), sizes_at = upload.append(sizes),
                 chunk_begin_at = upload.append(chunk_begin);
    upload.send(ctx);
    scale_chunks_kernel<T><<<multi_tensor_blocks(chunks), kBlock, 0, stream_of(ctx)>>>(
        upload.at<T*>(buffers_at), upload.at<int64_t>(sizes_at), upload.at<int64_t>(chunk_begin_at), count, chunks,
        T(factor));
    SCPN_CUDA_LAUNCH_CHECK("scale_chunks_kernel");
  });
}

}  // namespace scpn::cuda
