// CPU optimizer kernels: SGD and AdamW updates over a list of contiguous tensors (kernels/optimizer.h).
// Arithmetic runs in the tensor's own type, as a GPU kernel would; the order of operations follows
// PyTorch's single-tensor implementations so results match it to rounding.
#include "kernels/optimizer.h"

#include "kernels/common/optimizer_update.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {

// The element updates are shared with the CUDA kernel (kernels/common/optimizer_update.h).
template <class T>
void sgd_tensor(const SgdStepArgs& a, const SgdTensor& t) {
  T* p = static_cast<T*>(t.param);
  const T* grad = static_cast<const T*>(t.grad);
  T* buf = static_cast<T*>(t.momentum_buffer);
  const SgdScalars<T> s = sgd_scalars<T>(a);
  const bool first = t.first_step;
  const int64_t n = t.n;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) p[i] = sgd_element(s, first, p[i], grad[i], buf ? buf + i : nullptr);
}

template <class T>
void adamw_tensor(const AdamWStepArgs& a, const AdamWTensor& t) {
  T* p = static_cast<T*>(t.param);
  const T* grad = static_cast<const T*>(t.grad);
  T* m = static_cast<T*>(t.exp_avg);
  T* v = static_cast<T*>(t.exp_avg_sq);
  const AdamWScalars<T> s = adamw_scalars<T>(a, t.step);
  const int64_t n = t.n;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) adamw_element(s, grad[i], p[i], m[i], v[i]);
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
