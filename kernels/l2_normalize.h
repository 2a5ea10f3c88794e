// Contract of the l2_normalize family: each row of a contiguous [N, D] matrix divided by its Euclidean
// norm clamped from below by eps (PyTorch's F.normalize(x, p=2, dim=1, eps)). Retrieval features are
// compared by cosine after this.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

struct L2NormalizeParams {
  int64_t rows = 0;    // N
  int64_t cols = 0;    // D
  double eps = 1e-12;  // lower clamp of the norm, >= 0
};

// norm[n] = ‖x[n, :]‖₂ (unclamped, kept for the backward); y[n, :] = x[n, :] / max(norm[n], eps).
// Overwrites y and norm.
using L2NormalizeForwardFn = void(const ExecContext&, DType, const L2NormalizeParams&, const void* x,
                                  void* y, void* norm);

// With y and norm from the forward:
//   norm[n] >= eps:  gx[n, :] = (gy[n, :] − y[n, :]·⟨y[n, :], gy[n, :]⟩) / norm[n]
//   norm[n] <  eps:  gx[n, :] = gy[n, :] / eps   (the denominator is the constant eps there)
// The boundary norm = eps follows PyTorch's clamp_min, whose gradient passes where input >= min.
// Overwrites gx.
using L2NormalizeBackwardFn = void(const ExecContext&, DType, const L2NormalizeParams&, const void* y,
                                   const void* norm, const void* gy, void* gx);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/l2_normalize.cpp
L2NormalizeForwardFn l2_normalize_forward;
L2NormalizeBackwardFn l2_normalize_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/l2_normalize.cu
L2NormalizeForwardFn l2_normalize_forward;
L2NormalizeBackwardFn l2_normalize_backward;
}  // namespace cuda

}  // namespace scpn
