// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ with the 2-norm) over tensors that may
// mix dtypes and devices, through the grad_integration family's sum-of-squares and scale kernels.
#pragma once
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace scpn {

// torch.nn.utils.clip_grad_norm_ with the 2-norm: total = sqrt(Σ over all tensors of Σ x²) (in double);
// when max_norm / (total + 1e-6) < 1 (total > max_norm − 1e-6), every tensor is scaled in place by that
// factor; a non-finite total (a NaN or ±Inf among the values) scales nothing. Returns the total norm
// before clipping. Undefined tensors are skipped; the rest must be float
// (f32/f64) and may mix dtypes and devices.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm);

// The same over the gradients a slot holds for these parameters (parameters without one are skipped):
// step 1's per-task clip.
double clip_grad_norm(const GradientSlot& slot, const std::vector<Tensor>& params, double max_norm);

}  // namespace scpn
