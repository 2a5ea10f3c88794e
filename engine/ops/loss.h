// Differentiable losses (kernels: kernels/loss.h). cross_entropy is the training loss of every SCPN task
// (parent and each capacity): fused log-softmax + target selection, forward and backward in one kernel each.
#pragma once
#include "engine/tensor.h"

namespace scpn {

// Mean softmax cross-entropy with label smoothing, as PyTorch's
// F.cross_entropy(logits, targets, label_smoothing=ε):
//   logits  [N, C] f32/f64, N >= 1, C >= 1;
//   targets [N] i64, each in [0, C) (an error names the first index and value outside it);
//   ε in [0, 1]; q[n, c] = (1 − ε)·[c = targets[n]] + ε/C.
// Returns a 0-D tensor: (1/N) Σ_n −Σ_c q[n, c] · log softmax(logits)[n, c].
// Gradient: d/dlogits[n, c] = g · (softmax(logits)[n, c] − q[n, c]) / N; targets get none.
// NaN/inf in the logits propagate into the loss and gradient (no error), as in PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0);

}  // namespace scpn
