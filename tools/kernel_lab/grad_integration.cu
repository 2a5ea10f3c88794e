// Integration on CUDA, variants 1 and 2 (grad_integration.h), the GPU side of variants 2 → 3 on the CPU:
//   1: one thread per row computes the row's Gram matrix pair by pair — a few thousand rows leave most of
//      the GPU idle, and neighbouring threads read addresses a whole row apart;
//   2: one block per row: each thread walks the row with the block's stride (neighbouring threads read
//      neighbouring elements: coalesced), keeps all K·(K+1)/2 products in registers, and a fixed tree of
//      warp shuffles adds them up (deterministic).
// Both then share three small kernels: the task weights (a thread per tensor), β (a thread per row) and
// the combination (a block per row). The K×K algebra is kernels/common/grad_integration_rule.h, the same
// __host__ __device__ functions the CPU runs.
#include <memory>

#include "kernels/common/grad_integration_rule.h"
#include "tools/kernel_lab/grad_integration.h"
#include "tools/kernel_lab/lab_cuda.h"

namespace lab {

namespace {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;

// Row g of the whole problem: its first element, its length and its tensor.
struct RowPlace {
  int64_t start, len;
  int32_t tensor;
};

struct TaskPointers {
  const float* g[kMaxTasks];
};

__global__ void gram_thread_per_row(int K, TaskPointers grads, const RowPlace* rows, int64_t n_rows,
                                    const int32_t* orders, double* coeff, double* terms) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < n_rows; r += int64_t(gridDim.x) * blockDim.x) {
    const RowPlace row = rows[r];
    double G[kMaxTasks * kMaxTasks];
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b) {
        double s = 0;
        for (int64_t e = row.start; e < row.start + row.len; ++e) s += double(grads.g[a][e]) * double(grads.g[b][e]);
        G[a * K + b] = G[b * K + a] = s;
      }
    double* A = coeff + r * K * K;
    scpn::integration_row_coefficients(scpn::ConflictSemantics::last, K, orders + row.tensor * kMaxTasks, G, A);
    scpn::integration_row_cosine_terms(K, G, A, terms + r * 3 * K, terms + r * 3 * K + K, terms + r * 3 * K + 2 * K);
  }
}

template <int K>
__global__ void gram_block_per_row(TaskPointers grads, const RowPlace* rows, int64_t n_rows, const int32_t* orders,
                                   double* coeff, double* terms) {
  constexpr int kPairs = K * (K + 1) / 2;
  __shared__ double warp_sums[kWarps][kPairs];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    const RowPlace row = rows[r];
    double acc[kPairs] = {};
    for (int64_t e = row.start + threadIdx.x; e < row.start + row.len; e += kBlock) {
      double v[K];
#pragma unroll
      for (int k = 0; k < K; ++k) v[k] = double(grads.g[k][e]);
      int pair = 0;
#pragma unroll
      for (int a = 0; a < K; ++a)
#pragma unroll
        for (int b = a; b < K; ++b, ++pair) acc[pair] += v[a] * v[b];
    }
#pragma unroll
    for (int q = 0; q < kPairs; ++q) {
      double s = acc[q];
      for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
      if (lane == 0) warp_sums[warp][q] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double G[K * K];
      int pair = 0;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b, ++pair) {
          double s = 0;
          for (int w = 0; w < kWarps; ++w) s += warp_sums[w][pair];
          G[a * K + b] = G[b * K + a] = s;
        }
      double* A = coeff + r * K * K;
      scpn::integration_row_coefficients(scpn::ConflictSemantics::last, K, orders + row.tensor * kMaxTasks, G, A);
      scpn::integration_row_cosine_terms(K, G, A, terms + r * 3 * K, terms + r * 3 * K + K, terms + r * 3 * K + 2 * K);
    }
    __syncthreads();  // warp_sums is rewritten for the block's next row
  }
}

// One thread per tensor: its rows' cosine terms in row order, then the task weights.
__global__ void task_weights(int K, double gamma, const int64_t* row_begin, int64_t n_tensors, const double* terms,
                             double* weights) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < n_tensors;
       t += int64_t(gridDim.x) * blockDim.x) {
    double s[3 * kMaxTasks] = {};
    for (int64_t r = row_begin[t]; r < row_begin[t + 1]; ++r)
      for (int e = 0; e < 3 * K; ++e) s[e] += terms[r * 3 * K + e];
    scpn::integration_task_weights(scpn::TaskWeighting::cosine, gamma, K, s, s + K, s + 2 * K, weights + t * K);
  }
}

// One block per row: β from the row's coefficients and its tensor's weights, then out = Σₖ βₖ·gₖ.
__global__ void combine_block_per_row(int K, TaskPointers grads, const RowPlace* rows, int64_t n_rows,
                                      const double* coeff, const double* weights, float* out) {
  __shared__ double beta[kMaxTasks];
  for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    const RowPlace row = rows[r];
    if (threadIdx.x == 0) scpn::integration_row_beta(K, weights + row.tensor * K, coeff + r * K * K, beta);
    __syncthreads();
    for (int64_t e = row.start + threadIdx.x; e < row.start + row.len; e += blockDim.x) {
      double v = 0;
      for (int k = 0; k < K; ++k) v += beta[k] * double(grads.g[k][e]);
      out[e] = float(v);
    }
    __syncthreads();  // beta is rewritten for the block's next row
  }
}

template <int K>
void launch_gram_block_per_row(unsigned blocks, TaskPointers grads, const RowPlace* rows, int64_t n_rows,
                               const int32_t* orders, double* coeff, double* terms) {
  gram_block_per_row<K><<<blocks, kBlock>>>(grads, rows, n_rows, orders, coeff, terms);
}

void gram_rows_by_blocks(int K, unsigned blocks, TaskPointers grads, const RowPlace* rows, int64_t n_rows,
                         const int32_t* orders, double* coeff, double* terms) {
  switch (K) {
    case 1: return launch_gram_block_per_row<1>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 2: return launch_gram_block_per_row<2>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 3: return launch_gram_block_per_row<3>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 4: return launch_gram_block_per_row<4>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 5: return launch_gram_block_per_row<5>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 6: return launch_gram_block_per_row<6>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 7: return launch_gram_block_per_row<7>(blocks, grads, rows, n_rows, orders, coeff, terms);
    case 8: return launch_gram_block_per_row<8>(blocks, grads, rows, n_rows, orders, coeff, terms);
  }
  throw std::invalid_argument("integration on CUDA: K must be 1.." + std::to_string(kMaxTasks));
}

unsigned grid_for(int64_t items, int64_t per_block) {
  return unsigned(std::min<int64_t>((items + per_block - 1) / per_block, 65535));
}

}  // namespace

Timing grad_integration_cuda(int variant, const IntegrationProblem& p, std::vector<float>& out,
                             const TimingPolicy* policy) {
  if (const std::string reason = cuda::unavailable(); !reason.empty()) return {0, reason};
  const int K = p.K;
  std::vector<RowPlace> rows;
  std::vector<int64_t> row_begin{0};
  std::vector<int32_t> orders;
  for (const IntegrationTensor& t : p.tensors) {
    const int32_t tensor = int32_t(row_begin.size() - 1);
    for (int64_t r = 0; r < t.rows; ++r) rows.push_back({t.offset + r * t.row_len, t.row_len, tensor});
    row_begin.push_back(int64_t(rows.size()));
    orders.insert(orders.end(), t.order.begin(), t.order.end());
  }
  const int64_t n_rows = int64_t(rows.size()), n_tensors = int64_t(p.tensors.size());

  std::vector<std::unique_ptr<cuda::Buffer<float>>> grads;
  TaskPointers pointers{};
  for (int k = 0; k < K; ++k) {
    grads.push_back(std::make_unique<cuda::Buffer<float>>(p.grads[size_t(k)]));
    pointers.g[k] = grads.back()->get();
  }
  const cuda::Buffer<RowPlace> d_rows(rows);
  const cuda::Buffer<int64_t> d_row_begin(row_begin);
  const cuda::Buffer<int32_t> d_orders(orders);
  const cuda::Buffer<double> coeff(size_t(n_rows * K * K)), terms(size_t(n_rows * 3 * K));
  const cuda::Buffer<double> weights(size_t(n_tensors * K));
  cuda::Buffer<float> d_out(size_t(p.numel));

  const Timing timing = cuda::run_on_device(
      [&] {
        if (variant == 1)
          gram_thread_per_row<<<grid_for(n_rows, kBlock), kBlock>>>(K, pointers, d_rows.get(), n_rows, d_orders.get(),
                                                                     coeff.get(), terms.get());
        else
          gram_rows_by_blocks(K, grid_for(n_rows, 1), pointers, d_rows.get(), n_rows, d_orders.get(), coeff.get(),
                              terms.get());
        task_weights<<<grid_for(n_tensors, kBlock), kBlock>>>(K, p.gamma, d_row_begin.get(), n_tensors, terms.get(),
                                                              weights.get());
        combine_block_per_row<<<grid_for(n_rows, 1), kBlock>>>(K, pointers, d_rows.get(), n_rows, coeff.get(),
                                                               weights.get(), d_out.get());
      },
      policy);
  d_out.copy_to(out);
  return timing;
}

}  // namespace lab
