// The small per-row and per-tensor steps of the gradient integration (kernels/grad_integration.h), on a
// row's K×K Gram matrix rather than on the gradients: the `last`/`chain` projection rule, the row's share
// of the cosine sums, the task weights and the coefficients β. Shared by the CPU and CUDA kernels.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/grad_integration.h"

namespace scpn {

inline constexpr double kIntegrationProjectionEps = 1e-8;  // ‖gⱼ‖² + 1e-8 in the projection
inline constexpr double kIntegrationNormEps = 1e-8;        // torch's cosine_similarity clamps each norm to this
inline constexpr double kIntegrationWeightEps = 1e-8;      // Σa + 1e-8 in the normalisation of the weights

// std::max / std::clamp spelled out for the device (the same comparisons, so NaN behaves as std::max and
// std::clamp do on the CPU).
SCPN_HD double integration_max(double a, double b) { return a < b ? b : a; }
SCPN_HD double integration_clamp(double v, double lo, double hi) { return v < lo ? lo : (hi < v ? hi : v); }

// The projection rule on one row: coefficients A [K·K] with hᵢ = Σₖ A[i·K + k]·gₖ, from the row's symmetric
// Gram matrix G [K·K] (G[a·K + b] = ⟨gₐ, g_b⟩) and the task order π. Returns how many tasks were projected
// on this row.
SCPN_HD int64_t integration_row_coefficients(ConflictSemantics semantics, int K, const int32_t* order,
                                             const double* G, double* A) {
  int64_t projected = 0;
  for (int i = 0; i < K; ++i) {
    double* Ai = A + i * K;
    for (int k = 0; k < K; ++k) Ai[k] = 0.0;
    Ai[i] = 1.0;
    bool touched = false;
    for (int p = 0; p < K; ++p) {
      const int j = order[p];
      if (j == i) continue;
      if (semantics == ConflictSemantics::last) {
        const double d = G[i * K + j];  // ⟨gᵢ, gⱼ⟩ with the original gᵢ
        if (d < 0) {
          for (int k = 0; k < K; ++k) Ai[k] = 0.0;  // start again from gᵢ: the last conflicting partner decides
          Ai[i] = 1.0;
          Ai[j] = -d / (G[j * K + j] + kIntegrationProjectionEps);
          touched = true;
        }
      } else {
        double d = 0;  // ⟨hᵢ, gⱼ⟩ with the current hᵢ = Σₖ Aᵢₖ gₖ
        for (int k = 0; k < K; ++k) d += Ai[k] * G[k * K + j];
        if (d < 0) {
          Ai[j] -= d / (G[j * K + j] + kIntegrationProjectionEps);
          touched = true;
        }
      }
    }
    projected += touched ? 1 : 0;
  }
  return projected;
}

// One row's contributions to the tensor-wide cosine sums of every task i: ⟨hᵢ, gᵢ⟩, ‖hᵢ‖² (clamped at 0:
// a quadratic form of a Gram matrix is ≥ 0 but for rounding) and ‖gᵢ‖², each [K].
SCPN_HD void integration_row_cosine_terms(int K, const double* G, const double* A, double* h_dot_g,
                                          double* h_norm2, double* g_norm2) {
  for (int i = 0; i < K; ++i) {
    const double* Ai = A + i * K;
    double hg = 0, hh = 0;
    for (int k = 0; k < K; ++k) {
      hg += Ai[k] * G[k * K + i];
      double Gk_dot_A = 0;
      for (int l = 0; l < K; ++l) Gk_dot_A += G[k * K + l] * Ai[l];
      hh += Ai[k] * Gk_dot_A;
    }
    h_dot_g[i] = hg;
    h_norm2[i] = integration_max(hh, 0.0);
    g_norm2[i] = G[i * K + i];
  }
}

// Task weights w [K] of a tensor from its summed cosine terms (kernels/grad_integration.h: `cosine` or `none`).
SCPN_HD void integration_task_weights(TaskWeighting weighting, double gamma, int K, const double* h_dot_g,
                                      const double* h_norm2, const double* g_norm2, double* w) {
  if (weighting == TaskWeighting::none) {
    for (int i = 0; i < K; ++i) w[i] = 1.0 / K;
    return;
  }
  double total = 0;
  for (int i = 0; i < K; ++i) {
    const double hn = integration_max(std::sqrt(h_norm2[i]), kIntegrationNormEps);
    const double gn = integration_max(std::sqrt(g_norm2[i]), kIntegrationNormEps);
    const double cos = integration_clamp(h_dot_g[i] / (hn * gn), -1.0, 1.0);
    w[i] = std::pow((1.0 + cos) / 2.0, gamma);
    total += w[i];
  }
  for (int i = 0; i < K; ++i) w[i] /= total + kIntegrationWeightEps;
}

// The row's output coefficients: out[r] = Σₖ β[k]·gₖ[r] with β[k] = K·Σᵢ wᵢ·A[i·K + k], summed in i order.
SCPN_HD void integration_row_beta(int K, const double* w, const double* A, double* beta) {
  for (int k = 0; k < K; ++k) beta[k] = 0.0;
  for (int i = 0; i < K; ++i)
    for (int k = 0; k < K; ++k) beta[k] += double(K) * w[i] * A[i * K + k];
}

}  // namespace scpn
