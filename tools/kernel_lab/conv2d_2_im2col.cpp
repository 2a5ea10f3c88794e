// Convolution variant 2, im2col + a cache-tiled GEMM. im2col lays every 3×3×C window out as a column of
// col [C·9, H·W], so one image's convolution is the matrix product y[n] [K, H·W] = w [K, C·9] · col.
// The product is tiled: a tile of kTileRows rows × kTileCols columns of col (128 KiB) stays in the L2
// cache while every filter k sweeps it, and the innermost loop runs along a row of col and of y — unit
// stride, which the compiler vectorises.
#include <algorithm>
#include <vector>

#include "tools/kernel_lab/conv2d.h"

namespace lab {

namespace {

constexpr int64_t kTileRows = 128, kTileCols = 256;

}  // namespace

void conv2d_2_im2col(const Conv2dProblem& p, float* y) {
  const int64_t C = p.C, H = p.H, W = p.W, HW = H * W, CRS = C * 9;
  std::vector<float> col(size_t(CRS * HW));
  for (int64_t n = 0; n < p.N; ++n) {
    // col[(c·3 + r)·3 + s][oh·W + ow] = x[n, c, oh + r − 1, ow + s − 1], 0 outside the image.
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t s = 0; s < 3; ++s) {
          float* row = col.data() + ((c * 3 + r) * 3 + s) * HW;
          const float* plane = p.x.data() + (n * C + c) * HW;
          for (int64_t oh = 0; oh < H; ++oh)
            for (int64_t ow = 0; ow < W; ++ow) {
              const int64_t ih = oh + r - 1, iw = ow + s - 1;
              row[oh * W + ow] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? plane[ih * W + iw] : 0.0f;
            }
        }

    float* yn = y + n * p.K * HW;
    std::fill(yn, yn + p.K * HW, 0.0f);
    for (int64_t j0 = 0; j0 < HW; j0 += kTileCols) {
      const int64_t j1 = std::min(HW, j0 + kTileCols);
      for (int64_t i0 = 0; i0 < CRS; i0 += kTileRows) {
        const int64_t i1 = std::min(CRS, i0 + kTileRows);
        for (int64_t k = 0; k < p.K; ++k) {
          float* yk = yn + k * HW;
          const float* wk = p.w.data() + k * CRS;
          for (int64_t i = i0; i < i1; ++i) {
            const float a = wk[i];
            const float* ci = col.data() + i * HW;
            for (int64_t j = j0; j < j1; ++j) yk[j] += a * ci[j];
          }
        }
      }
    }
  }
}

}  // namespace lab
