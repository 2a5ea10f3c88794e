// Differentiable row-wise L2 normalisation (kernels: kernels/l2_normalize.h): the retrieval feature is the
// projector's BN output normalised this way and compared by cosine (SCPN_METHOD.md §6).
#pragma once
#include "engine/tensor.h"

namespace scpn {

// y[n, :] = x[n, :] / max(‖x[n, :]‖₂, eps) for x [N, D] f32/f64 and eps >= 0 (PyTorch's
// F.normalize(x, p=2, dim=1, eps)). A zero row stays zero.
// Gradient, with r = ‖x[n, :]‖₂:  r >= eps: dx = (g − y·⟨y, g⟩) / r;  r < eps: dx = g / eps.
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);

}  // namespace scpn
