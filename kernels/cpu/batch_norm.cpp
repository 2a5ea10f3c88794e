// CPU batch norm (contract: kernels/batch_norm.h). One OpenMP task per channel for the statistics and the
// backward sums (each channel's values are n rows of hw contiguous elements); statistics and sums are
// accumulated in double, with the variance from a second pass over x - mean (no E[x²] - E[x]² cancellation).
#include "kernels/batch_norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {

// The start of row `n` of channel `c`: hw contiguous values.
template <class T>
inline T* channel_row(T* base, const BatchNormShape& s, int64_t n, int64_t c) {
  return base + (n * s.c + c) * s.hw;
}

// Row sums in double with kLanes independent partial sums, added in a fixed order at the end: the same
// result on every run, and the compiler can keep the partial sums in vector registers (one running sum
// is a chain of dependent additions, one element per add latency).
constexpr int kLanes = 8;

inline double add_lanes(const double (&acc)[kLanes]) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Σ row[i]
template <class T>
double row_sum(const T* row, int64_t hw) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= hw; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += double(row[i + l]);
  for (int l = 0; i < hw; ++i, ++l) acc[l] += double(row[i]);
  return add_lanes(acc);
}

// Σ (row[i] − mean)²
template <class T>
double row_squared_deviations(const T* row, int64_t hw, double mean) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= hw; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double d = double(row[i + l]) - mean;
      acc[l] += d * d;
    }
  for (int l = 0; i < hw; ++i, ++l) {
    const double d = double(row[i]) - mean;
    acc[l] += d * d;
  }
  return add_lanes(acc);
}

// Σ g[i] and Σ g[i]·(x[i] − mean), added to sum_g and sum_g_xmu; with a fused ReLU's output y, g[i] counts
// only where y[i] > 0.
template <bool Relu, class T>
inline T masked(const T* g, const T* y, int64_t i) {
  if constexpr (Relu) return y[i] > T(0) ? g[i] : T(0);
  return g[i];
}

template <bool Relu, class T>
void row_gradient_sums(const T* g, const T* x, const T* y, int64_t hw, double mean, double& sum_g,
                       double& sum_g_xmu) {
  double a[kLanes] = {}, b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= hw; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double gi = double(masked<Relu>(g, y, i + l));
      a[l] += gi;
      b[l] += gi * (double(x[i + l]) - mean);
    }
  for (int l = 0; i < hw; ++i, ++l) {
    const double gi = double(masked<Relu>(g, y, i));
    a[l] += gi;
    b[l] += gi * (double(x[i]) - mean);
  }
  sum_g += add_lanes(a);
  sum_g_xmu += add_lanes(b);
}

// Runs fn(first, end) on each thread's contiguous share of the channels. Every pass below walks its share
// image by image (n outer, channels inner), so each thread reads one contiguous stretch per image: walking
// a channel's N rows instead jumps C·H·W values per row, a new page per row at 7x7 and 4x4, and the
// hardware prefetcher follows none of it. Each channel's sums still run over n in order: the same result
// whatever the thread count.
template <class Fn>
void for_channel_shares(const BatchNormShape& s, Fn fn) {
#pragma omp parallel if (s.n * s.c * s.hw > kParallelGrain)
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t first = s.c * t / threads, end = s.c * (t + 1) / threads;
    if (first < end) fn(first, end);
  }
}

}  // namespace

namespace {

template <bool Relu>
void forward_train(DType t, const BatchNormShape& s, double eps, double momentum,
                              const void* x, const void* weight, const void* bias, void* running_mean,
                              void* running_var, void* y, void* save_mean, void* save_invstd) {
  with_float_type(t, Relu ? "batch_norm_relu_forward_train" : "batch_norm_forward_train", [&](auto zero) {
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
    for_channel_shares(s, [&](int64_t first, int64_t end) {
      std::vector<double> mean(size_t(end - first), 0.0), squares(size_t(end - first), 0.0);
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = first; c < end; ++c) mean[size_t(c - first)] += row_sum(channel_row(xs, s, n, c), s.hw);
      for (double& v : mean) v /= double(m);
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = first; c < end; ++c)
          squares[size_t(c - first)] += row_squared_deviations(channel_row(xs, s, n, c), s.hw, mean[size_t(c - first)]);
      // The per-element pass in T: (x − mean) is exact-ish where it matters (x near the mean), and f32
      // lanes are twice as many as double ones.
      std::vector<T> mean_t(size_t(end - first)), scale(size_t(end - first)), shift(size_t(end - first));
      for (int64_t c = first; c < end; ++c) {
        const size_t i = size_t(c - first);
        const double var = squares[i] / double(m);
        const double invstd = 1.0 / std::sqrt(var + eps);
        sm[c] = T(mean[i]);
        si[c] = T(invstd);
        if (rm && rv) {
          // PyTorch's convention: the running variance tracks the unbiased estimate.
          const double unbiased = var * double(m) / double(m - 1);
          rm[c] = T((1.0 - momentum) * double(rm[c]) + momentum * mean[i]);
          rv[c] = T((1.0 - momentum) * double(rv[c]) + momentum * unbiased);
        }
        mean_t[i] = T(mean[i]);
        scale[i] = T(invstd * (w ? double(w[c]) : 1.0));
        shift[i] = T(b ? double(b[c]) : 0.0);
      }
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = first; c < end; ++c) {
          const size_t i = size_t(c - first);
          const T* row = channel_row(xs, s, n, c);
          T* out = channel_row(ys, s, n, c);
          const T mu = mean_t[i], k = scale[i], beta = shift[i];
          if constexpr (Relu) {
            // As the relu op (kernels/common/elementwise_math.h): NaN becomes 0.
            for (int64_t e = 0; e < s.hw; ++e) {
              const T v = (row[e] - mu) * k + beta;
              out[e] = v > T(0) ? v : T(0);
            }
          } else {
            for (int64_t e = 0; e < s.hw; ++e) out[e] = (row[e] - mu) * k + beta;
          }
        }
    });
  });
}

}  // namespace

void batch_norm_forward_train(const ExecContext&, DType t, const BatchNormShape& s, double eps, double momentum,
                              const void* x, const void* weight, const void* bias, void* running_mean,
                              void* running_var, void* y, void* save_mean, void* save_invstd) {
  forward_train<false>(t, s, eps, momentum, x, weight, bias, running_mean, running_var, y, save_mean, save_invstd);
}

void batch_norm_relu_forward_train(const ExecContext&, DType t, const BatchNormShape& s, double eps,
                                   double momentum, const void* x, const void* weight, const void* bias,
                                   void* running_mean, void* running_var, void* y, void* save_mean,
                                   void* save_invstd) {
  forward_train<true>(t, s, eps, momentum, x, weight, bias, running_mean, running_var, y, save_mean, save_invstd);
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

namespace {

template <bool Relu>
void backward(DType t, const BatchNormShape& s, bool training, const void* x, const void* relu_y, const void* grad_y,
              const void* weight, const void* mean, const void* invstd, void* grad_x, void* grad_weight,
              void* grad_bias) {
  with_float_type(t, Relu ? "batch_norm_relu_backward" : "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    const T* gy = static_cast<const T*>(grad_y);
    const T* ys = static_cast<const T*>(relu_y);
    const T* w = static_cast<const T*>(weight);
    const T* mu = static_cast<const T*>(mean);
    const T* is = static_cast<const T*>(invstd);
    T* gx = static_cast<T*>(grad_x);
    T* gw = static_cast<T*>(grad_weight);
    T* gb = static_cast<T*>(grad_bias);
    const int64_t m = s.per_channel();
    // Eval-mode grad_x needs no sums: skip that pass when only grad_x is wanted.
    const bool need_sums = training || gw || gb;
    for_channel_shares(s, [&](int64_t first, int64_t end) {
      const size_t count = size_t(end - first);
      std::vector<double> sum_g(count, 0.0), sum_g_xmu(count, 0.0);  // Σg and Σg·(x - mean)
      if (need_sums) {
        for (int64_t n = 0; n < s.n; ++n)
          for (int64_t c = first; c < end; ++c)
            row_gradient_sums<Relu>(channel_row(gy, s, n, c), channel_row(xs, s, n, c),
                                    Relu ? channel_row(ys, s, n, c) : nullptr, s.hw, double(mu[c]),
                                    sum_g[size_t(c - first)], sum_g_xmu[size_t(c - first)]);
      }
      // gx = (g − g_mean)·scale − (x − mean)·k·scale, per element in T (as in the forward); training: the
      // gradient also flows through mean and var, xhat·Σ(g·xhat)/m = (x-mean)·k.
      std::vector<T> mean_t(count), g_scale(count), g_shift(count), x_scale(count);
      for (int64_t c = first; c < end; ++c) {
        const size_t i = size_t(c - first);
        const double invstd_c = double(is[c]);
        if (gb) gb[c] = T(sum_g[i]);
        if (gw) gw[c] = T(sum_g_xmu[i] * invstd_c);  // Σ g·xhat
        const double scale = invstd_c * (w ? double(w[c]) : 1.0);
        const double g_mean = training ? sum_g[i] / double(m) : 0.0;
        const double k = training ? sum_g_xmu[i] * invstd_c * invstd_c / double(m) : 0.0;
        mean_t[i] = mu[c];
        g_scale[i] = T(scale);
        g_shift[i] = T(-g_mean * scale);
        x_scale[i] = T(k * scale);
      }
      if (!gx) return;
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = first; c < end; ++c) {
          const size_t i = size_t(c - first);
          const T* xr = channel_row(xs, s, n, c);
          const T* gr = channel_row(gy, s, n, c);
          const T* yr = Relu ? channel_row(ys, s, n, c) : nullptr;
          T* out = channel_row(gx, s, n, c);
          const T mean_c = mean_t[i], a = g_scale[i], b = g_shift[i], k = x_scale[i];
          for (int64_t e = 0; e < s.hw; ++e) out[e] = masked<Relu>(gr, yr, e) * a + b - (xr[e] - mean_c) * k;
        }
    });
  });
}

}  // namespace

void batch_norm_backward(const ExecContext&, DType t, const BatchNormShape& s, bool training, double, const void* x,
                         const void* grad_y, const void* weight, const void* mean, const void* invstd,
                         void* grad_x, void* grad_weight, void* grad_bias) {
  backward<false>(t, s, training, x, nullptr, grad_y, weight, mean, invstd, grad_x, grad_weight, grad_bias);
}

void batch_norm_relu_backward(const ExecContext&, DType t, const BatchNormShape& s, const void* x, const void* y,
                              const void* grad_y, const void* weight, const void* mean, const void* invstd,
                              void* grad_x, void* grad_weight, void* grad_bias) {
  backward<true>(t, s, true, x, y, grad_y, weight, mean, invstd, grad_x, grad_weight, grad_bias);
}

}  // namespace scpn::cpu
