// Differentiable row-wise softmax ops over dim 1 of an [N, C] f32/f64 matrix (kernels: kernels/softmax.h).
// For the loss, use cross_entropy (engine/ops/loss.h), which fuses log-softmax with the target selection.
#pragma once
#include "engine/tensor.h"

namespace scpn {

// y[n, c] = x[n, c] − log Σ_j exp(x[n, j]).
// Gradient: dx[n, c] = g[n, c] − softmax(x)[n, c] · Σ_j g[n, j]. Each row's maximum is subtracted first,
// so large logits (±1000) stay finite; NaN/inf in a row give NaN in that row without an error.
Tensor log_softmax(const Tensor& x);

// p[n, c] = exp(x[n, c]) / Σ_j exp(x[n, j]), computed as exp(log_softmax(x)) (gradient through both).
Tensor softmax(const Tensor& x);

}  // namespace scpn
