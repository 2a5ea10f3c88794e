// CPU pooling (contract: kernels/pool.h): max pooling with argmax indices and 1x1 adaptive average
// pooling. Every kernel is parallel over (n, c) planes, which are independent — so the max-pool backward
// scatter, where overlapping windows add into one input, needs no atomics.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void max_pool2d_forward(const ExecContext&, DType t, const MaxPool2dParams& p, const void* x, void* y,
                        int32_t* indices) {
  with_float_type(t, "max_pool2d_forward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for if (planes * out_plane * p.kernel_h * p.kernel_w > kParallelGrain)
    for (int64_t q = 0; q < planes; ++q) {
      const T* xp = static_cast<const T*>(x) + q * in_plane;
      T* yp = static_cast<T*>(y) + q * out_plane;
      int32_t* ip = indices + q * out_plane;
      for (int64_t oh = 0; oh < p.out_h; ++oh) {
        // The window clipped to the image: padded positions are -inf and can never win.
        const int64_t h0 = oh * p.stride_h - p.pad_h;
        const int64_t h_begin = std::max<int64_t>(h0, 0), h_end = std::min(h0 + p.kernel_h, p.h);
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          const int64_t w0 = ow * p.stride_w - p.pad_w;
          const int64_t w_begin = std::max<int64_t>(w0, 0), w_end = std::min(w0 + p.kernel_w, p.w);
          // Start from the window's first real value (not -inf), so an all -inf window still has an index.
          int64_t best_index = h_begin * p.w + w_begin;
          T best = xp[best_index];
          bool found_nan = std::isnan(best);
          for (int64_t ih = h_begin; ih < h_end && !found_nan; ++ih) {
            for (int64_t iw = w_begin; iw < w_end; ++iw) {
              const T v = xp[ih * p.w + iw];
              if (std::isnan(v)) {  // NaN propagates, as in PyTorch
                best = v;
                best_index = ih * p.w + iw;
                found_nan = true;
                break;
              }
              if (v > best) {
                best = v;
                best_index = ih * p.w + iw;
              }
            }
          }
          yp[oh * p.out_w + ow] = best;
          ip[oh * p.out_w + ow] = int32_t(best_index);
        }
      }
    }
  });
}

void max_pool2d_backward(const ExecContext&, DType t, const MaxPool2dParams& p, const void* grad_y,
                         const int32_t* indices, void* grad_x) {
  with_float_type(t, "max_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for if (planes * (in_plane + out_plane) > kParallelGrain)
    for (int64_t q = 0; q < planes; ++q) {
      T* gx = static_cast<T*>(grad_x) + q * in_plane;
      const T* gy = static_cast<const T*>(grad_y) + q * out_plane;
      const int32_t* ip = indices + q * out_plane;
      std::fill(gx, gx + in_plane, T(0));
      for (int64_t o = 0; o < out_plane; ++o) gx[ip[o]] += gy[o];
    }
  });
}

void avg_pool_1x1_forward(const ExecContext&, DType t, int64_t planes, int64_t hw, const void* x, void* y) {
  with_float_type(t, "avg_pool_1x1_forward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
#pragma omp parallel for if (planes * hw > kParallelGrain)
    for (int64_t q = 0; q < planes; ++q) {
      const T* xp = xs + q * hw;
      double sum = 0;
      for (int64_t i = 0; i < hw; ++i) sum += double(xp[i]);
      ys[q] = T(sum / double(hw));
    }
  });
}

void avg_pool_1x1_backward(const ExecContext&, DType t, int64_t planes, int64_t hw, const void* grad_y,
                           void* grad_x) {
  with_float_type(t, "avg_pool_1x1_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* gy = static_cast<const T*>(grad_y);
    T* gx = static_cast<T*>(grad_x);
#pragma omp parallel for if (planes * hw > kParallelGrain)
    for (int64_t q = 0; q < planes; ++q) {
      const T share = T(double(gy[q]) / double(hw));
      std::fill(gx + q * hw, gx + (q + 1) * hw, share);
    }
  });
}

}  // namespace scpn::cpu
