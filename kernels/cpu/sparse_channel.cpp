// CPU sparse-channel kernels: gathers of kept channels and the scatters of their gradients
// (contract: kernels/sparse_channel.h).
#include "kernels/sparse_channel.h"

#include <cstring>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void gather_channels(const ExecContext&, DType t, const ChannelSelection& s, const int32_t* kept_index,
                     const void* dense, void* compact) {
  with_float_type(t, "gather_channels", [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(dense);
    T* dst = static_cast<T*>(compact);
#pragma omp parallel for collapse(2) if (s.compact_numel() > kParallelGrain)
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t j = 0; j < s.kept; ++j)
        std::memcpy(dst + (o * s.kept + j) * s.inner, src + (o * s.channels + kept_index[j]) * s.inner,
                    size_t(s.inner) * sizeof(T));
  });
}

void scatter_channels(const ExecContext&, DType t, const ChannelSelection& s, const int32_t* kept_index,
                      const void* compact, double others_scale, void* dense) {
  with_float_type(t, "scatter_channels", [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(compact);
    T* dst = static_cast<T*>(dense);
    const T scale = T(others_scale);
#pragma omp parallel for if (s.dense_numel() > kParallelGrain)
    for (int64_t o = 0; o < s.outer; ++o) {
      // Every channel scaled first, then the kept ones overwritten: any order of the index works, as on CUDA.
      T* dense_o = dst + o * s.channels * s.inner;
      const size_t plane = size_t(s.channels * s.inner);
      if (scale == T(0)) {
        std::memset(dense_o, 0, plane * sizeof(T));  // also clears a NaN the dense slot held
      } else if (scale != T(1)) {
        for (size_t i = 0; i < plane; ++i) dense_o[i] *= scale;
      }
      for (int64_t j = 0; j < s.kept; ++j)
        std::memcpy(dense_o + kept_index[j] * s.inner, src + (o * s.kept + j) * s.inner, size_t(s.inner) * sizeof(T));
    }
  });
}

void kept_filters_backward(const ExecContext&, DType t, const KeptFilterShape& s, const int32_t* kept_index,
                           const void* grad_compact, const void* weight, const void* score, void* grad_weight,
                           void* grad_score) {
  with_float_type(t, "kept_filters_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* g = static_cast<const T*>(grad_compact);
    const T* w = static_cast<const T*>(weight);
    const T* sc = static_cast<const T*>(score);
    T* gw = static_cast<T*>(grad_weight);
    T* gs = static_cast<T*>(grad_score);
    const size_t row_bytes = size_t(s.filter_size) * sizeof(T);
    if (gw) std::memset(gw, 0, size_t(s.filters) * row_bytes);
    if (gs) std::memset(gs, 0, size_t(s.filters) * sizeof(T));
#pragma omp parallel for if (s.kept * s.filter_size > kParallelGrain)
    for (int64_t j = 0; j < s.kept; ++j) {
      const int64_t f = kept_index[j];
      const T* gj = g + j * s.filter_size;
      if (gw) std::memcpy(gw + f * s.filter_size, gj, row_bytes);
      if (!gs) continue;
      double filter_sum = 0;
      for (int64_t i = 0; i < s.filter_size; ++i) filter_sum += double(w[f * s.filter_size + i]) * double(gj[i]);
      const T sign = T((sc[f] > T(0)) - (sc[f] < T(0)));
      gs[f] = sign * T(filter_sum);
    }
  });
}

}  // namespace scpn::cpu
