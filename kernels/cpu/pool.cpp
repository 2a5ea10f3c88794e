// CPU pooling (contract: kernels/pool.h): max pooling with argmax indices and 1x1 adaptive average
// pooling. Every kernel is parallel over (n, c) planes, which are independent — so the max-pool backward
// scatter, where overlapping windows add into one input, needs no atomics.
#include "kernels/pool.h"

#include <algorithm>

#include "kernels/common/max_pool_window.h"
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
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          // Tie and NaN rules live in the shared window scan (kernels/common/max_pool_window.h).
          const WindowMax<T> best = max_pool_window(xp, p, oh, ow);
          yp[oh * p.out_w + ow] = best.value;
          ip[oh * p.out_w + ow] = int32_t(best.index);
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
