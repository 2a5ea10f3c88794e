// CPU row-wise L2 normalisation with a clamped norm, forward and backward (contract: kernels/l2_normalize.h).
// Rows run in parallel; dot products and norms accumulate in double.
#include "kernels/l2_normalize.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void l2_normalize_forward(const ExecContext&, DType t, const L2NormalizeParams& p, const void* x, void* y,
                          void* norm) {
  with_float_type(t, "l2_normalize_forward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    T* norms = static_cast<T*>(norm);
#pragma omp parallel for if (p.rows * p.cols > kParallelGrain)
    for (int64_t n = 0; n < p.rows; ++n) {
      const T* xr = xs + n * p.cols;
      T* yr = ys + n * p.cols;
      double sq = 0;
      for (int64_t d = 0; d < p.cols; ++d) sq += double(xr[d]) * double(xr[d]);
      // Rounded to T before use, so the forward and the backward test the same norm against eps.
      norms[n] = T(std::sqrt(sq));
      double row_norm = double(norms[n]);
      double inv = 1.0 / std::max(row_norm, p.eps);
      for (int64_t d = 0; d < p.cols; ++d) yr[d] = T(double(xr[d]) * inv);
    }
  });
}

void l2_normalize_backward(const ExecContext&, DType t, const L2NormalizeParams& p, const void* y,
                           const void* norm, const void* gy, void* gx) {
  with_float_type(t, "l2_normalize_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* ys = static_cast<const T*>(y);
    const T* norms = static_cast<const T*>(norm);
    const T* gys = static_cast<const T*>(gy);
    T* gxs = static_cast<T*>(gx);
#pragma omp parallel for if (p.rows * p.cols > kParallelGrain)
    for (int64_t n = 0; n < p.rows; ++n) {
      const T* yr = ys + n * p.cols;
      const T* gr = gys + n * p.cols;
      T* out = gxs + n * p.cols;
      double row_norm = double(norms[n]);
      if (row_norm >= p.eps) {
        // d(x/‖x‖) = (I − y yᵀ)/‖x‖: remove the component of gy along y, then scale.
        double dot = 0;
        for (int64_t d = 0; d < p.cols; ++d) dot += double(yr[d]) * double(gr[d]);
        for (int64_t d = 0; d < p.cols; ++d) out[d] = T((double(gr[d]) - double(yr[d]) * dot) / row_norm);
      } else {
        for (int64_t d = 0; d < p.cols; ++d) out[d] = T(double(gr[d]) / p.eps);
      }
    }
  });
}

}  // namespace scpn::cpu
