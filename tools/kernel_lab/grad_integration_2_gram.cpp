// Integration variant 2, the Gram matrix once per row: every hᵢ[r] is a combination Σₖ A[i,k]·gₖ[r], and
// the rule needs only the row's dot products Gₐ_b = ⟨gₐ[r], g_b[r]⟩ — K·(K+1)/2 of them instead of a pair
// of dots per (task, partner). The K×K algebra (projection coefficients A, the cosine terms, the weights,
// the output coefficients β) is the engine's own, kernels/common/grad_integration_rule.h. No hᵢ is ever
// stored: one sweep per pair builds G, one last sweep writes out[r] = Σₖ βₖ·gₖ[r].
#include <vector>

#include "kernels/common/grad_integration_rule.h"
#include "tools/kernel_lab/grad_integration.h"

namespace lab {

void grad_integration_2_gram(const IntegrationProblem& p, float* out) {
  const int K = p.K, KK = K * K;
  for (const IntegrationTensor& t : p.tensors) {
    const int64_t L = t.row_len;
    std::vector<const float*> g(static_cast<size_t>(K));
    for (int k = 0; k < K; ++k) g[size_t(k)] = p.grads[size_t(k)].data() + t.offset;

    std::vector<double> A(size_t(t.rows * KK)), G(static_cast<size_t>(KK));
    double h_dot_g[kMaxTasks] = {}, h_norm2[kMaxTasks] = {}, g_norm2[kMaxTasks] = {};
    for (int64_t r = 0; r < t.rows; ++r) {
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b) {
          double s = 0;
          for (int64_t e = r * L; e < (r + 1) * L; ++e) s += double(g[size_t(a)][e]) * double(g[size_t(b)][e]);
          G[size_t(a * K + b)] = G[size_t(b * K + a)] = s;
        }
      double* Ar = A.data() + r * KK;
      scpn::integration_row_coefficients(scpn::ConflictSemantics::last, K, t.order.data(), G.data(), Ar);
      double hg[kMaxTasks], hh[kMaxTasks], gg[kMaxTasks];
      scpn::integration_row_cosine_terms(K, G.data(), Ar, hg, hh, gg);
      for (int i = 0; i < K; ++i) {
        h_dot_g[i] += hg[i];
        h_norm2[i] += hh[i];
        g_norm2[i] += gg[i];
      }
    }
    double w[kMaxTasks];
    scpn::integration_task_weights(scpn::TaskWeighting::cosine, p.gamma, K, h_dot_g, h_norm2, g_norm2, w);

    for (int64_t r = 0; r < t.rows; ++r) {
      double beta[kMaxTasks];
      scpn::integration_row_beta(K, w, A.data() + r * KK, beta);
      for (int64_t e = r * L; e < (r + 1) * L; ++e) {
        double v = 0;
        for (int k = 0; k < K; ++k) v += beta[k] * double(g[size_t(k)][e]);
        out[t.offset + e] = float(v);
      }
    }
  }
}

}  // namespace lab
