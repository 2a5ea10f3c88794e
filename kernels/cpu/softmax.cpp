// CPU log-softmax over the rows of an [N, C] matrix, forward and backward (contract: kernels/softmax.h).
// One row per loop iteration, rows in parallel; sums accumulate in double.
#include "kernels/softmax.h"

#include <cmath>

#include "kernels/common/logsumexp.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void log_softmax_forward(const ExecContext&, DType t, const SoftmaxParams& p, const void* x, void* y) {
  with_float_type(t, "log_softmax_forward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
#pragma omp parallel for if (p.rows * p.cols > kParallelGrain)
    for (int64_t r = 0; r < p.rows; ++r) {
      const T* xr = xs + r * p.cols;
      T* yr = ys + r * p.cols;
      double lse = row_logsumexp(xr, p.cols);
      for (int64_t c = 0; c < p.cols; ++c) yr[c] = T(double(xr[c]) - lse);
    }
  });
}

void log_softmax_backward(const ExecContext&, DType t, const SoftmaxParams& p, const void* y, const void* gy,
                          void* gx) {
  with_float_type(t, "log_softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* ys = static_cast<const T*>(y);
    const T* gys = static_cast<const T*>(gy);
    T* gxs = static_cast<T*>(gx);
#pragma omp parallel for if (p.rows * p.cols > kParallelGrain)
    for (int64_t r = 0; r < p.rows; ++r) {
      const T* yr = ys + r * p.cols;
      const T* gr = gys + r * p.cols;
      T* out = gxs + r * p.cols;
      double gsum = 0;
      for (int64_t c = 0; c < p.cols; ++c) gsum += double(gr[c]);
      for (int64_t c = 0; c < p.cols; ++c) out[c] = T(double(gr[c]) - std::exp(double(yr[c])) * gsum);
    }
  });
}

}  // namespace scpn::cpu
