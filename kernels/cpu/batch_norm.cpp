// CPU batch norm (contract: kernels/batch_norm.h). One OpenMP task per channel for the statistics and the
// backward sums (each channel's values are n rows of hw contiguous elements); statistics and sums are
// accumulated in double, with the variance from a second pass over x - mean (no E[x²] - E[x]² cancellation).
#include "kernels/batch_norm.h"

#include <cmath>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {

// The start of row `n` of channel `c`: hw contiguous values.
template <class T>
inline T* channel_row(T* base, const BatchNormShape& s, int64_t n, int64_t c) {
  return base + (n * s.c + c) * s.hw;
}

}  // namespace

void batch_norm_forward_train(const ExecContext&, DType t, const BatchNormShape& s, double eps, double momentum,
                              const void* x, const void* weight, const void* bias, void* running_mean,
                              void* running_var, void* y, void* save_mean, void* save_invstd) {
  with_float_type(t, "batch_norm_forward_train", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    const T* w = static_cast<const T*>(weight);
    const T* b = static_cast<const T*>(bias);
    T* rm = static_cast<T*>(running_mean);
    T* rv = static_cast<T*>(running_var);
    T* ys = static_cast<T*>(y);
    T* sm = static_cast<T*>(save_mean);
    T* si = static_cast<T*>(save_invstd);
    const int64_t m = s.per_channel();
#pragma omp parallel for if (s.n * s.c * s.hw > kParallelGrain)
    for (int64_t c = 0; c < s.c; ++c) {
      double sum = 0;
      for (int64_t n = 0; n < s.n; ++n) {
        const T* row = channel_row(xs, s, n, c);
        for (int64_t i = 0; i < s.hw; ++i) sum += double(row[i]);
      }
      const double mean = sum / double(m);
      double squares = 0;
      for (int64_t n = 0; n < s.n; ++n) {
        const T* row = channel_row(xs, s, n, c);
        for (int64_t i = 0; i < s.hw; ++i) {
          double d = double(row[i]) - mean;
          squares += d * d;
        }
      }
      const double var = squares / double(m);
      const double invstd = 1.0 / std::sqrt(var + eps);
      sm[c] = T(mean);
      si[c] = T(invstd);
      if (rm && rv) {
        // PyTorch's convention: the running variance tracks the unbiased estimate.
        const double unbiased = var * double(m) / double(m - 1);
        rm[c] = T((1.0 - momentum) * double(rm[c]) + momentum * mean);
        rv[c] = T((1.0 - momentum) * double(rv[c]) + momentum * unbiased);
      }
      const double scale = invstd * (w ? double(w[c]) : 1.0);
      const double shift = b ? double(b[c]) : 0.0;
      for (int64_t n = 0; n < s.n; ++n) {
        const T* row = channel_row(xs, s, n, c);
        T* out = channel_row(ys, s, n, c);
        for (int64_t i = 0; i < s.hw; ++i) out[i] = T((double(row[i]) - mean) * scale + shift);
      }
    }
  });
}

void batch_norm_forward_eval(const ExecContext&, DType t, const BatchNormShape& s, double eps, const void* x,
                             const void* weight, const void* bias, const void* running_mean,
                             const void* running_var, void* y, void* save_mean, void* save_invstd) {
  with_float_type(t, "batch_norm_forward_eval", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    const T* w = static_cast<const T*>(weight);
    const T* b = static_cast<const T*>(bias);
    const T* rm = static_cast<const T*>(running_mean);
    const T* rv = static_cast<const T*>(running_var);
    T* ys = static_cast<T*>(y);
    T* sm = static_cast<T*>(save_mean);
    T* si = static_cast<T*>(save_invstd);
    for (int64_t c = 0; c < s.c; ++c) {
      const double invstd = 1.0 / std::sqrt(double(rv[c]) + eps);
      if (sm) sm[c] = rm[c];
      if (si) si[c] = T(invstd);
    }
    // Rows of (n, c) are independent here: parallelise over all of them, not just the channels.
    const int64_t rows = s.n * s.c;
#pragma omp parallel for if (rows * s.hw > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t c = r % s.c;
      const double mean = double(rm[c]);
      const double scale = (w ? double(w[c]) : 1.0) / std::sqrt(double(rv[c]) + eps);
      const double shift = b ? double(b[c]) : 0.0;
      const T* row = xs + r * s.hw;
      T* out = ys + r * s.hw;
      for (int64_t i = 0; i < s.hw; ++i) out[i] = T((double(row[i]) - mean) * scale + shift);
    }
  });
}

void batch_norm_backward(const ExecContext&, DType t, const BatchNormShape& s, bool training, double, const void* x,
                         const void* grad_y, const void* weight, const void* mean, const void* invstd,
                         void* grad_x, void* grad_weight, void* grad_bias) {
  with_float_type(t, "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    const T* gy = static_cast<const T*>(grad_y);
    const T* w = static_cast<const T*>(weight);
    const T* mu = static_cast<const T*>(mean);
    const T* is = static_cast<const T*>(invstd);
    T* gx = static_cast<T*>(grad_x);
    T* gw = static_cast<T*>(grad_weight);
    T* gb = static_cast<T*>(grad_bias);
    const int64_t m = s.per_channel();
    // Eval-mode grad_x needs no sums: skip that pass when only grad_x is wanted.
    const bool need_sums = training || gw || gb;
#pragma omp parallel for if (s.n * s.c * s.hw > kParallelGrain)
    for (int64_t c = 0; c < s.c; ++c) {
      const double mean_c = double(mu[c]);
      const double invstd_c = double(is[c]);
      double sum_g = 0, sum_g_xmu = 0;  // Σg and Σg·(x - mean)
      if (need_sums) {
        for (int64_t n = 0; n < s.n; ++n) {
          const T* xr = channel_row(xs, s, n, c);
          const T* gr = channel_row(gy, s, n, c);
          for (int64_t i = 0; i < s.hw; ++i) {
            sum_g += double(gr[i]);
            sum_g_xmu += double(gr[i]) * (double(xr[i]) - mean_c);
          }
        }
      }
      if (gb) gb[c] = T(sum_g);
      if (gw) gw[c] = T(sum_g_xmu * invstd_c);  // Σ g·xhat
      if (!gx) continue;
      const double scale = invstd_c * (w ? double(w[c]) : 1.0);
      // Training: the gradient also flows through mean and var; xhat·Σ(g·xhat)/m = (x-mean)·k with k below.
      const double g_mean = training ? sum_g / double(m) : 0.0;
      const double k = training ? sum_g_xmu * invstd_c * invstd_c / double(m) : 0.0;
      for (int64_t n = 0; n < s.n; ++n) {
        const T* xr = channel_row(xs, s, n, c);
        const T* gr = channel_row(gy, s, n, c);
        T* out = channel_row(gx, s, n, c);
        for (int64_t i = 0; i < s.hw; ++i)
          out[i] = T((double(gr[i]) - g_mean - (double(xr[i]) - mean_c) * k) * scale);
      }
    }
  });
}

}  // namespace scpn::cpu
