// Direct 3x3 pad-1 convolution (kernels/cpu/conv2d_direct.h).
//
// Why: on the narrow images of small-image ResNets (28x28, 14x14, 7x7 with 16-64 channels) im2col + GEMM
// writes a column matrix nine times the input and reads it back, and with so few output channels each of
// its elements feeds only 16-64 multiply-adds: the convolution then runs at the speed of memory, not of
// the FMA units. Here an output row of MR channels lives in MR·NV vector registers for the whole sum over
// input channels and taps; each tap is an unaligned load of an input row from a zero-padded copy of the
// image (a few tens of KiB, in L1/L2), broadcast-multiplied by MR weights. Per tap: NV loads, MR weight
// broadcasts, MR·NV FMAs. The data gradient at stride 1 is the same kernel on rotated weights; at stride 2
// the input channels go in the lanes. The filter gradient keeps one vector sum per filter and tap: along
// the rows for few filters and wide rows, otherwise with the filters in the lanes.
#include "kernels/cpu/conv2d_direct.h"

#include <algorithm>
#include <type_traits>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {
namespace {

// The widest vector register this build targets, and how many accumulators fit beside the inputs.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kAccumulators = 16;  // of 32 registers
#else
constexpr int kVectorBytes = 32;
constexpr int kAccumulators = 8;  // of 16 registers
#endif

template <class T, int Bytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(Bytes)));
};

// Lane j of the result is lane index[j] of (a, b): a's lanes first, then b's. GCC has it as one instruction
// (vpermt2ps with AVX-512); clang (the fuzzing build) has no variable-index shuffle, so there it is a loop.
template <class V, class Index>
inline V shuffle2(V a, V b, Index index) {
#if defined(__clang__)
  constexpr int L = int(sizeof(V) / sizeof(a[0]));
  V out;
  for (int j = 0; j < L; ++j) out[j] = index[j] < L ? a[index[j]] : b[index[j] - L];
  return out;
#else
  return __builtin_shuffle(a, b, index);
#endif
}

// A short row copy (7-32 values), inline: the library's memmove, which std::copy_n becomes, costs a call
// and a size dispatch per row, as much as the copy itself at these lengths.
template <class T>
inline void copy_row(const T* __restrict src, int64_t n, T* __restrict dst) {
  using V = typename VectorOf<T, kVectorBytes>::type;
  constexpr int L = kVectorBytes / int(sizeof(T));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v;
    std::memcpy(&v, src + i, sizeof v);
    std::memcpy(dst + i, &v, sizeof v);
  }
#pragma GCC unroll 16
  for (int e = 0; e < L; ++e)
    if (i + e < n) dst[i + e] = src[i + e];
}

// The image, the taps and the weights of one direct convolution (3x3, padding 1, stride 1 or 2; the
// output is P x Q). `weight(o, i, tap)` is the weight from input channel i to output channel o at tap r·3 + s.
struct Geometry {
  int64_t N, in_channels, out_channels, H, W, stride, P, Q;
};

// Where the kernels find their input vectors. The output of an image is cut into `rows` rows of
// `row_values` values, each held in NV vectors of L lanes; the input vectors of tap t = r·3 + s for output
// row p of channel i start at  scratch + i·plane + p·row_step + offset(t):
//   row layout, stride 1: the image zero-padded (one row above and below, one column left, zeros right up
//     to the last lane loaded), rows Wp = NV·L + 2 apart: rows = P, row_values = Q, row_step = Wp,
//     offset(t) = r·Wp + s;
//   row layout, stride 2: the same padded rows, each stored as its even columns then its odd columns (Wq =
//     NV·L + 1 of each), so that the every-other-column inputs of a tap are contiguous: row_step = 2·2Wq,
//     offset(t) = r·2Wq + {0, Wq, 1}[s];
//   image layout, for outputs of at most L pixels (4x4 in 16 lanes): one row per image, its nine shifted
//     (and strided) copies one after the other: rows = 1, row_values = P·Q, row_step = 0, offset(t) = t·L.
struct Layout {
  bool whole_image = false;
  int64_t H = 0, W = 0, stride = 1, P = 0, Q = 0;
  int64_t rows = 0, row_values = 0, plane = 0, row_step = 0, row_len = 0;
  int64_t tap_row = 0, odd = 0;  // row layouts: offset between tap rows; stride 2: where odd columns start
};

Layout make_layout(int64_t H, int64_t W, int64_t stride, int64_t lanes, int nv) {
  Layout l;
  l.H = H, l.W = W, l.stride = stride, l.P = (H - 1) / stride + 1, l.Q = (W - 1) / stride + 1;
  l.row_len = nv * lanes;
  l.whole_image = l.P * l.Q <= lanes && l.P > 1;
  if (l.whole_image) {
    l.rows = 1, l.row_values = l.P * l.Q, l.plane = 9 * lanes, l.row_step = 0;
  } else if (stride == 1) {
    const int64_t Wp = nv * lanes + 2;
    l.rows = l.P, l.row_values = l.Q, l.plane = (H + 2) * Wp, l.row_step = l.tap_row = Wp;
  } else {
    const int64_t Wq = nv * lanes + 1;
    l.rows = l.P, l.row_values = l.Q, l.plane = (H + 2) * 2 * Wq, l.tap_row = 2 * Wq, l.row_step = 4 * Wq, l.odd = Wq;
  }
  return l;
}

// The image layout's nine tap copies of an input plane: lane j of tap t is input value source[t][j] of the
// unpadded H x W plane, or zero where the tap reads padding (−1) and beyond the P·Q outputs. Built once per
// convolution. When the plane fits one vector (4x4 in 16 lanes) each tap is one permutation of (the plane,
// zeros) instead of a gather of P·Q scalars: nine shuffles per plane, not ~150 scalar moves.
template <class T, int Bytes>
struct ImageTaps {
  using V = typename VectorOf<T, Bytes>::type;
  using Index = typename VectorOf<std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, Bytes>::type;
  static constexpr int L = Bytes / int(sizeof(T));
  int64_t values = 0;  // H·W
  bool one_vector = false;
  int32_t source[9][L] = {};
  Index permutation[9] = {};  // one_vector: lane j takes lane permutation[t][j] of (plane, zeros)

  explicit ImageTaps(const Layout& l) {
    if (!l.whole_image) return;
    values = l.H * l.W;
    one_vector = values <= L;
    for (int t = 0; t < 9; ++t)
      for (int j = 0; j < L; ++j) {
        const int64_t p = j / l.Q, q = j % l.Q;
        const int64_t h = p * l.stride + t / 3 - 1, w = q * l.stride + t % 3 - 1;
        const bool inside = j < l.P * l.Q && h >= 0 && h < l.H && w >= 0 && w < l.W;
        source[t][j] = inside ? int32_t(h * l.W + w) : -1;
        permutation[t][j] = inside ? source[t][j] : L;  // lane 0 of the zero vector
      }
  }

  void fill(const T* src, T* dst) const {
    if (one_vector) {
      V plane{};
      std::memcpy(&plane, src, size_t(values) * sizeof(T));
#pragma GCC unroll 9
      for (int t = 0; t < 9; ++t) {
        const V tap = shuffle2(plane, V{}, permutation[t]);
        std::memcpy(dst + t * L, &tap, sizeof(V));
      }
      return;
    }
    for (int t = 0; t < 9; ++t)
      for (int j = 0; j < L; ++j) dst[t * L + j] = source[t][j] < 0 ? T(0) : src[source[t][j]];
  }
};

// One channel plane [H, W] into its scratch plane, which holds zeros wherever this never writes.
template <class T, int Bytes>
void fill_plane(const Layout& l, const ImageTaps<T, Bytes>& taps, const T* src, T* dst) {
  if (l.whole_image) return taps.fill(src, dst);
  if (l.stride == 1) {
    for (int64_t h = 0; h < l.H; ++h) copy_row(src + h * l.W, l.W, dst + (h + 1) * l.row_step + 1);
    return;
  }
  // Stride 2: input column w is padded column w + 1, even ones first.
  for (int64_t h = 0; h < l.H; ++h) {
    const T* in = src + h * l.W;
    T* row = dst + (h + 1) * l.tap_row;
    for (int64_t w = 1; w < l.W; w += 2) row[(w + 1) / 2] = in[w];
    for (int64_t w = 0; w < l.W; w += 2) row[l.odd + w / 2] = in[w];
  }
}

// MR output channels of one output row: out[m][0:row_values] = bias[m] + Σ_i Σ_t w[i][t][m] · x(i, t),
// x(i, t) the NV input vectors of tap t (see Layout) read from `row`, the row's place in channel 0.
// wp holds [in_channels][9][MR] weights; out points at the block's first channel, channels PQ apart.
// The tap offsets are spelled out for the layout (Whole: the image layout; Stride: of a row layout) so
// that they fold into the loads' addresses: read from a table they cost one load per tap.
template <class T, int Bytes, int NV, int MR, bool Whole, int Stride>
void output_row(const T* __restrict row, const Layout& l, int64_t in_channels, const T* __restrict wp,
                const T* bias, T* __restrict out, int64_t PQ) {
  using V = typename VectorOf<T, Bytes>::type;
  constexpr int L = Bytes / int(sizeof(T));
  const int64_t plane = l.plane, tap_row = l.tap_row, odd = l.odd, row_values = l.row_values;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[m][v] = V{} + (bias ? bias[m] : T(0));
  for (int64_t i = 0; i < in_channels; ++i) {
    const T* xi = row + i * plane;
    const T* wi = wp + i * 9 * MR;
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) {
      const int s = t % 3;
      const T* tap = xi + (Whole ? t * L : (t / 3) * tap_row + (Stride == 1 ? s : s == 1 ? odd : s / 2));
      V x[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) std::memcpy(&x[v], tap + v * L, sizeof(V));  // unaligned load
      const T* w = wi + t * MR;
#pragma GCC unroll 16
      for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[m][v] += w[m] * x[v];  // scalar · vector: a broadcast FMA
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) {
      T* dst = out + m * PQ + v * L;
      const int64_t n = std::min<int64_t>(L, row_values - v * L);
      if (n == L) {
        std::memcpy(dst, &acc[m][v], sizeof(V));
      } else if (n > 0) {
        alignas(64) T lanes[L];
        std::memcpy(lanes, &acc[m][v], sizeof(V));
        copy_row(lanes, n, dst);
      }
    }
}

// Output channels in blocks of MR (then MR/2, ... for the remainder), each with its packed weights.
struct Block {
  int64_t first, size, weights;  // first output channel, channels, offset of its weights in the packed array
};

template <class T, int MR, class WeightFn>
std::vector<Block> pack_weights(const Geometry& g, WeightFn weight, std::vector<T>& packed) {
  std::vector<Block> blocks;
  packed.resize(size_t(g.out_channels * g.in_channels * 9));
  int64_t o = 0, offset = 0;
  for (int64_t size = MR; size >= 1; size /= 2)
    for (; g.out_channels - o >= size; o += size) {
      blocks.push_back({o, size, offset});
      for (int64_t i = 0; i < g.in_channels; ++i)
        for (int tap = 0; tap < 9; ++tap)
          for (int64_t m = 0; m < size; ++m) packed[size_t(offset++)] = weight(o + m, i, tap);
    }
  return blocks;
}

template <class T, int Bytes, int NV, int MR>
void run_block(int64_t size, const T* row, const Layout& l, int64_t in_channels, const T* wp, const T* bias, T* out,
               int64_t PQ) {
  // One instantiation per power-of-two block size: the accumulators must be compile-time many.
  if constexpr (MR > 1) {
    if (size < MR) return run_block<T, Bytes, NV, MR / 2>(size, row, l, in_channels, wp, bias, out, PQ);
  }
  if (l.whole_image) output_row<T, Bytes, NV, MR, true, 1>(row, l, in_channels, wp, bias, out, PQ);
  else if (l.stride == 1) output_row<T, Bytes, NV, MR, false, 1>(row, l, in_channels, wp, bias, out, PQ);
  else output_row<T, Bytes, NV, MR, false, 2>(row, l, in_channels, wp, bias, out, PQ);
}

template <class T, int Bytes, int NV, class WeightFn>
void direct(const Geometry& g, const T* in, WeightFn weight, const T* bias, T* out) {
  constexpr int MR = kAccumulators / NV;
  std::vector<T> packed;
  const std::vector<Block> blocks = pack_weights<T, MR>(g, weight, packed);
  const Layout l = make_layout(g.H, g.W, g.stride, Bytes / int(sizeof(T)), NV);
  const ImageTaps<T, Bytes> taps(l);
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
#pragma omp parallel
  {
    std::vector<T> scratch(size_t(g.in_channels * l.plane), T(0));  // fill_plane never writes the zeros
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < g.N; ++n) {
      for (int64_t i = 0; i < g.in_channels; ++i)
        fill_plane(l, taps, in + (n * g.in_channels + i) * HW, scratch.data() + i * l.plane);
      for (const Block& b : blocks) {
        T* out_block = out + (n * g.out_channels + b.first) * PQ;
        const T* bias_block = bias ? bias + b.first : nullptr;
        for (int64_t p = 0; p < l.rows; ++p)
          run_block<T, Bytes, NV, MR>(b.size, scratch.data() + p * l.row_step, l, g.in_channels,
                                      packed.data() + b.weights, bias_block, out_block + p * l.row_values, PQ);
      }
    }
  }
}

// The vector configuration for a P x Q output: the whole output in one register (half or full) when it
// fits, else each row in half a register, one, or two. `values` is what a row holds, `lanes_used` the lanes
// given to it (0: nothing fits).
struct Config {
  int bytes = 0, nv = 0;
  int64_t values = 0, lanes_used = 0;
};
Config choose_config(int64_t H, int64_t W, int64_t stride, int64_t elem_bytes) {
  const int64_t L = kVectorBytes / elem_bytes, P = (H - 1) / stride + 1, Q = (W - 1) / stride + 1;
  const bool whole = P * Q <= L && P > 1;  // as make_layout decides
  const int64_t values = whole ? P * Q : Q;
  if (values * 2 <= L) return {kVectorBytes / 2, 1, values, L / 2};
  if (values <= L) return {kVectorBytes, 1, values, L};
  if (values <= 2 * L) return {kVectorBytes, 2, values, 2 * L};
  return {};
}

template <class T, class WeightFn>
void dispatch(const Geometry& g, const T* in, WeightFn weight, const T* bias, T* out) {
  const Config c = choose_config(g.H, g.W, g.stride, sizeof(T));
  if (c.bytes == kVectorBytes / 2) direct<T, kVectorBytes / 2, 1>(g, in, weight, bias, out);
  else if (c.nv == 1) direct<T, kVectorBytes, 1>(g, in, weight, bias, out);
  else direct<T, kVectorBytes, 2>(g, in, weight, bias, out);
}

// ---- backward filter, sums along the rows (stride 1, at most one vector of filters) ------------------
//
// dw[k][c][r][s] = Σ_n Σ_p Σ_q dy[n][k][p][q] · xp[n][c][p + r][q + s]. For MK filters and one input
// channel, the 9·MK sums are vector accumulators along q, reduced across lanes once per group of images;
// per row, MK·NV loads of dy and 9·NV of x feed 9·MK·NV FMAs.

#if defined(__AVX512F__)
// 18 accumulators of 32 registers. With 3 filters (27) GCC spills accumulators to the stack, keeping x
// rows in registers across iterations instead: ~15% slower (tools/bench_conv, layer1 dW).
constexpr int kFilterBlock = 2;
#else
constexpr int kFilterBlock = 1;  // 9 of 16
#endif

template <class T, int Bytes, int NV, int MK>
void filter_sums(const T* xp, const T* dyp, int64_t images, int64_t C, int64_t K, int64_t H, int64_t plane, int64_t Wp,
                 int64_t row_len, int64_t k0, int64_t c, T* partial) {
  using V = typename VectorOf<T, Bytes>::type;
  constexpr int L = Bytes / int(sizeof(T));
  const int64_t dy_plane = H * row_len;
  V acc[MK][9];
#pragma GCC unroll 3
  for (int m = 0; m < MK; ++m)
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) acc[m][tap] = V{};
  for (int64_t n = 0; n < images; ++n) {
    const T* xc = xp + (n * C + c) * plane;
    const T* dk = dyp + (n * K + k0) * dy_plane;
    for (int64_t p = 0; p < H; ++p)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        V d[MK];
#pragma GCC unroll 3
        for (int m = 0; m < MK; ++m) std::memcpy(&d[m], dk + m * dy_plane + p * row_len + v * L, sizeof(V));
#pragma GCC unroll 3
        for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
          for (int s = 0; s < 3; ++s) {
            V x;
            std::memcpy(&x, xc + (p + r) * Wp + s + v * L, sizeof(V));
#pragma GCC unroll 3
            for (int m = 0; m < MK; ++m) acc[m][r * 3 + s] += d[m] * x;
          }
      }
  }
  for (int m = 0; m < MK; ++m)
    for (int tap = 0; tap < 9; ++tap) {
      T lanes[L];
      std::memcpy(lanes, &acc[m][tap], sizeof(V));
      T sum = 0;
      for (int e = 0; e < L; ++e) sum += lanes[e];
      partial[((k0 + m) * C + c) * 9 + tap] = sum;
    }
}

template <class T, int Bytes, int NV, int MK>
void filter_block(int64_t size, const T* xp, const T* dyp, int64_t images, int64_t C, int64_t K, int64_t H,
                  int64_t plane,
                  int64_t Wp, int64_t row_len, int64_t k0, int64_t c, T* partial) {
  if constexpr (MK > 1) {
    if (size < MK)
      return filter_block<T, Bytes, NV, MK - 1>(size, xp, dyp, images, C, K, H, plane, Wp, row_len, k0, c, partial);
  }
  filter_sums<T, Bytes, NV, MK>(xp, dyp, images, C, K, H, plane, Wp, row_len, k0, c, partial);
}

// Images per group: enough for 64 rows between two lane reductions (reducing 18 vectors costs about as
// much as 8 rows of FMAs), otherwise as many as keep the group's padded x and dy in L2 (~256 KiB); at
// least two groups to share out, and the partials (one dw-sized array per group) under 64 MiB. A function
// of the shape only, so the sums (partials added in group order) are the same whatever the thread count.
int64_t images_per_group(int64_t N, int64_t H, int64_t per_image_bytes, int64_t partial_bytes) {
  constexpr int64_t kMinRows = 64, kL2Bytes = int64_t(256) << 10, kMaxPartialBytes = int64_t(64) << 20;
  const int64_t fit = std::max<int64_t>(1, kL2Bytes / std::max<int64_t>(per_image_bytes, 1));
  const int64_t rows = (kMinRows + H - 1) / H;
  const int64_t group = std::min(std::max(fit, rows), std::max<int64_t>(1, N / 2));
  const int64_t memory = (N * partial_bytes + kMaxPartialBytes - 1) / kMaxPartialBytes;
  return std::clamp<int64_t>(std::max(group, memory), 1, std::max<int64_t>(N, 1));
}

template <class T, int Bytes, int NV>
void direct_filter(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  constexpr int L = Bytes / int(sizeof(T));
  const int64_t N = p.N, C = p.C, K = p.K, H = p.H, W = p.W, HW = H * W;
  const int64_t Hp = H + 2, Wp = int64_t(NV) * L + 2, plane = Hp * Wp, row_len = int64_t(NV) * L;
  const int64_t x_image = C * plane, dy_image = K * H * row_len, weights = K * C * 9;
  const int64_t group = images_per_group(N, H, (x_image + dy_image) * int64_t(sizeof(T)), weights * int64_t(sizeof(T)));
  const int64_t groups = (N + group - 1) / group;
  std::vector<T> partials(size_t(groups * weights));
#pragma omp parallel
  {
    std::vector<T> xp(size_t(group * x_image), T(0)), dyp(size_t(group * dy_image), T(0));  // borders stay zero
#pragma omp for schedule(dynamic, 1)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t n0 = gi * group, images = std::min(group, N - n0);
      for (int64_t n = 0; n < images; ++n) {
        for (int64_t c = 0; c < C; ++c)
          for (int64_t h = 0; h < H; ++h)
            copy_row(x + ((n0 + n) * C + c) * HW + h * W, W, xp.data() + n * x_image + c * plane + (h + 1) * Wp + 1);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t h = 0; h < H; ++h)
            copy_row(dy + ((n0 + n) * K + k) * HW + h * W, W, dyp.data() + n * dy_image + (k * H + h) * row_len);
      }
      T* partial = partials.data() + gi * weights;
      for (int64_t k0 = 0; k0 < K; k0 += kFilterBlock)
        for (int64_t c = 0; c < C; ++c)
          filter_block<T, Bytes, NV, kFilterBlock>(std::min<int64_t>(kFilterBlock, K - k0), xp.data(), dyp.data(),
                                                   images,
                                                   C, K, H, plane, Wp, row_len, k0, c, partial);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < weights; ++i) {
      T sum = 0;
      for (int64_t gi = 0; gi < groups; ++gi) sum += partials[size_t(gi * weights + i)];
      dw[i] = sum;
    }
  }
}

// ---- backward filter, lanes over filters ---------------------------------------------------------------
//
// The same sums with L consecutive filters in the lanes of a vector: dy transposed once to [n][p][q][k]
// (k padded to whole vectors with zeros), x copied once into zero-padded planes. Per output pixel: NK
// vectors of dy, 9·CB input values broadcast from the planes (any stride: the taps are plain addresses),
// 9·CB·NK FMAs into accumulators that are never reduced across lanes. Each image's sums are added into
// the block's totals, so a weight's gradient is a sum over the image's pixels, then over the images in
// order: deterministic, and the same whatever the thread count (a block belongs to one thread).

// f32 sums of ~10^5 products per weight: chains of about kChain terms at each of three levels (pixels
// into `acc`, chunks into `block`, blocks into `total`), so rounding grows with 3·kChain, not with N·P·Q.
constexpr int64_t kChain = 64;

template <class T, int Bytes, int NK, int CB>
void filter_lanes_block(const T* dyt, const T* xpad, int64_t N, int64_t C, int64_t K, int64_t Kp, int64_t P,
                        int64_t Q, int64_t stride, int64_t plane, int64_t Wp, int64_t k0, int64_t c0, T* dw) {
  using V = typename VectorOf<T, Bytes>::type;
  constexpr int L = Bytes / int(sizeof(T));
  constexpr int U = CB * 9;
  V total[NK][U], block[NK][U];
  for (int j = 0; j < NK; ++j)
    for (int u = 0; u < U; ++u) total[j][u] = block[j][u] = V{};
  V acc[NK][U];
#pragma GCC unroll 2
  for (int j = 0; j < NK; ++j)
#pragma GCC unroll 18
    for (int u = 0; u < U; ++u) acc[j][u] = V{};
  // acc takes whole rows (across images on small ones) until it holds kChain pixels, then goes into block;
  // kChain such chunks make a block, which goes into total.
  int64_t pixels = 0, chunks = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* d = dyt + n * P * Q * Kp + k0;
    const T* x = xpad + (n * C + c0) * plane;
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t q = 0; q < Q; ++q) {
        V dv[NK];
#pragma GCC unroll 2
        for (int j = 0; j < NK; ++j) std::memcpy(&dv[j], d + (p * Q + q) * Kp + j * L, sizeof(V));
        const T* xt = x + p * stride * Wp + q * stride;
#pragma GCC unroll 2
        for (int b = 0; b < CB; ++b)
#pragma GCC unroll 3
          for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
            for (int s = 0; s < 3; ++s) {
              const T xv = xt[b * plane + r * Wp + s];
#pragma GCC unroll 2
              for (int j = 0; j < NK; ++j) acc[j][b * 9 + r * 3 + s] += dv[j] * xv;  // broadcast FMA
            }
      }
      if ((pixels += Q) < kChain) continue;
      pixels = 0;
      for (int j = 0; j < NK; ++j)
        for (int u = 0; u < U; ++u) block[j][u] += acc[j][u], acc[j][u] = V{};
      if (++chunks < kChain) continue;
      chunks = 0;
      for (int j = 0; j < NK; ++j)
        for (int u = 0; u < U; ++u) total[j][u] += block[j][u], block[j][u] = V{};
    }
  }
  for (int j = 0; j < NK; ++j)
    for (int u = 0; u < U; ++u) {
      alignas(64) T lanes[L];
      const V sum = total[j][u] + (block[j][u] + acc[j][u]);
      std::memcpy(lanes, &sum, sizeof(V));
      const int64_t c = c0 + u / 9, tap = u % 9;
      for (int e = 0; e < L; ++e) {
        const int64_t k = k0 + j * L + e;
        if (k < K) dw[(k * C + c) * 9 + tap] = lanes[e];
      }
    }
}

// An L x L tile transposed in registers: dst[j·dst_stride + i] = src[i·src_stride + j]. log2(L) rounds; round
// b swaps, within each pair of rows (i, i + b), the lanes j of row i that have bit b set with the lanes
// j − b of row i + b, so after the rounds b = 1, 2, 4, ... lane j of row i holds element (j, i).
template <class T, int Bytes>
inline void transpose_tile(const T* src, int64_t src_stride, T* dst, int64_t dst_stride) {
  using V = typename VectorOf<T, Bytes>::type;
  using Index = typename VectorOf<std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, Bytes>::type;
  constexpr int L = Bytes / int(sizeof(T));
  V r[L];
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) std::memcpy(&r[i], src + i * src_stride, sizeof(V));
#pragma GCC unroll 4
  for (int b = 1; b < L; b *= 2) {
    Index keep{}, take{};  // row i: its lanes without bit b, then row i + b's; row i + b: the reverse
    for (int j = 0; j < L; ++j) {
      keep[j] = (j & b) ? L + j - b : j;
      take[j] = (j & b) ? L + j : j + b;
    }
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i) {
      if (i & b) continue;
      const V low = shuffle2(r[i], r[i + b], keep), high = shuffle2(r[i], r[i + b], take);
      r[i] = low;
      r[i + b] = high;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) std::memcpy(dst + i * dst_stride, &r[i], sizeof(V));
}

template <class T, int Bytes, int NK, int CB>
void filter_lanes(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  constexpr int L = Bytes / int(sizeof(T));
  const int64_t N = p.N, C = p.C, K = p.K, H = p.H, W = p.W, P = p.P(), Q = p.Q(), stride = p.stride_h;
  const int64_t Kp = (K + NK * L - 1) / (NK * L) * (NK * L), Wp = W + 2, plane = (H + 2) * Wp;
  // Written in full below (values, padding and borders), so not zeroed first: a zeroing pass over both
  // buffers costs as much as filling them.
  std::unique_ptr<T[]> dyt_buffer(new T[size_t(N * P * Q * Kp)]), xpad_buffer(new T[size_t(N * C * plane)]);
  T* const dyt = dyt_buffer.get();
  T* const xpad = xpad_buffer.get();
  const int64_t k_blocks = Kp / (NK * L), c_blocks = (C + CB - 1) / CB, PQ = P * Q;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      // dy[n] [K][PQ] -> [PQ][Kp]: L x L tiles transposed in registers, scalar copies at the edges.
      T* t = dyt + n * PQ * Kp;
      const T* from = dy + n * K * PQ;
      const int64_t K_tiles = K / L * L, PQ_tiles = PQ / L * L;
      for (int64_t k0 = 0; k0 < K_tiles; k0 += L)
        for (int64_t i0 = 0; i0 < PQ_tiles; i0 += L)
          transpose_tile<T, Bytes>(from + k0 * PQ + i0, PQ, t + i0 * Kp + k0, Kp);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = k < K_tiles ? PQ_tiles : 0; i < PQ; ++i) t[i * Kp + k] = from[k * PQ + i];
      for (int64_t i = 0; i < PQ; ++i)
        for (int64_t k = K; k < Kp; ++k) t[i * Kp + k] = T(0);
      for (int64_t c = 0; c < C; ++c) {
        T* plane_c = xpad + (n * C + c) * plane;
        std::fill_n(plane_c, Wp, T(0));
        std::fill_n(plane_c + (H + 1) * Wp, Wp, T(0));
        for (int64_t h = 0; h < H; ++h) {
          T* row = plane_c + (h + 1) * Wp;
          row[0] = row[W + 1] = T(0);
          copy_row(x + ((n * C + c) * H + h) * W, W, row + 1);
        }
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < k_blocks * c_blocks; ++item) {
      const int64_t k0 = (item / c_blocks) * NK * L, c0 = (item % c_blocks) * CB;
      if (c0 + CB <= C)
        filter_lanes_block<T, Bytes, NK, CB>(dyt, xpad, N, C, K, Kp, P, Q, stride, plane, Wp, k0, c0, dw);
      else  // the last channel of an odd count
        filter_lanes_block<T, Bytes, NK, 1>(dyt, xpad, N, C, K, Kp, P, Q, stride, plane, Wp, k0, c0, dw);
    }
  }
}

// ---- backward data at stride 2, input channels in the lanes --------------------------------------------
//
// dx[c][h][w] = Σ_k Σ dy[k][p][q] · w[k][c][r][s] over the taps with h = 2p + r − 1 and w = 2q + s − 1: an
// even h takes r = 1 (p = h/2) only, an odd h r = 0 (p = (h + 1)/2) and r = 2 (p = (h − 1)/2); likewise w.
// L input channels share a vector: along a run of M output pixels of a row, per k, the 3 or 6 weight
// vectors of the row's taps times dy values broadcast (one per even pixel, two per odd one) into M·NC
// accumulators. dy is read from a copy padded with zero rows and columns past its end (the last odd row
// and column of an even-sized image, and the run's overhang), so no tap is tested for bounds. Each image's
// dx comes out as [h][w][c] and is transposed back. A dx value is one thread's sum over k in order.

template <class T, int Bytes, int M, int NC, int RowTaps>
void data_lanes_run(const T* dyp, int64_t K, int64_t dy_plane, int64_t dy_row_len, const int64_t (&rows)[2],
                    const int (&r_of)[2], int64_t q0, const T* wp, int64_t Cp, int64_t c0, T* out, int64_t out_step) {
  using V = typename VectorOf<T, Bytes>::type;
  constexpr int L = Bytes / int(sizeof(T));
  V acc[M][NC];
#pragma GCC unroll 16
  for (int j = 0; j < M; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < NC; ++v) acc[j][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
#pragma GCC unroll 2
    for (int t = 0; t < RowTaps; ++t) {
      const T* d = dyp + k * dy_plane + rows[t] * dy_row_len + q0;
      const T* wk = wp + (k * 9 + r_of[t] * 3) * Cp + c0;
      V w0[NC], w1[NC], w2[NC];  // taps s = 0, 1, 2 of row r
#pragma GCC unroll 2
      for (int v = 0; v < NC; ++v) {
        std::memcpy(&w0[v], wk + v * L, sizeof(V));
        std::memcpy(&w1[v], wk + Cp + v * L, sizeof(V));
        std::memcpy(&w2[v], wk + 2 * Cp + v * L, sizeof(V));
      }
#pragma GCC unroll 16
      for (int j = 0; j < M; ++j) {
#pragma GCC unroll 2
        for (int v = 0; v < NC; ++v) {
          if (j % 2 == 0) {
            acc[j][v] += d[j / 2] * w1[v];  // even w: s = 1, q = w/2
          } else {
            acc[j][v] += d[(j + 1) / 2] * w0[v];  // odd w: s = 0, q = (w + 1)/2
            acc[j][v] += d[(j - 1) / 2] * w2[v];  //        s = 2, q = (w − 1)/2
          }
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < M; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < NC; ++v) std::memcpy(out + j * out_step + v * L, &acc[j][v], sizeof(V));
}

template <class T, int Bytes, int NC>
void data_lanes(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  constexpr int L = Bytes / int(sizeof(T));
  constexpr int M = kAccumulators / NC;  // output pixels per run (even: runs start on even columns)
  const int64_t N = p.N, C = p.C, K = p.K, H = p.H, W = p.W, P = p.P(), Q = p.Q();
  const int64_t Cp = (C + NC * L - 1) / (NC * L) * (NC * L), runs = (W + M - 1) / M, Wr = runs * M;
  // dy padded with zeros past row P − 1 and column Q − 1.
  const int64_t dy_row_len = Q + M / 2 + 1, dy_plane = (P + 1) * dy_row_len;
  // Weights as [k][tap][c], channels padded with zeros to whole blocks.
  std::vector<T> wp(size_t(K * 9 * Cp), T(0));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int tap = 0; tap < 9; ++tap) wp[size_t((k * 9 + tap) * Cp + c)] = w[(k * C + c) * 9 + tap];
#pragma omp parallel
  {
    std::vector<T> dyp(size_t(K * dy_plane), T(0)), dxt(size_t(H * Wr * Cp));  // dyp's padding stays zero
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t pr = 0; pr < P; ++pr)
          copy_row(dy + ((n * K + k) * P + pr) * Q, Q, dyp.data() + k * dy_plane + pr * dy_row_len);
      for (int64_t h = 0; h < H; ++h) {
        const bool odd = h % 2 == 1;
        const int64_t rows[2] = {odd ? (h + 1) / 2 : h / 2, (h - 1) / 2};
        const int r_of[2] = {odd ? 0 : 1, 2};
        for (int64_t c0 = 0; c0 < Cp; c0 += NC * L)
          for (int64_t run = 0; run < runs; ++run) {
            T* out = dxt.data() + (h * Wr + run * M) * Cp + c0;
            const int64_t q0 = run * M / 2;
            if (odd)
              data_lanes_run<T, Bytes, M, NC, 2>(dyp.data(), K, dy_plane, dy_row_len, rows, r_of, q0, wp.data(), Cp,
                                                 c0, out, Cp);
            else
              data_lanes_run<T, Bytes, M, NC, 1>(dyp.data(), K, dy_plane, dy_row_len, rows, r_of, q0, wp.data(), Cp,
                                                 c0, out, Cp);
          }
      }
      // [h][w][c] -> dx[n][c][h][w]
      T* image = dx + n * C * H * W;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t x = 0; x < W; ++x) image[(c * H + h) * W + x] = dxt[size_t((h * Wr + x) * Cp + c)];
    }
  }
}

// Filters in the lanes, unless the filters fill at most one vector and the stride-1 rows are wide: there
// (the stem, 16-filter stages at 28x28) the sums along the rows measured faster (tools/bench_conv).
bool filter_lanes_wins(const Conv2dParams& p, int64_t elem_bytes) {
  const Config c = choose_config(p.H, p.W, 1, elem_bytes);
  const bool whole = make_layout(p.H, p.W, 1, c.bytes / elem_bytes, c.nv).whole_image;
  return p.stride_h != 1 || whole || p.K > kVectorBytes / elem_bytes;
}

}  // namespace

bool conv2d_direct_fits(DType t, const Conv2dParams& p) {
  if (t != DType::f32 && t != DType::f64) return false;
  if (p.R != 3 || p.S != 3 || p.stride_h != p.stride_w || p.stride_h > 2 || p.pad_h != 1 || p.pad_w != 1 ||
      p.groups != 1)
    return false;
  const Config c = choose_config(p.H, p.W, p.stride_h, t == DType::f32 ? 4 : 8);
  // Rows filling under 60% of their lanes (a 2x2 output in 8 lanes) run faster through im2col + GEMM.
  return c.lanes_used > 0 && c.values * 10 >= c.lanes_used * 6;
}

bool conv2d_direct_data_fits(DType t, const Conv2dParams& p) { return conv2d_direct_fits(t, p); }

bool conv2d_direct_filter_fits(DType t, const Conv2dParams& p) { return conv2d_direct_fits(t, p); }

void conv2d_direct_forward(DType t, const Conv2dParams& p, const void* x, const void* w, const void* bias, void* y) {
  with_float_type(t, "conv2d_direct_forward", [&](auto zero) {
    using T = decltype(zero);
    const Geometry g{p.N, p.C, p.K, p.H, p.W, p.stride_h, p.P(), p.Q()};
    const T* weights = static_cast<const T*>(w);
    const int64_t C = p.C;
    dispatch<T>(g, static_cast<const T*>(x),
                [=](int64_t o, int64_t i, int tap) { return weights[(o * C + i) * 9 + tap]; },
                static_cast<const T*>(bias), static_cast<T*>(y));
  });
}

// dx = the convolution of dy with the weights transposed (input and output channels swapped) and rotated
// by 180 degrees: dx[c][h][w] = Σ_k Σ_{r,s} dy[k][h + 1 − r][w + 1 − s] · w[k][c][r][s], a 3x3 pad-1 stride-1
// convolution with tap (r', s') = (2 − r, 2 − s).
void conv2d_direct_backward_data(DType t, const Conv2dParams& p, const void* dy, const void* w, void* dx) {
  with_float_type(t, "conv2d_direct_backward_data", [&](auto zero) {
    using T = decltype(zero);
    const T* dys = static_cast<const T*>(dy);
    const T* ws = static_cast<const T*>(w);
    if (p.stride_h == 2) {
#if defined(__AVX512F__)
      // 16 accumulators: 16 pixels by one vector of channels, or 8 by two when there are over two vectors.
      if (p.C > 2 * kVectorBytes / int64_t(sizeof(T)))
        return data_lanes<T, kVectorBytes, 2>(p, dys, ws, static_cast<T*>(dx));
#endif
      return data_lanes<T, kVectorBytes, 1>(p, dys, ws, static_cast<T*>(dx));
    }
    const Geometry g{p.N, p.K, p.C, p.H, p.W, 1, p.H, p.W};
    const T* weights = static_cast<const T*>(w);
    const int64_t C = p.C;
    dispatch<T>(g, static_cast<const T*>(dy),
                [=](int64_t c, int64_t k, int tap) { return weights[(k * C + c) * 9 + (8 - tap)]; }, nullptr,
                static_cast<T*>(dx));
  });
}

void conv2d_direct_backward_filter(DType t, const Conv2dParams& p, const void* x, const void* dy, void* dw) {
  with_float_type(t, "conv2d_direct_backward_filter", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    const T* dys = static_cast<const T*>(dy);
    T* dws = static_cast<T*>(dw);
    if (filter_lanes_wins(p, sizeof(T))) {
#if defined(__AVX512F__)
      // 18 accumulators: two vectors of filters by one channel, or one vector by two channels.
      if (p.K > kVectorBytes / int64_t(sizeof(T))) return filter_lanes<T, kVectorBytes, 2, 1>(p, xs, dys, dws);
      return filter_lanes<T, kVectorBytes, 1, 2>(p, xs, dys, dws);
#else
      return filter_lanes<T, kVectorBytes, 1, 1>(p, xs, dys, dws);  // 9 accumulators of 16 registers
#endif
    }
    const Config c = choose_config(p.H, p.W, 1, sizeof(T));
    if (c.bytes == kVectorBytes / 2) direct_filter<T, kVectorBytes / 2, 1>(p, xs, dys, dws);
    else if (c.nv == 1) direct_filter<T, kVectorBytes, 1>(p, xs, dys, dws);
    else direct_filter<T, kVectorBytes, 2>(p, xs, dys, dws);
  });
}

}  // namespace scpn::cpu
