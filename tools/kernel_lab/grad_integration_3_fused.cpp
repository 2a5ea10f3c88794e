// Integration variants 3 and 4, one fused pass for the Gram matrix. Variant 2 sweeps a row once per
// pair (a, b); here each element of the K gradients is loaded once and feeds all K·(K+1)/2 products from
// registers, so the row is read K times instead of K·(K+1) times. Two details make that fast:
//   - K is a template parameter: the pair loops unroll and the sums live in registers;
//   - each sum is a vector of kLanes independent lanes (lane l takes elements l, l + kLanes, …): one vector
//     multiply-add per pair and step, and the order of every addition is still fixed (deterministic).
// The tensor is then combined right away, while its gradients are still in the cache. Variant 4 is the
// same code with the rows split between threads; every sum over rows stays in row order.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/common/grad_integration_rule.h"
#include "tools/kernel_lab/grad_integration.h"

namespace lab {

namespace {

// Four lanes of doubles as one value (GCC's vector extension): a 256-bit register, whose arithmetic the
// compiler emits as single vector instructions.
using Floats4 = float __attribute__((vector_size(16)));
using Doubles4 = double __attribute__((vector_size(32)));
constexpr int kLanes = 4;

// G [K·K] of one row of length len from the K row pointers.
template <int K>
void gram_row(const float* const* g, int64_t len, double* G) {
  constexpr int kPairs = K * (K + 1) / 2;
  Doubles4 acc[kPairs] = {};
  int64_t e = 0;
  for (; e + kLanes <= len; e += kLanes) {
    Doubles4 v[K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
      Floats4 f;
      std::memcpy(&f, g[k] + e, sizeof f);  // an unaligned vector load
      v[k] = __builtin_convertvector(f, Doubles4);
    }
    int pair = 0;
#pragma GCC unroll 8
    for (int a = 0; a < K; ++a)
#pragma GCC unroll 8
      for (int b = a; b < K; ++b, ++pair) acc[pair] += v[a] * v[b];
  }
  double tail[kPairs] = {};
  for (; e < len; ++e) {
    int pair = 0;
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b, ++pair) tail[pair] += double(g[a][e]) * double(g[b][e]);
  }
  int pair = 0;
  for (int a = 0; a < K; ++a)
    for (int b = a; b < K; ++b, ++pair) {
      double s = 0;
      for (int l = 0; l < kLanes; ++l) s += acc[pair][l];
      G[a * K + b] = G[b * K + a] = s + tail[pair];
    }
}

// out[e] = Σₖ βₖ·gₖ[e] over one row: no sum runs along e, so the compiler vectorises e directly.
template <int K>
void combine_row(const float* const* g, int64_t len, const double* beta, float* out) {
  for (int64_t e = 0; e < len; ++e) {
    double v = 0;
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) v += beta[k] * double(g[k][e]);
    out[e] = float(v);
  }
}

template <int K>
void fused_tensor(const IntegrationProblem& p, const IntegrationTensor& t, float* out, bool threads) {
  constexpr int KK = K * K;
  const int64_t L = t.row_len, rows = t.rows;
  const float* base[K];
  for (int k = 0; k < K; ++k) base[k] = p.grads[size_t(k)].data() + t.offset;
  std::vector<double> A(size_t(rows * KK)), terms(size_t(rows * 3 * K));
  // Threads only where a row's work outweighs waking them (the stem's 64 short rows do not).
  const bool parallel = threads && rows > 1 && rows * L * K > (1 << 16);

#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g[K];
    for (int k = 0; k < K; ++k) g[k] = base[k] + r * L;
    double G[KK];
    gram_row<K>(g, L, G);
    double* Ar = A.data() + r * KK;
    scpn::integration_row_coefficients(scpn::ConflictSemantics::last, K, t.order.data(), G, Ar);
    double* row_terms = terms.data() + r * 3 * K;
    scpn::integration_row_cosine_terms(K, G, Ar, row_terms, row_terms + K, row_terms + 2 * K);
  }

  double sums[3 * K] = {};  // [Σ⟨hᵢ,gᵢ⟩ | Σ‖hᵢ‖² | Σ‖gᵢ‖²], rows added in order
  for (int64_t r = 0; r < rows; ++r)
    for (int e = 0; e < 3 * K; ++e) sums[e] += terms[size_t(r * 3 * K + e)];
  double w[K];
  scpn::integration_task_weights(scpn::TaskWeighting::cosine, p.gamma, K, sums, sums + K, sums + 2 * K, w);

#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g[K];
    for (int k = 0; k < K; ++k) g[k] = base[k] + r * L;
    double beta[K];
    scpn::integration_row_beta(K, w, A.data() + r * KK, beta);
    combine_row<K>(g, L, beta, out + t.offset + r * L);
  }
}

template <int K>
void fused_all(const IntegrationProblem& p, float* out, bool threads) {
  for (const IntegrationTensor& t : p.tensors) fused_tensor<K>(p, t, out, threads);
}

// The run-time K to the compile-time one.
void fused(const IntegrationProblem& p, float* out, bool threads) {
  switch (p.K) {
    case 1: return fused_all<1>(p, out, threads);
    case 2: return fused_all<2>(p, out, threads);
    case 3: return fused_all<3>(p, out, threads);
    case 4: return fused_all<4>(p, out, threads);
    case 5: return fused_all<5>(p, out, threads);
    case 6: return fused_all<6>(p, out, threads);
    case 7: return fused_all<7>(p, out, threads);
    case 8: return fused_all<8>(p, out, threads);
  }
  static_assert(kMaxTasks == 8, "one case per K up to kMaxTasks");
  throw std::invalid_argument("grad_integration_3_fused: K must be 1.." + std::to_string(kMaxTasks));
}

}  // namespace

void grad_integration_3_fused(const IntegrationProblem& p, float* out) { fused(p, out, false); }

void grad_integration_4_threads(const IntegrationProblem& p, float* out) { fused(p, out, true); }

}  // namespace lab
