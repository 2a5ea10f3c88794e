// Convolution variant 1, direct loops: the definition, one output at a time, a bounds test on every term.
// Each output reads its 3×3×C window with strides of a whole plane between channels, and the innermost
// loop is three terms long: nothing for the compiler to vectorise.
#include "tools/kernel_lab/conv2d.h"

namespace lab {

void conv2d_1_direct(const Conv2dProblem& p, float* y) {
  const int64_t C = p.C, H = p.H, W = p.W;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k)
      for (int64_t oh = 0; oh < H; ++oh)
        for (int64_t ow = 0; ow < W; ++ow) {
          float sum = 0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < 3; ++r)
              for (int64_t s = 0; s < 3; ++s) {
                const int64_t ih = oh + r - 1, iw = ow + s - 1;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                sum += p.x[size_t(((n * C + c) * H + ih) * W + iw)] * p.w[size_t(((k * C + c) * 3 + r) * 3 + s)];
              }
          y[((n * p.K + k) * H + oh) * W + ow] = sum;
        }
}

}  // namespace lab
