// Contract of the optimizer family: in-place parameter updates for SGD (PyTorch semantics) and AdamW.
// One call updates a list of tensors that share dtype, device and hyper-parameters (one parameter
// group): the CPU loops over the list; a CUDA backend fuses the whole list into one launch.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// ---- SGD ------------------------------------------------------------------------------------------
// Per element, with g = grad[i]:
//   g = g + weight_decay·p                          (skipped when weight_decay == 0)
//   if momentum_buffer:  buf = first_step ? g : momentum·buf + (1 − dampening)·g
//                        g   = nesterov ? g + momentum·buf : buf
//   p = p − lr·g
// Overwrites param (and momentum_buffer) in place; grad is read only.
struct SgdTensor {
  int64_t n = 0;                    // elements (contiguous)
  void* param = nullptr;
  const void* grad = nullptr;
  void* momentum_buffer = nullptr;  // null iff momentum == 0 (no buffer is kept then)
  bool first_step = false;          // the buffer holds garbage and is set to g (PyTorch's buf = g)
};

struct SgdStepArgs {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  // The tensors to update, in host memory; their data pointers are on the call's device.
  const SgdTensor* tensors = nullptr;
  int64_t count = 0;
};

using SgdStepFn = void(const ExecContext&, DType, const SgdStepArgs&);

// ---- AdamW ----------------------------------------------------------------------------------------
// Per element, with g = grad[i] and t = the tensor's step count (1 on its first update):
//   p = p·(1 − lr·weight_decay)                     (decoupled decay, before the Adam update)
//   m = beta1·m + (1 − beta1)·g
//   v = beta2·v + (1 − beta2)·g²
//   p = p − (lr / (1 − beta1^t)) · m / (sqrt(v) / sqrt(1 − beta2^t) + eps)
// which equals p − lr·m̂ / (sqrt(v̂) + eps) with the bias-corrected m̂, v̂. Overwrites param, exp_avg
// (m) and exp_avg_sq (v) in place; they must start at zero before a tensor's first step.
struct AdamWTensor {
  int64_t n = 0;
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;
  void* exp_avg_sq = nullptr;
  int64_t step = 1;  // this update's step count t >= 1 (per tensor: a tensor may skip steps)
};

struct AdamWStepArgs {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  const AdamWTensor* tensors = nullptr;  // host memory, as for SGD
  int64_t count = 0;
};

using AdamWStepFn = void(const ExecContext&, DType, const AdamWStepArgs&);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/optimizer.cpp
SgdStepFn sgd_step;
AdamWStepFn adamw_step;
}  // namespace cpu

namespace cuda {  // kernels/cuda/optimizer.cu
SgdStepFn sgd_step;
AdamWStepFn adamw_step;
}  // namespace cuda

}  // namespace scpn
