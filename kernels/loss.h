// Contract of the loss family: fused softmax cross-entropy over a contiguous [N, C] logit matrix with
// i64 class targets and optional label smoothing (PyTorch's definition), mean-reduced over the batch.
// Targets must already be in [0, C): the engine front-end checks them, kernels do not.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

struct CrossEntropyParams {
  int64_t batch = 0;             // N
  int64_t classes = 0;           // C
  double label_smoothing = 0.0;  // ε in [0, 1]
};

// With p = softmax(x[n, :]) and q[n, c] = (1 − ε)·[c = t_n] + ε/C:
//   loss = (1/N) Σ_n −Σ_c q[n, c] log p[n, c] = (1/N) Σ_n (lse_n − (1 − ε)·x[n, t_n] − (ε/C)·Σ_c x[n, c]),
//   lse_n = m_n + log Σ_c exp(x[n, c] − m_n), m_n = max_c x[n, c] (the shift keeps it stable).
// The ε term is skipped when ε = 0, so a −inf logit of a non-target class stays harmless.
// Writes `loss` (one element, the logits' dtype) and `lse` (N f64 values, kept for the backward: in f32,
// lse ≈ 1000 would lose the probabilities' low bits, so it is always double); the batch sum is taken in
// a fixed order, so the result is deterministic. Overwrites both.
using CrossEntropyForwardFn = void(const ExecContext&, DType, const CrossEntropyParams&, const void* logits,
                                   const int64_t* targets, void* loss, double* lse);

// grad_logits[n, c] = g · (exp(x[n, c] − lse_n) − q[n, c]) / N, g = grad_loss[0] (one element of the
// logits' dtype, in device memory, so no host round trip). Overwrites grad_logits.
using CrossEntropyBackwardFn = void(const ExecContext&, DType, const CrossEntropyParams&, const void* logits,
                                    const int64_t* targets, const double* lse, const void* grad_loss,
                                    void* grad_logits);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/loss.cpp
CrossEntropyForwardFn cross_entropy_forward;
CrossEntropyBackwardFn cross_entropy_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/loss.cu
CrossEntropyForwardFn cross_entropy_forward;
CrossEntropyBackwardFn cross_entropy_backward;
}  // namespace cuda

}  // namespace scpn
