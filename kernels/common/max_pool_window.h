// The maximum of one max-pooling window and where it is, shared by the CPU and CUDA max_pool2d forward
// (kernels/cpu/pool.cpp, kernels/cuda/pool.cu), so both follow one tie rule and one NaN rule; the CPU
// pool tests check it, the family's device parity (tests/ops/test_pool.cpp, gpu/pool) checks the launch around it.
#pragma once
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/pool.h"

namespace scpn {

template <class T>
struct WindowMax {
  T value;
  int64_t index;  // ih·w + iw inside the plane
};

// Window (oh, ow) of one [h, w] plane, clipped to the image (padding is -inf and never wins). The scan
// starts from the window's first real value rather than -inf, so a window of -inf values still names
// one of them; only a strictly larger value replaces the best, so ties keep the first in row-major
// order; the first NaN wins at once (NaN propagates, as in PyTorch). `v != v` is the NaN test that
// reads the same in host and device code.
template <class T>
SCPN_HD WindowMax<T> max_pool_window(const T* plane, const MaxPool2dParams& p, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  const int64_t h_begin = h0 > 0 ? h0 : 0, h_end = h0 + p.kernel_h < p.h ? h0 + p.kernel_h : p.h;
  const int64_t w_begin = w0 > 0 ? w0 : 0, w_end = w0 + p.kernel_w < p.w ? w0 + p.kernel_w : p.w;
  WindowMax<T> best{plane[h_begin * p.w + w_begin], h_begin * p.w + w_begin};
  if (best.value != best.value) return best;
  for (int64_t ih = h_begin; ih < h_end; ++ih) {
    for (int64_t iw = w_begin; iw < w_end; ++iw) {
      const T v = plane[ih * p.w + iw];
      if (v != v) return {v, ih * p.w + iw};
      if (v > best.value) best = {v, ih * p.w + iw};
    }
  }
  return best;
}

}  // namespace scpn
