// CPU conv2d: im2col + GEMM with the GEMM the context carries (ours or OpenBLAS, as registered), a
// copy-free per-image GEMM for wide 1x1 stride-1 unpadded convolutions, and the direct kernel of
// kernels/cpu/conv2d_direct.h for 3x3 convolutions of narrow images.
#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/dtype_switch.h"
#include "kernels/gemm.h"

namespace scpn::cpu {
namespace {

// A chunk of `nb` images is unrolled into one column matrix col[(c, r, s), (i, p, q)] (rows C·R·S, grouped
// channels consecutive; columns nb·P·Q), so each group's convolution of the chunk is ONE wide GEMM
// W_g [Kg, Cg·R·S] · col_g → [Kg, nb·P·Q]. Width matters most in the late layers (a 4x4 image: 16 columns).
// Default chunking: enough images for a GEMM this wide (ResNet's 4x4 layers: 64 images; 32x32: one)...
constexpr int64_t kTargetColumns = 1024;
// ...within this scratch budget, which keeps a chunk's column matrix and layout buffer in this machine's
// 32 MiB L3. Measured with tools/bench_conv on the idle machine, with either GEMM: 1024-column chunks run
// ResNet-18's 3x3 layers 5-20% faster than 2048- or 4096-column ones (im2col writes stay in cache and
// the GEMM loses nothing at that width), and GEMMs of a few 4x4 images (~128 columns) lose ~10%.
constexpr int64_t kDefaultWorkspaceBytes = int64_t(16) << 20;
// A 1x1 stride-1 unpadded convolution is already a GEMM per image (x[n] is [C, H·W]). Per-image GEMMs
// are used when an image gives the GEMM at least this many columns; narrower images are packed side by
// side like any other chunk (a plain copy, cheap next to the 2·K flops per copied element).
constexpr int64_t kDirectMinColumns = 512;

struct Geometry {
  int64_t G, Cg, Kg, RS, CRSg, CRS, HW, PQ, P, Q;
  explicit Geometry(const Conv2dParams& p)
      : G(p.groups), Cg(p.C / p.groups), Kg(p.K / p.groups), RS(p.R * p.S), CRSg(Cg * p.R * p.S),
        CRS(p.C * p.R * p.S), HW(p.H * p.W), PQ(p.P() * p.Q()), P(p.P()), Q(p.Q()) {}
};

bool is_pointwise(const Conv2dParams& p) {
  return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

bool use_direct_pointwise(const Conv2dParams& p, const Geometry& g) {
  return is_pointwise(p) && (g.PQ >= kDirectMinColumns || p.N == 1);
}

// Images per chunk, at least one and at most N. The scratch of a chunk is its column matrix plus one
// [K, nb·P·Q] layout buffer. An explicit workspace limit is filled as far as it goes; by default, enough
// images for kTargetColumns GEMM columns, within kDefaultWorkspaceBytes.
int64_t images_per_chunk(const Conv2dParams& p, const Geometry& g, size_t elem_bytes) {
  const int64_t per_image = std::max<int64_t>((g.CRS + p.K) * g.PQ * int64_t(elem_bytes), 1);
  int64_t nb = p.workspace_limit_bytes > 0
                   ? p.workspace_limit_bytes / per_image
                   : std::min((kTargetColumns + g.PQ - 1) / g.PQ, kDefaultWorkspaceBytes / per_image);
  nb = std::clamp<int64_t>(nb, 1, std::max<int64_t>(p.N, 1));
  // Even out the chunks (32 images at 6 per chunk -> 6 chunks of <= 6 rather than 5 of 6 and one of 2).
  int64_t chunks = (p.N + nb - 1) / nb;
  return chunks > 0 ? (p.N + chunks - 1) / chunks : 1;
}

template <class T>
std::unique_ptr<T[]> scratch(int64_t elements) {
  return std::make_unique_for_overwrite<T[]>(size_t(std::max<int64_t>(elements, 1)));
}

void gemm(const ExecContext& ctx, DType t, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          const void* b, int64_t ldb, double beta, void* c, int64_t ldc) {
  const GemmArgs args{.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k, .alpha = 1.0, .a = a,
                      .lda = lda, .b = b, .ldb = ldb, .beta = beta, .c = c, .ldc = ldc};
  SCPN_CHECK(ctx.gemm, "conv2d: the CPU context carries no GEMM (contexts come from exec_context)");
  ctx.gemm(ctx, t, args);
}

// The output positions o in [lo, hi) that read inside the image at kernel offset `offset` along one axis:
// o·stride − pad + offset in [0, in_size). (Used for rows with r and for columns with s.)
void valid_range(int64_t offset, int64_t stride, int64_t pad, int64_t in_size, int64_t out_size, int64_t& lo,
                 int64_t& hi) {
  // o·stride >= pad − offset  and  o·stride <= in_size − 1 + pad − offset
  int64_t first = pad - offset;
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t last = in_size - 1 + pad - offset;
  hi = last < 0 ? 0 : std::min<int64_t>(out_size, last / stride + 1);
  lo = std::min(lo, hi);
}

// Threads: the GEMM parallelises itself; the loops here (im2col, col2im, layout copies) use OpenMP between
// GEMM calls, never around them. Behind a GEMM on OpenMP's threads (ours, OpenBLAS's OpenMP build) that runs
// ResNet-18's 3x3 layers ~1.25x faster than serial loops (tools/bench_conv, idle 2-core machine); behind
// OpenBLAS's pthreads build it is ~2x slower: libgomp's workers spin for milliseconds after each loop and
// take cores from OpenBLAS's pool.

// col[(c, r, s), (i, p, q)] = x[i, c, p·sh − ph + r, q·sw − pw + s] (0 outside), for nb images of x
// (pointer to the chunk's first image). Rows are ld = nb·P·Q long. Each (image, channel) plane is first
// copied into a zero-padded plane, from which every (r, s) row segment is read with no bounds to test
// (on 4x4 and 7x7 images bounds tests and short fills cost more than the copies); the R·S segments of a
// plane are written one after the other, each P·Q values of a column-matrix row.
template <class T>
void im2col(const Conv2dParams& p, const Geometry& g, const T* x, int64_t nb, T* col) {
  const int64_t ld = nb * g.PQ;
  const int64_t Hp = p.H + 2 * p.pad_h, Wp = p.W + 2 * p.pad_w;
  const int64_t planes = p.C * nb;
#pragma omp parallel if (g.CRS * ld > kParallelGrain)
  {
    std::vector<T> padded(size_t(Hp * Wp), T(0));  // the borders stay zero: only the interior is rewritten
#pragma omp for schedule(dynamic, 4)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const int64_t c = plane / nb, i = plane % nb;
      const T* src = x + (i * p.C + c) * g.HW;
      for (int64_t h = 0; h < p.H; ++h)
        for (int64_t w = 0; w < p.W; ++w) padded[size_t((h + p.pad_h) * Wp + p.pad_w + w)] = src[h * p.W + w];
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) {
          T* __restrict out = col + ((c * p.R + r) * p.S + s) * ld + i * g.PQ;
          for (int64_t oh = 0; oh < g.P; ++oh) {
            const T* __restrict in = padded.data() + (oh * p.stride_h + r) * Wp + s;
            T* __restrict o = out + oh * g.Q;
            for (int64_t q = 0; q < g.Q; ++q) o[q] = in[q * p.stride_w];
          }
        }
    }
  }
}

// The adjoint of im2col: dx[i, c, h, w] = Σ of the col entries that im2col copied from (h, w).
// Overwrites the nb images of dx. The column matrix is read row by row, in memory order (reading it
// plane by plane instead jumps between 9 rows per plane and is ~3x slower on 4x4 images); a channel's
// rows only touch that channel's planes, so threads split the channels and never share a plane.
template <class T>
void col2im(const Conv2dParams& p, const Geometry& g, const T* col, int64_t nb, T* dx) {
  const int64_t ld = nb * g.PQ;
#pragma omp parallel for schedule(dynamic, 1) if (g.CRS * ld > kParallelGrain)
  for (int64_t c = 0; c < p.C; ++c) {
    for (int64_t i = 0; i < nb; ++i) std::fill_n(dx + (i * p.C + c) * g.HW, g.HW, T(0));
    for (int64_t r = 0; r < p.R; ++r) {
      int64_t p_lo, p_hi;  // output rows whose input row is inside the image
      valid_range(r, p.stride_h, p.pad_h, p.H, g.P, p_lo, p_hi);
      for (int64_t s = 0; s < p.S; ++s) {
        int64_t q_lo, q_hi;
        valid_range(s, p.stride_w, p.pad_w, p.W, g.Q, q_lo, q_hi);
        const int64_t shift = s - p.pad_w;
        const T* row = col + ((c * p.R + r) * p.S + s) * ld;
        for (int64_t i = 0; i < nb; ++i) {
          T* plane = dx + (i * p.C + c) * g.HW;
          for (int64_t oh = p_lo; oh < p_hi; ++oh) {
            const T* __restrict src = row + i * g.PQ + oh * g.Q;
            T* __restrict out = plane + (oh * p.stride_h - p.pad_h + r) * p.W;
            if (p.stride_w == 1) {
              for (int64_t q = q_lo; q < q_hi; ++q) out[q + shift] += src[q];
            } else {
              for (int64_t q = q_lo; q < q_hi; ++q) out[q * p.stride_w + shift] += src[q];
            }
          }
        }
      }
    }
  }
}

// [nb, K, PQ] (NCHW slice of dy) -> [K, nb·PQ] (GEMM layout).
template <class T>
void images_to_rows(const T* src, int64_t nb, int64_t K, int64_t PQ, T* dst) {
#pragma omp parallel for collapse(2) schedule(dynamic, 16) if (nb * K * PQ > kParallelGrain)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < nb; ++i) {
      const T* __restrict from = src + (i * K + k) * PQ;
      T* __restrict to = dst + (k * nb + i) * PQ;
      for (int64_t j = 0; j < PQ; ++j) to[j] = from[j];  // inline: see CMakeLists.txt on these loops
    }
}

// [K, nb·PQ] (GEMM output) -> y [nb, K, PQ] plus bias[k] (bias may be null).
template <class T>
void rows_to_images(const T* src, int64_t nb, int64_t K, int64_t PQ, const T* bias, T* y) {
#pragma omp parallel for collapse(2) schedule(dynamic, 16) if (nb * K * PQ > kParallelGrain)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const T* in = src + (k * nb + i) * PQ;
      T* out = y + (i * K + k) * PQ;
      const T b = bias ? bias[k] : T(0);
      for (int64_t j = 0; j < PQ; ++j) out[j] = in[j] + b;
    }
}

// y [nb, K, PQ] += bias[k].
template <class T>
void add_bias(T* y, int64_t nb, int64_t K, int64_t PQ, const T* bias) {
#pragma omp parallel for collapse(2) schedule(dynamic, 16) if (nb * K * PQ > kParallelGrain)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t k = 0; k < K; ++k) {
      T* out = y + (i * K + k) * PQ;
      for (int64_t j = 0; j < PQ; ++j) out[j] += bias[k];
    }
}

template <class T>
void forward_impl(const ExecContext& ctx, DType t, const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g(p);
  if (p.N == 0) return;
  if (use_direct_pointwise(p, g)) {
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t grp = 0; grp < g.G; ++grp)
        gemm(ctx, t, false, false, g.Kg, g.HW, g.Cg, w + grp * g.Kg * g.Cg, g.Cg, x + (n * p.C + grp * g.Cg) * g.HW,
             g.HW, 0.0, y + (n * p.K + grp * g.Kg) * g.PQ, g.PQ);
    if (bias) add_bias(y, p.N, p.K, g.PQ, bias);
    return;
  }
  const int64_t nb_max = images_per_chunk(p, g, sizeof(T));
  auto col = scratch<T>(g.CRS * nb_max * g.PQ);
  auto rows = scratch<T>(nb_max > 1 ? p.K * nb_max * g.PQ : 0);
  for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, p.N - n0), cols = nb * g.PQ;
    im2col(p, g, x + n0 * p.C * g.HW, nb, col.get());
    // One image: the GEMM output [K, PQ] is already y's layout.
    T* out = nb == 1 ? y + n0 * p.K * g.PQ : rows.get();
    for (int64_t grp = 0; grp < g.G; ++grp)
      gemm(ctx, t, false, false, g.Kg, cols, g.CRSg, w + grp * g.Kg * g.CRSg, g.CRSg, col.get() + grp * g.CRSg * cols,
           cols, 0.0, out + grp * g.Kg * cols, cols);
    if (nb == 1) {
      if (bias) add_bias(out, 1, p.K, g.PQ, bias);
    } else {
      rows_to_images(out, nb, p.K, g.PQ, bias, y + n0 * p.K * g.PQ);
    }
  }
}

template <class T>
void backward_data_impl(const ExecContext& ctx, DType t, const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const Geometry g(p);
  if (p.N == 0) return;
  if (use_direct_pointwise(p, g)) {
    // dx[n]_g [Cg, HW] = W_gᵀ [Cg, Kg] · dy[n]_g [Kg, HW]
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t grp = 0; grp < g.G; ++grp)
        gemm(ctx, t, true, false, g.Cg, g.HW, g.Kg, w + grp * g.Kg * g.Cg, g.Cg, dy + (n * p.K + grp * g.Kg) * g.PQ,
             g.PQ, 0.0, dx + (n * p.C + grp * g.Cg) * g.HW, g.HW);
    return;
  }
  const int64_t nb_max = images_per_chunk(p, g, sizeof(T));
  auto col = scratch<T>(g.CRS * nb_max * g.PQ);
  auto rows = scratch<T>(nb_max > 1 ? p.K * nb_max * g.PQ : 0);
  for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, p.N - n0), cols = nb * g.PQ;
    const T* dy_chunk = dy + n0 * p.K * g.PQ;
    if (nb > 1) {
      images_to_rows(dy_chunk, nb, p.K, g.PQ, rows.get());
      dy_chunk = rows.get();
    }
    // dcol_g [CRSg, cols] = W_gᵀ [CRSg, Kg] · dy_g [Kg, cols]
    for (int64_t grp = 0; grp < g.G; ++grp)
      gemm(ctx, t, true, false, g.CRSg, cols, g.Kg, w + grp * g.Kg * g.CRSg, g.CRSg, dy_chunk + grp * g.Kg * cols, cols,
           0.0, col.get() + grp * g.CRSg * cols, cols);
    col2im(p, g, col.get(), nb, dx + n0 * p.C * g.HW);
  }
}

template <class T>
void backward_filter_impl(const ExecContext& ctx, DType t, const Conv2dParams& p, const T* dy, const T* x, T* dw) {
  const Geometry g(p);
  if (p.N == 0) {
    std::fill(dw, dw + p.K * g.CRSg, T(0));
    return;
  }
  if (use_direct_pointwise(p, g)) {
    // dw_g [Kg, Cg] (+)= dy[n]_g [Kg, HW] · x[n]_gᵀ [HW, Cg]; the first image overwrites.
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t grp = 0; grp < g.G; ++grp)
        gemm(ctx, t, false, true, g.Kg, g.Cg, g.HW, dy + (n * p.K + grp * g.Kg) * g.PQ, g.PQ,
             x + (n * p.C + grp * g.Cg) * g.HW, g.HW, n == 0 ? 0.0 : 1.0, dw + grp * g.Kg * g.Cg, g.Cg);
    return;
  }
  const int64_t nb_max = images_per_chunk(p, g, sizeof(T));
  auto col = scratch<T>(g.CRS * nb_max * g.PQ);
  auto rows = scratch<T>(nb_max > 1 ? p.K * nb_max * g.PQ : 0);
  for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, p.N - n0), cols = nb * g.PQ;
    im2col(p, g, x + n0 * p.C * g.HW, nb, col.get());
    const T* dy_chunk = dy + n0 * p.K * g.PQ;
    if (nb > 1) {
      images_to_rows(dy_chunk, nb, p.K, g.PQ, rows.get());
      dy_chunk = rows.get();
    }
    // dw_g [Kg, CRSg] (+)= dy_g [Kg, cols] · col_gᵀ [cols, CRSg]; the first chunk overwrites.
    for (int64_t grp = 0; grp < g.G; ++grp)
      gemm(ctx, t, false, true, g.Kg, g.CRSg, cols, dy_chunk + grp * g.Kg * cols, cols, col.get() + grp * g.CRSg * cols,
           cols, n0 == 0 ? 0.0 : 1.0, dw + grp * g.Kg * g.CRSg, g.CRSg);
  }
}

template <class T>
void backward_bias_impl(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t PQ = p.P() * p.Q();
  // Sums in double: a batch of 32 images of 32x32 adds 32768 terms per channel.
#pragma omp parallel for schedule(dynamic, 4) if (p.N * p.K * PQ > kParallelGrain)
  for (int64_t k = 0; k < p.K; ++k) {
    double total = 0;
    for (int64_t n = 0; n < p.N; ++n) {
      const T* row = dy + (n * p.K + k) * PQ;
      T partial = 0;
      for (int64_t j = 0; j < PQ; ++j) partial += row[j];
      total += double(partial);
    }
    db[k] = T(total);
  }
}

}  // namespace

void conv2d_forward(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* x, const void* w,
                    const void* bias, void* y) {
  if (p.N > 0 && conv2d_direct_fits(t, p)) return conv2d_direct_forward(t, p, x, w, bias, y);
  with_float_type(t, "conv2d_forward", [&](auto zero) {
    using T = decltype(zero);
    forward_impl<T>(ctx, t, p, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
                    static_cast<T*>(y));
  });
}

void conv2d_backward_data(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* dy, const void* w,
                          void* dx) {
  if (p.N > 0 && conv2d_direct_data_fits(t, p)) return conv2d_direct_backward_data(t, p, dy, w, dx);
  with_float_type(t, "conv2d_backward_data", [&](auto zero) {
    using T = decltype(zero);
    backward_data_impl<T>(ctx, t, p, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx));
  });
}

void conv2d_backward_filter(const ExecContext& ctx, DType t, const Conv2dParams& p, const void* dy, const void* x,
                            void* dw) {
  if (p.N > 0 && conv2d_direct_filter_fits(t, p)) return conv2d_direct_backward_filter(t, p, x, dy, dw);
  with_float_type(t, "conv2d_backward_filter", [&](auto zero) {
    using T = decltype(zero);
    backward_filter_impl<T>(ctx, t, p, static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dw));
  });
}

void conv2d_backward_bias(const ExecContext&, DType t, const Conv2dParams& p, const void* dy, void* db) {
  with_float_type(t, "conv2d_backward_bias", [&](auto zero) {
    using T = decltype(zero);
    backward_bias_impl<T>(p, static_cast<const T*>(dy), static_cast<T*>(db));
  });
}

}  // namespace scpn::cpu
