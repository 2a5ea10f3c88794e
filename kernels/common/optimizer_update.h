// The per-element SGD and AdamW updates of kernels/optimizer.h, shared by the CPU loop
// (kernels/cpu/optimizer.cpp) and the fused CUDA kernel (kernels/cuda/optimizer.cu), so the CPU tests
// check the arithmetic both run. Hyper-parameters are rounded to the tensor's type once, on the host.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/optimizer.h"

namespace scpn {

// ---- SGD --------------------------------------------------------------------------------------------

template <class T>
struct SgdScalars {
  T lr, weight_decay, momentum, keep;  // keep = 1 − dampening
  bool decay, nesterov;
};

template <class T>
inline SgdScalars<T> sgd_scalars(const SgdStepArgs& a) {
  return {T(a.lr), T(a.weight_decay), T(a.momentum), T(1.0 - a.dampening), a.weight_decay != 0, a.nesterov};
}

// Returns the updated parameter. `buf` points at this element's momentum buffer, or is null without
// momentum; on a tensor's first step it holds garbage and is not read (PyTorch's buf = g).
template <class T>
SCPN_HD T sgd_element(const SgdScalars<T>& s, bool first_step, T p, T grad, T* buf) {
  T g = grad;
  if (s.decay) g = g + s.weight_decay * p;
  if (buf) {
    const T b = first_step ? g : s.momentum * *buf + s.keep * g;
    *buf = b;
    g = s.nesterov ? g + s.momentum * b : b;
  }
  return p - s.lr * g;
}

// ---- AdamW ------------------------------------------------------------------------------------------

template <class T>
struct AdamWScalars {
  T shrink;                  // 1 − lr·weight_decay
  T b1, b2, one_b1, one_b2;  // beta1, beta2, 1 − beta1, 1 − beta2
  T step_size;               // lr / (1 − beta1^t)
  T bias2_sqrt;              // sqrt(1 − beta2^t)
  T eps;
  bool decay;
};

// Scalars in double, then rounded once to T: the bias corrections lose nothing to float pow.
template <class T>
inline AdamWScalars<T> adamw_scalars(const AdamWStepArgs& a, int64_t step) {
  const double bias1 = 1.0 - std::pow(a.beta1, double(step));
  const double bias2 = 1.0 - std::pow(a.beta2, double(step));
  return {T(1.0 - a.lr * a.weight_decay),
          T(a.beta1),
          T(a.beta2),
          T(1.0 - a.beta1),
          T(1.0 - a.beta2),
          T(a.lr / bias1),
          T(std::sqrt(bias2)),
          T(a.eps),
          a.weight_decay != 0};
}

// Updates one element's parameter p and moments m, v in place, in the order of PyTorch's
// single-tensor AdamW (decay first, then p − step_size · m / (sqrt(v)/sqrt(bias2) + eps)).
template <class T>
SCPN_HD void adamw_element(const AdamWScalars<T>& s, T grad, T& p, T& m, T& v) {
  const T decayed = s.decay ? p * s.shrink : p;
  const T mi = s.b1 * m + s.one_b1 * grad;
  const T vi = s.b2 * v + s.one_b2 * grad * grad;
  m = mi;
  v = vi;
  p = decayed - s.step_size * (mi / (std::sqrt(vi) / s.bias2_sqrt + s.eps));
}

}  // namespace scpn
