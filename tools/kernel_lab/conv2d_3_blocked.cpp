// Convolution variants 3 and 4, a register-blocked GEMM on packed panels. Variant 2's inner loop loads and
// stores a row of y for every single multiply-add; here a block of kMR filters × kNR output positions is
// summed in registers over the whole C·9 reduction and stored once. Per reduction step the micro-kernel
// loads kNR values of col and kMR of w and does kMR·kNR multiply-adds: with 8 × 16, 128 FMAs for 24 loads.
// To make those loads contiguous both operands are packed:
//   wp[panel][i][m] = w[panel·kMR + m][i]   (kMR filters side by side, zero rows past K), once;
//   cp[i][l] = col[i][panel·kNR + l]        (one panel of im2col, zero past H·W), just before its use,
// so the micro-kernel has no edge cases at all, and a column panel (C·9·kNR floats: 36 KiB at C = 64) is
// packed into the L1/L2 cache and used there by every filter panel before the next one is packed.
// Variant 4 gives each thread its own panels (and its own packing buffer).
#include <algorithm>
#include <cstring>
#include <vector>

#include "tools/kernel_lab/conv2d.h"

namespace lab {

namespace {

constexpr int64_t kMR = 8, kNR = 16;

int64_t panels(int64_t size, int64_t width) { return (size + width - 1) / width; }

std::vector<float> pack_filters(const Conv2dProblem& p) {
  const int64_t CRS = p.C * 9;
  std::vector<float> wp(size_t(panels(p.K, kMR) * kMR * CRS), 0.0f);
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t i = 0; i < CRS; ++i) wp[size_t(((k / kMR) * CRS + i) * kMR + k % kMR)] = p.w[size_t(k * CRS + i)];
  return wp;
}

// Column panel jp of image n's im2col into cp [C·9][kNR]. Packing is not free: each packed value feeds
// only K multiply-adds, so it must not cost a bounds test per value. The panel's output positions are
// split into runs along one output row; for a run, tap (c, r, s) is one contiguous stretch of an input
// row, with only its ends (the padding) left at zero.
void pack_panel(const Conv2dProblem& p, int64_t n, int64_t jp, float* cp) {
  const int64_t H = p.H, W = p.W, HW = H * W;
  std::fill(cp, cp + p.C * 9 * kNR, 0.0f);
  for (int64_t l0 = 0; l0 < kNR && jp * kNR + l0 < HW;) {
    const int64_t j = jp * kNR + l0, oh = j / W, ow0 = j % W;
    const int64_t run = std::min({kNR - l0, W - ow0, HW - j});
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < 3; ++r) {
        const int64_t ih = oh + r - 1;
        if (ih < 0 || ih >= H) continue;
        const float* in = p.x.data() + ((n * p.C + c) * H + ih) * W;
        for (int64_t s = 0; s < 3; ++s) {
          // Lane l0 + t reads column ow0 + t + s − 1, inside the row for t in [lo, hi).
          const int64_t lo = std::max<int64_t>(0, 1 - s - ow0), hi = std::min(run, W + 1 - s - ow0);
          float* out = cp + ((c * 3 + r) * 3 + s) * kNR + l0;
          for (int64_t t = lo; t < hi; ++t) out[t] = in[ow0 + t + s - 1];
        }
      }
    l0 += run;
  }
}

// kNR floats as one value (GCC's vector extension): one 512-bit register, or two 256-bit ones.
using Floats16 = float __attribute__((vector_size(64)));
static_assert(sizeof(Floats16) == kNR * sizeof(float));

// acc[m][l] = Σᵢ wp[i][m] · cp[i][l]: the kMR rows of sums stay in vector registers for the whole
// reduction; each step loads one row of cp and multiplies it by kMR broadcast weights.
void micro_kernel(const float* wp, const float* cp, int64_t CRS, float (&acc)[kMR][kNR]) {
  Floats16 sum[kMR] = {};
  for (int64_t i = 0; i < CRS; ++i) {
    Floats16 b;
    std::memcpy(&b, cp + i * kNR, sizeof b);
    const float* a = wp + i * kMR;
#pragma GCC unroll 8
    for (int64_t m = 0; m < kMR; ++m) sum[m] += a[m] * b;
  }
  std::memcpy(acc, sum, sizeof sum);
}

// Column panel jp of image n for every filter panel: the micro-kernel, then the valid part into y.
void panel(const Conv2dProblem& p, int64_t n, int64_t jp, const float* wp, const float* cp, float* y) {
  const int64_t CRS = p.C * 9, HW = p.H * p.W;
  for (int64_t kp = 0; kp < panels(p.K, kMR); ++kp) {
    float acc[kMR][kNR];
    micro_kernel(wp + kp * kMR * CRS, cp, CRS, acc);
    for (int64_t m = 0; m < kMR && kp * kMR + m < p.K; ++m)
      for (int64_t l = 0; l < kNR && jp * kNR + l < HW; ++l)
        y[(n * p.K + kp * kMR + m) * HW + jp * kNR + l] = acc[m][l];
  }
}

}  // namespace

void conv2d_3_blocked(const Conv2dProblem& p, float* y) {
  const std::vector<float> wp = pack_filters(p);
  std::vector<float> cp(size_t(p.C * 9 * kNR));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t jp = 0; jp < panels(p.H * p.W, kNR); ++jp) {
      pack_panel(p, n, jp, cp.data());
      panel(p, n, jp, wp.data(), cp.data(), y);
    }
}

void conv2d_4_threads(const Conv2dProblem& p, float* y) {
  const std::vector<float> wp = pack_filters(p);
  const int64_t column_panels = panels(p.H * p.W, kNR);
#pragma omp parallel
  {
    std::vector<float> cp(size_t(p.C * 9 * kNR));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t jp = 0; jp < column_panels; ++jp) {
        pack_panel(p, n, jp, cp.data());
        panel(p, n, jp, wp.data(), cp.data(), y);
      }
  }
}

}  // namespace lab
