// Differentiable batch normalisation (BatchNorm1d on [N, C], BatchNorm2d on [N, C, H, W]) with PyTorch's
// semantics: training mode normalises with the batch statistics and moves the running statistics;
// eval mode normalises with the running statistics.
#pragma once
#include "engine/tensor.h"

namespace scpn {

namespace dist {
class Communicator;
}

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;  // weight of the new batch statistic in the running average, in [0, 1]
  double eps = 1e-5;      // added to the variance before the square root, >= 0
  // Synchronised batch norm (data-parallel training): in training mode the statistics, and the sums the
  // backward needs, are over every rank's batch (engine/ops/sync_batch_norm.h). Null: this process's batch.
  dist::Communicator* sync_group = nullptr;
  // y = max(·, 0) after the normalisation: relu(batch_norm(x)). One kernel where the device has the fused
  // one (the CPU, training, not synchronised), relu of batch_norm otherwise; the same values either way.
  bool relu = false;
};

// x: f32/f64 [N, C] or [N, C, H, W]; statistics are per channel over the m = N·H·W values (H·W = 1 for
// [N, C]). weight (γ) and bias (β): [C] or undefined (no affine: γ = 1, β = 0). running_mean and
// running_var: [C], both given or both undefined; all share x's dtype and device.
//
// Training: mean and biased var of the batch, y = (x - mean) / sqrt(var + eps) · γ + β. When the
//   running tensors are given they are updated in place, outside autograd:
//     running_mean = (1 - momentum)·running_mean + momentum·mean
//     running_var  = (1 - momentum)·running_var  + momentum·var·m/(m - 1)   (the unbiased variance)
//   Needs m > 1 (one value per channel has no variance).
// Eval: y = (x - running_mean) / sqrt(running_var + eps) · γ + β; the running tensors are required.
//
// Gradients, with xhat = normalised x, g = dL/dy, sums over a channel's m values:
//   dβ = Σg, dγ = Σ g·xhat,
//   training: dx = γ/sqrt(var + eps) · (g - Σg/m - xhat·Σ(g·xhat)/m)
//   eval:     dx = γ/sqrt(running_var + eps) · g
// No gradient flows to the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& options = {});

}  // namespace scpn
