// CPU optimizer kernels: SGD and AdamW updates over a list of contiguous tensors (kernels/optimizer.h).
// Arithmetic runs in the tensor's own type, as a GPU kernel would; the order of operations follows
// PyTorch's single-tensor implementations so results match it to rounding.
#include "kernels/optimizer.h"

#include <cmath>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {

template <class T>
void sgd_tensor(const SgdStepArgs& a, const SgdTensor& t) {
  T* p = static_cast<T*>(t.param);
  const T* grad = static_cast<const T*>(t.grad);
  T* buf = static_cast<T*>(t.momentum_buffer);
  const T lr = T(a.lr), wd = T(a.weight_decay), momentum = T(a.momentum), keep = T(1.0 - a.dampening);
  const bool decay = a.weight_decay != 0, nesterov = a.nesterov, first = t.first_step;
  const int64_t n = t.n;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g = g + wd * p[i];
    if (buf) {
      T b = first ? g : momentum * buf[i] + keep * g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    p[i] = p[i] - lr * g;
  }
}

template <class T>
void adamw_tensor(const AdamWStepArgs& a, const AdamWTensor& t) {
  T* p = static_cast<T*>(t.param);
  const T* grad = static_cast<const T*>(t.grad);
  T* m = static_cast<T*>(t.exp_avg);
  T* v = static_cast<T*>(t.exp_avg_sq);
  // Scalars in double, then rounded once to T: bias corrections lose nothing to float pow.
  const double bias1 = 1.0 - std::pow(a.beta1, double(t.step));
  const double bias2 = 1.0 - std::pow(a.beta2, double(t.step));
  const T shrink = T(1.0 - a.lr * a.weight_decay);
  const T b1 = T(a.beta1), b2 = T(a.beta2), one_b1 = T(1.0 - a.beta1), one_b2 = T(1.0 - a.beta2);
  const T step_size = T(a.lr / bias1), bias2_sqrt = T(std::sqrt(bias2)), eps = T(a.eps);
  const bool decay = a.weight_decay != 0;
  const int64_t n = t.n;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    T pi = decay ? p[i] * shrink : p[i];
    T mi = b1 * m[i] + one_b1 * g;
    T vi = b2 * v[i] + one_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (std::sqrt(vi) / bias2_sqrt + eps));
  }
}

}  // namespace

void sgd_step(const ExecContext&, DType dtype, const SgdStepArgs& args) {
  with_float_type(dtype, "sgd_step", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t k = 0; k < args.count; ++k) sgd_tensor<T>(args, args.tensors[k]);
  });
}

void adamw_step(const ExecContext&, DType dtype, const AdamWStepArgs& args) {
  with_float_type(dtype, "adamw_step", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t k = 0; k < args.count; ++k) adamw_tensor<T>(args, args.tensors[k]);
  });
}

}  // namespace scpn::cpu
