// Integration variant 1, naive: the method exactly as SCPN_METHOD.md §4 step 3 states it. Every task's
// projected gradient hᵢ is materialised, and every (task, partner) pair recomputes its row dot products:
// K·(K−1) sweeps over pairs of rows, then K more for the cosines and one for the sum.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tools/kernel_lab/grad_integration.h"

namespace lab {

void grad_integration_1_naive(const IntegrationProblem& p, float* out) {
  const int K = p.K;
  for (const IntegrationTensor& t : p.tensors) {
    const int64_t n = t.rows * t.row_len, L = t.row_len;
    std::vector<const float*> g(static_cast<size_t>(K));
    for (int k = 0; k < K; ++k) g[size_t(k)] = p.grads[size_t(k)].data() + t.offset;

    std::vector<std::vector<float>> h(static_cast<size_t>(K));
    for (int i = 0; i < K; ++i) {
      const float* gi = g[size_t(i)];
      h[size_t(i)].assign(gi, gi + n);
      for (int q = 0; q < K; ++q) {
        const int j = t.order[size_t(q)];
        if (j == i) continue;
        const float* gj = g[size_t(j)];
        for (int64_t r = 0; r < t.rows; ++r) {
          double dot = 0, norm2 = 0;
          for (int64_t e = r * L; e < (r + 1) * L; ++e) {
            dot += double(gi[e]) * double(gj[e]);
            norm2 += double(gj[e]) * double(gj[e]);
          }
          if (dot >= 0) continue;
          // From the original gᵢ: a later conflicting partner overwrites an earlier one's projection.
          const double c = dot / (norm2 + 1e-8);
          for (int64_t e = r * L; e < (r + 1) * L; ++e)
            h[size_t(i)][size_t(e)] = float(double(gi[e]) - c * double(gj[e]));
        }
      }
    }

    std::vector<double> w(static_cast<size_t>(K));
    double total = 0;
    for (int i = 0; i < K; ++i) {
      double hg = 0, hh = 0, gg = 0;
      for (int64_t e = 0; e < n; ++e) {
        const double hv = h[size_t(i)][size_t(e)], gv = g[size_t(i)][e];
        hg += hv * gv;
        hh += hv * hv;
        gg += gv * gv;
      }
      const double cos = hg / (std::max(std::sqrt(hh), 1e-8) * std::max(std::sqrt(gg), 1e-8));
      w[size_t(i)] = std::pow((1.0 + cos) / 2.0, p.gamma);
      total += w[size_t(i)];
    }
    for (double& wi : w) wi /= total + 1e-8;

    for (int64_t e = 0; e < n; ++e) {
      double v = 0;
      for (int i = 0; i < K; ++i) v += w[size_t(i)] * double(h[size_t(i)][size_t(e)]);
      out[t.offset + e] = float(double(K) * v);
    }
  }
}

}  // namespace lab
