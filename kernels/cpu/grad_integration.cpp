// CPU gradient integration (kernels/grad_integration.h): per-row Gram matrices of the K task gradients,
// the `last`/`chain` projection rules on those small matrices, cosine weights and one combining pass; also
// the sum-of-squares and scale kernels behind the global-norm clip.
#include "kernels/grad_integration.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/common/grad_integration_rule.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {

// Partial sums cover fixed chunks of a row and are added in chunk order: the same result whatever the
// number of threads (a GPU block per chunk reproduces it too).
constexpr int64_t kChunk = 4096;

// Upper triangle (a ≤ b) of the chunk's Gram matrix, added into gram [K·K]. Four accumulators per dot
// give the CPU independent chains of additions (the order is fixed, so still deterministic).
template <class T>
void chunk_gram(const T* const* g, int K, int64_t begin, int64_t end, double* gram) {
  for (int a = 0; a < K; ++a) {
    const T* ga = g[a];
    for (int b = a; b < K; ++b) {
      const T* gb = g[b];
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t e = begin;
      for (; e + 4 <= end; e += 4) {
        s0 += double(ga[e]) * double(gb[e]);
        s1 += double(ga[e + 1]) * double(gb[e + 1]);
        s2 += double(ga[e + 2]) * double(gb[e + 2]);
        s3 += double(ga[e + 3]) * double(gb[e + 3]);
      }
      for (; e < end; ++e) s0 += double(ga[e]) * double(gb[e]);
      gram[a * K + b] += (s0 + s1) + (s2 + s3);
    }
  }
}

// The per-row and per-tensor steps are kernels/common/grad_integration_rule.h, shared with the CUDA kernel
// so that both apply the same rule in the same order of operations.
template <class T>
void integrate_tensor(const GradIntegrationArgs& args, const GradIntegrationTensor& t, double* weights_out,
                      int64_t* projected_out) {
  const int K = args.tasks;
  const int64_t rows = t.rows, row_len = t.row_len;
  bool seen[kMaxIntegrationTasks] = {};
  for (int p = 0; p < K; ++p) {
    const int32_t j = t.order[p];
    SCPN_CHECK(j >= 0 && j < K && !seen[j], "grad_integrate: the task order is not a permutation of 0..", K - 1);
    seen[j] = true;
  }
  const T* g[kMaxIntegrationTasks];
  for (int k = 0; k < K; ++k) g[k] = static_cast<const T*>(t.grads[k]);
  T* out = static_cast<T*>(t.out);
  const int64_t chunks_per_row = std::max<int64_t>(1, (row_len + kChunk - 1) / kChunk);
  const int64_t chunks = rows * chunks_per_row;
  const size_t KK = size_t(K) * size_t(K);
  const bool parallel = rows * row_len * K > kParallelGrain;

  // Pass 1: partial Gram matrices per chunk.
  std::vector<double> partial(size_t(chunks) * KK, 0.0);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t r = c / chunks_per_row, q = c % chunks_per_row;
    const int64_t begin = r * row_len + q * kChunk;
    const int64_t end = r * row_len + std::min(row_len, (q + 1) * kChunk);
    chunk_gram<T>(g, K, begin, end, partial.data() + size_t(c) * KK);
  }

  // Per row: the Gram matrix, the projection coefficients, and the tensor-wide sums for the cosines.
  std::vector<double> coeff(size_t(rows) * KK);
  std::vector<double> h_dot_g(size_t(K), 0.0), h_norm2(size_t(K), 0.0), g_norm2(size_t(K), 0.0);
  std::vector<double> G(KK);
  double row_hg[kMaxIntegrationTasks], row_hh[kMaxIntegrationTasks], row_gg[kMaxIntegrationTasks];
  int64_t projected = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(G.begin(), G.end(), 0.0);
    for (int64_t q = 0; q < chunks_per_row; ++q) {
      const double* p = partial.data() + size_t(r * chunks_per_row + q) * KK;
      for (size_t e = 0; e < KK; ++e) G[e] += p[e];
    }
    for (int a = 0; a < K; ++a)
      for (int b = a + 1; b < K; ++b) G[size_t(b * K + a)] = G[size_t(a * K + b)];
    double* A = coeff.data() + size_t(r) * KK;
    projected += integration_row_coefficients(args.semantics, K, t.order, G.data(), A);
    integration_row_cosine_terms(K, G.data(), A, row_hg, row_hh, row_gg);
    for (int i = 0; i < K; ++i) {
      h_dot_g[size_t(i)] += row_hg[i];
      h_norm2[size_t(i)] += row_hh[i];
      g_norm2[size_t(i)] += row_gg[i];
    }
  }

  // Task weights over the whole tensor.
  std::vector<double> w(static_cast<size_t>(K));
  integration_task_weights(args.weighting, args.gamma, K, h_dot_g.data(), h_norm2.data(), g_norm2.data(), w.data());
  if (weights_out)
    for (int i = 0; i < K; ++i) weights_out[i] = w[size_t(i)];
  if (projected_out) *projected_out = projected;

  // Per row: out[r] = Σₖ βₖ gₖ[r], βₖ = K·Σᵢ wᵢ Aᵢₖ — one combination of the original gradients.
  std::vector<double> beta(size_t(rows) * size_t(K));
  for (int64_t r = 0; r < rows; ++r)
    integration_row_beta(K, w.data(), coeff.data() + size_t(r) * KK, beta.data() + size_t(r) * size_t(K));

  // Pass 2: combine. Every gradient's element e is read before out[e] is written (aliasing is allowed).
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t r = c / chunks_per_row, q = c % chunks_per_row;
    const int64_t begin = r * row_len + q * kChunk;
    const int64_t end = r * row_len + std::min(row_len, (q + 1) * kChunk);
    const double* br = beta.data() + size_t(r) * size_t(K);
    for (int64_t e = begin; e < end; ++e) {
      double v = 0;
      for (int k = 0; k < K; ++k) v += br[k] * double(g[k][e]);
      out[e] = T(v);
    }
  }
}

}  // namespace

void grad_integrate(const ExecContext&, DType dtype, const GradIntegrationArgs& args) {
  SCPN_CHECK(args.tasks >= 1 && args.tasks <= kMaxIntegrationTasks, "grad_integrate: ", args.tasks,
             " tasks, expected 1..", kMaxIntegrationTasks);
  with_float_type(dtype, "grad_integrate", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t t = 0; t < args.count; ++t)
      integrate_tensor<T>(args, args.tensors[t], args.weights ? args.weights + t * args.tasks : nullptr,
                          args.projected_rows ? args.projected_rows + t : nullptr);
  });
}

void grad_sum_squares(const ExecContext&, DType dtype, const GradListArgs& list, double* sum_squares) {
  with_float_type(dtype, "grad_sum_squares", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t t = 0; t < list.count; ++t) {
      const T* x = static_cast<const T*>(list.buffers[t]);
      const int64_t n = list.sizes[t];
      // Fixed chunks added in order: independent of the thread count.
      const int64_t chunks = (n + kChunk - 1) / kChunk;
      std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t end = std::min(n, (c + 1) * kChunk);
        double s = 0;
        for (int64_t e = c * kChunk; e < end; ++e) s += double(x[e]) * double(x[e]);
        partial[size_t(c)] = s;
      }
      double total = 0;
      for (double s : partial) total += s;
      sum_squares[t] = total;
    }
  });
}

void grad_scale(const ExecContext&, DType dtype, const GradListArgs& list, double factor) {
  with_float_type(dtype, "grad_scale", [&](auto zero) {
    using T = decltype(zero);
    const T f = T(factor);
    for (int64_t t = 0; t < list.count; ++t) {
      T* x = static_cast<T*>(list.buffers[t]);
      const int64_t n = list.sizes[t];
#pragma omp parallel for if (n > kParallelGrain)
      for (int64_t e = 0; e < n; ++e) x[e] = x[e] * f;
    }
  });
}

}  // namespace scpn::cpu
