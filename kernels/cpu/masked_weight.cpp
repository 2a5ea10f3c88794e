// CPU masked-weight kernels (W_eff = M ⊙ W and the straight-through gradients).
#include "kernels/masked_weight.h"

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void masked_weight_forward(const ExecContext&, DType t, const MaskedWeightParams& p, const void* w, const void* mask,
                           void* w_eff) {
  with_float_type(t, "masked_weight_forward", [&](auto zero) {
    using T = decltype(zero);
    const T* ws = static_cast<const T*>(w);
    const T* m = static_cast<const T*>(mask);
    T* out = static_cast<T*>(w_eff);
#pragma omp parallel for if (p.filters * p.filter_size > kParallelGrain)
    for (int64_t f = 0; f < p.filters; ++f)
      for (int64_t j = 0; j < p.filter_size; ++j) {
        int64_t i = f * p.filter_size + j;
        out[i] = (p.per_filter ? m[f] : m[i]) * ws[i];
      }
  });
}

void masked_weight_backward(const ExecContext&, DType t, const MaskedWeightParams& p, const void* grad_eff,
                            const void* w, const void* score, const void* mask, void* grad_w, void* grad_score) {
  with_float_type(t, "masked_weight_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* g = static_cast<const T*>(grad_eff);
    const T* ws = static_cast<const T*>(w);
    const T* s = static_cast<const T*>(score);
    const T* m = static_cast<const T*>(mask);
    T* gw = static_cast<T*>(grad_w);
    T* gs = static_cast<T*>(grad_score);
    auto sign = [](T v) { return T((v > T(0)) - (v < T(0))); };
#pragma omp parallel for if (p.filters * p.filter_size > kParallelGrain)
    for (int64_t f = 0; f < p.filters; ++f) {
      double filter_sum = 0;
      for (int64_t j = 0; j < p.filter_size; ++j) {
        int64_t i = f * p.filter_size + j;
        if (gw) gw[i] = (p.per_filter ? m[f] : m[i]) * g[i];
        if (gs && !p.per_filter) gs[i] = sign(s[i]) * ws[i] * g[i];
        filter_sum += double(ws[i]) * double(g[i]);
      }
      if (gs && p.per_filter) gs[f] = sign(s[f]) * T(filter_sum);
    }
  });
}

}  // namespace scpn::cpu
