// Per-row arithmetic of the fused softmax cross-entropy (contract: kernels/loss.h), shared by the CPU
// and CUDA kernels (kernels/cpu/loss.cpp, kernels/cuda/loss.cu) so the label-smoothing formula and its
// ε = 0 rule exist once; tests/ops/test_loss.cpp checks it, its gpu/loss parity the CUDA launch.
#pragma once
#include <cstdint>

#include "kernels/common/host_device.h"

namespace scpn {

// lse − (1 − ε)·x[target] − (ε/C)·Σ_c x[c]. The ε term is dropped at ε = 0 so that a −inf logit of a
// non-target class (Σ x = −inf) cannot turn a finite loss into NaN through 0 · (−inf).
SCPN_HD double cross_entropy_row_loss(double lse, double target_logit, double logit_sum, double eps,
                                      int64_t classes) {
  double loss = lse - (1.0 - eps) * target_logit;
  if (eps > 0) loss -= eps / double(classes) * logit_sum;
  return loss;
}

// The smoothed target distribution q[c]: ε/C for every class, plus 1 − ε at the target.
struct SmoothedTarget {
  double off;  // q at a non-target class
  double on;   // q at the target class
};
SCPN_HD SmoothedTarget smoothed_target(double eps, int64_t classes) {
  const double off = eps / double(classes);
  return {off, 1.0 - eps + off};
}

}  // namespace scpn
