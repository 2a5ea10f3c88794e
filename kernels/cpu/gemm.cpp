// CPU GEMM (contract: kernels/gemm.h): our own cache-blocked, OpenMP-parallel f32/f64 kernel in the
// Goto/BLIS style: operands are packed into aligned panels and a register-blocked micro-kernel written
// with GCC vector extensions (AVX2+FMA under -march=native) does the arithmetic.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu/dtype_switch.h"
#include "kernels/gemm.h"

namespace scpn::cpu {

namespace {

// ---- blocking -----------------------------------------------------------------------------------
//
// C (m×n) is computed as a sum over K-slices of width KC; within a slice, C is cut into MC×NC blocks
// and each block into MR×NR micro-tiles:
//
//   for jc in steps of NC:
//     for pc in steps of KC:          Bp ← op(B)[pc:pc+KC, jc:jc+NC]   packed, stays in L3
//       for ic in steps of MC:        Ap ← op(A)[ic:ic+MC, pc:pc+KC]   packed, stays in L2
//         for each NR-column panel of Bp, for each MR-row panel of Ap:
//           C_tile (+)= Ap panel (MR×KC) · Bp panel (KC×NR)           accumulators in registers
//
// (Bp is packed during the first ic iteration, kPackChunk panels just before their first use.)
//
// The micro-kernel keeps a 6×16 f32 tile (6×8 f64) in 12 of the 16 AVX2 registers: per step of k it
// loads two vectors of B, broadcasts 6 scalars of A and issues 12 FMAs — 12 independent accumulators
// cover the 4-cycle FMA latency at 2 FMAs/cycle. Sizes for this machine (AMD EPYC Zen 3: 32 KiB L1d and
// 512 KiB L2 per core, 32 MiB shared L3), with KC = 256:
//   B micro-panel  KC×NR         = 256·16·4 B = 16 KiB f32 (256·8·8 B f64): half of L1, reused by every
//                                  micro-tile of the block;
//   A block        MC×KC         = 144·256·4 B = 144 KiB f32 (MC = 72 for f64: the same bytes): well
//                                  inside L2 next to B's streaming panels;
//   B block        KC×NC         = 256·4080·4 B ≈ 4 MiB f32 (8 MiB f64): in L3 (one per thread).
// MC is a multiple of MR and NC of NR so that only the matrix edges produce partial tiles; the packers
// pad those with zeros and the micro-kernel writes back only the valid part.
//
// Parallelism: C is cut into a grid of one rectangle per thread (gm × gn = threads, rectangles as square
// as the grid allows, edges on MR/NR multiples) and each thread runs the loops above on its rectangle
// with its own packing buffers. No barriers: a thread never waits for another until the call ends, which
// matters on a machine shared with other work (a descheduled thread would stall every barrier). The
// price is that threads in one grid row (column) pack the same A (B) panels — K·(M/gm + N/gn) copies per
// thread against 2·M·N·K/threads flops, a few percent at most for the shapes the network runs. The
// short, wide convolution GEMMs (M = 64, N = 32768) split along N, the tall ones along M.

typedef float v8f __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

template <class T>
struct Blocking;
template <>
struct Blocking<float> {
  using Vec = v8f;
  static constexpr int kLanes = 8;
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 256, MC = 144, NC = 4080;
};
template <>
struct Blocking<double> {
  using Vec = v4d;
  static constexpr int kLanes = 4;
  static constexpr int MR = 6, NR = 8;
  static constexpr int64_t KC = 256, MC = 72, NC = 4080;
};

// B panels packed at a time, interleaved with their use (see gemm_rectangle): 8·16 KiB f32.
constexpr int64_t kPackChunk = 8;

// Below this many multiply-adds a thread team costs more than it saves.
constexpr double kParallelMacs = 1 << 17;

template <class Vec, class T>
inline Vec load_vec(const T* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);  // unaligned load; compiles to one vmovups
  return v;
}
template <class Vec, class T>
inline void store_vec(T* p, Vec v) {
  std::memcpy(p, &v, sizeof v);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- packing --------------------------------------------------------------------------------------

// Packs op(A)[i0:i0+mc, p0:p0+kc] into Ap as MR-row panels: panel r holds, for each p, the MR values
// op(A)[i0 + r·MR + i, p0 + p] contiguously; rows past mc are zero.
template <class T>
void pack_a(const GemmArgs& g, int64_t i0, int64_t p0, int64_t mc, int64_t kc, T* Ap) {
  constexpr int MR = Blocking<T>::MR;
  const T* A = static_cast<const T*>(g.a);
  for (int64_t r = 0; r < ceil_div(mc, MR); ++r) {
    T* dst = Ap + r * MR * kc;
    const int64_t row0 = i0 + r * MR;
    const int rows = int(std::min<int64_t>(MR, mc - r * MR));
    if (!g.trans_a && rows == MR) {
      // op(A)[i, p] = A[i·lda + p]: read the MR rows side by side and write Ap in order (a scatter with
      // stride MR, one row at a time, runs several times slower).
      const T* src[MR];
      for (int i = 0; i < MR; ++i) src[i] = A + (row0 + i) * g.lda + p0;
      for (int64_t p = 0; p < kc; ++p)
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) dst[p * MR + i] = src[i][p];
    } else if (!g.trans_a) {  // the last, partial panel
      for (int i = 0; i < rows; ++i) {
        const T* src = A + (row0 + i) * g.lda + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
      }
    } else {  // op(A)[i, p] = A[p·lda + i]: the MR values of one p are contiguous in memory
      for (int64_t p = 0; p < kc; ++p) {
        const T* src = A + (p0 + p) * g.lda + row0;
        for (int i = 0; i < rows; ++i) dst[p * MR + i] = src[i];
      }
    }
    if (rows < MR)
      for (int64_t p = 0; p < kc; ++p)
        for (int i = rows; i < MR; ++i) dst[p * MR + i] = T(0);
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] into Bp as NR-column panels: panel s holds, for each p, the NR values
// op(B)[p0 + p, j0 + s·NR + j] contiguously; columns past nc are zero.
template <class T>
void pack_b(const GemmArgs& g, int64_t p0, int64_t j0, int64_t kc, int64_t nc, T* Bp) {
  constexpr int NR = Blocking<T>::NR;
  const T* B = static_cast<const T*>(g.b);
  const int64_t full_panels = nc / NR, tail = nc % NR;
  constexpr int64_t kLine = 64 / sizeof(T);  // values per cache line
  constexpr int64_t kPrefetchRows = 8, kPrefetchLines = 4;
  if (!g.trans_b) {
    // op(B)[p, j] = B[p·ldb + j]. Read each row of B once from start to end (a stream the hardware
    // prefetcher follows) and deal it out to the panels; walking panel by panel instead would touch
    // kc rows ldb apart for every 64 bytes, a TLB and cache miss each time for the wide im2col matrices.
    for (int64_t p = 0; p < kc; ++p) {
      const T* src = B + (p0 + p) * g.ldb + j0;
      T* dst = Bp + p * NR;
      // Each row segment starts in a new page, where the hardware prefetcher has no history: fetch the
      // segment kPrefetchRows rows ahead ourselves.
      if (p + kPrefetchRows < kc)
        for (int64_t j = 0; j < nc; j += kLine) __builtin_prefetch(src + kPrefetchRows * g.ldb + j);
      for (int64_t s = 0; s < full_panels; ++s) std::memcpy(dst + s * NR * kc, src + s * NR, sizeof(T) * NR);
      if (tail) {
        T* d = dst + full_panels * NR * kc;
        for (int64_t j = 0; j < NR; ++j) d[j] = j < tail ? src[full_panels * NR + j] : T(0);
      }
    }
    return;
  }
  // op(B)[p, j] = B[j·ldb + p]: each column of op(B) is a row of B, contiguous in p. The NR rows are
  // read one cache line (kLine values) at a time, each line used up at once: the rows are often a power
  // of two apart (im2col matrices), so they share an L1 set and would evict each other between uses.
  for (int64_t s = 0; s < ceil_div(nc, NR); ++s) {
    T* dst = Bp + s * NR * kc;
    const int64_t col0 = j0 + s * NR;
    const int cols = int(std::min<int64_t>(NR, nc - s * NR));
    for (int64_t p_line = 0; p_line < kc; p_line += kLine) {
      const int64_t p_end = std::min(kc, p_line + kLine);
      for (int j = 0; j < cols; ++j) {
        const T* src = B + (col0 + j) * g.ldb + p0;
        // NR streams are more than the hardware prefetcher follows: fetch a few lines ahead ourselves.
        if (p_line + kPrefetchLines * kLine < kc) __builtin_prefetch(src + p_line + kPrefetchLines * kLine);
        for (int64_t p = p_line; p < p_end; ++p) dst[p * NR + j] = src[p];
      }
    }
    if (cols < NR)
      for (int64_t p = 0; p < kc; ++p)
        for (int j = cols; j < NR; ++j) dst[p * NR + j] = T(0);
  }
}

// ---- micro-kernel ---------------------------------------------------------------------------------

// C[0:mr, 0:nc] = alpha · (Ap panel · Bp panel) + beta · C, where beta = 0 overwrites (C may hold NaN).
// Ap panel: kc steps of MR values; Bp panel: kc steps of NR values (both packed, zero-padded).
template <class T>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc,
                  int mr, int nr, T alpha, T beta) {
  using Vec = typename Blocking<T>::Vec;
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR, L = Blocking<T>::kLanes;
  static_assert(NR == 2 * L, "the micro-kernel holds two vectors per row of the tile");

  // Start fetching the C tile now: it is needed only after the k loop, and it usually comes from L3 or
  // memory, a stall at every write-back otherwise.
  for (int i = 0; i < mr; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + nr - 1, 1);
  }
  // The 6×2 vectors of the tile as named variables, not an array: GCC then keeps all twelve in registers
  // and B's two vectors too (with an array it spilled or re-read B from memory, ~15% slower).
  static_assert(MR == 6, "the loop below is written out for six rows");
  Vec c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{};
  for (int64_t p = 0; p < kc; ++p) {
    const Vec b0 = load_vec<Vec>(b), b1 = load_vec<Vec>(b + L);
    // A scalar times a vector broadcasts the scalar; `+=` of a product compiles to one FMA.
    c00 += a[0] * b0;
    c01 += a[0] * b1;
    c10 += a[1] * b0;
    c11 += a[1] * b1;
    c20 += a[2] * b0;
    c21 += a[2] * b1;
    c30 += a[3] * b0;
    c31 += a[3] * b1;
    c40 += a[4] * b0;
    c41 += a[4] * b1;
    c50 += a[5] * b0;
    c51 += a[5] * b1;
    a += MR;
    b += NR;
  }
  const Vec acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};

  if (mr == MR && nr == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      T* row = c + i * ldc;
      Vec r0 = alpha * acc[i][0], r1 = alpha * acc[i][1];
      if (beta != T(0)) {
        r0 += beta * load_vec<Vec>(row);
        r1 += beta * load_vec<Vec>(row + L);
      }
      store_vec(row, r0);
      store_vec(row + L, r1);
    }
    return;
  }
  // Edge tile: spill the accumulators and write back only the valid mr×nr part.
  alignas(64) T tile[MR][NR];
  for (int i = 0; i < MR; ++i) {
    store_vec(&tile[i][0], acc[i][0]);
    store_vec(&tile[i][L], acc[i][1]);
  }
  for (int i = 0; i < mr; ++i) {
    T* row = c + i * ldc;
    for (int j = 0; j < nr; ++j) row[j] = beta == T(0) ? alpha * tile[i][j] : alpha * tile[i][j] + beta * row[j];
  }
}

// ---- driver ---------------------------------------------------------------------------------------

// Packing buffers, kept per thread (OpenMP's pool threads persist) and grown on demand: allocating them
// per call would fault in megabytes of fresh pages every time (a B block alone is 4 MiB). Never shrunk;
// freed at thread exit.
struct PackWorkspace {
  void* data = nullptr;
  size_t bytes = 0;
  ~PackWorkspace() { std::free(data); }
  void* get(size_t need) {
    if (need > bytes) {
      std::free(data);
      bytes = (need + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
      data = std::aligned_alloc(64, bytes);
      if (!data) {
        bytes = 0;
        throw Error(cat("gemm: cannot allocate ", need, " bytes of packing workspace"));
      }
    }
    return data;
  }
};

// C = beta · C (beta = 0 writes zeros): the whole GEMM when k = 0 or alpha = 0.
template <class T>
void scale_c(const GemmArgs& g) {
  T* C = static_cast<T*>(g.c);
  const T beta = T(g.beta);
  for (int64_t i = 0; i < g.m; ++i) {
    T* row = C + i * g.ldc;
    for (int64_t j = 0; j < g.n; ++j) row[j] = beta == T(0) ? T(0) : beta * row[j];
  }
}

// The rectangle rows [row0, row1) × columns [col0, col1) of C, on one thread: the blocked loops.
template <class T>
void gemm_rectangle(const GemmArgs& g, int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
  using Bk = Blocking<T>;
  constexpr int MR = Bk::MR, NR = Bk::NR;
  const int64_t k = g.k;
  const T alpha = T(g.alpha), beta = T(g.beta);
  T* C = static_cast<T*>(g.c);

  const int64_t kc_max = std::min(Bk::KC, k);
  const int64_t mc_max = std::min(Bk::MC, ceil_div(row1 - row0, MR) * MR);
  const int64_t nc_max = std::min(Bk::NC, ceil_div(col1 - col0, NR) * NR);
  const size_t b_elems = size_t(ceil_div(kc_max * nc_max, 64) * 64);  // keeps Ap 64-byte aligned
  thread_local PackWorkspace workspace;
  T* Bp = static_cast<T*>(workspace.get(sizeof(T) * (b_elems + size_t(kc_max * mc_max))));
  T* Ap = Bp + b_elems;

  for (int64_t jc = col0; jc < col1; jc += Bk::NC) {
    const int64_t nc = std::min(Bk::NC, col1 - jc);
    const int64_t n_panels = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < k; pc += Bk::KC) {
      const int64_t kc = std::min(Bk::KC, k - pc);
      const T beta_slice = pc == 0 ? beta : T(1);  // the first K-slice applies beta, later ones add
      for (int64_t ic = row0; ic < row1; ic += Bk::MC) {
        const int64_t mc = std::min(Bk::MC, row1 - ic);
        const int64_t m_panels = ceil_div(mc, MR);
        pack_a<T>(g, ic, pc, mc, kc, Ap);
        for (int64_t s0 = 0; s0 < n_panels; s0 += kPackChunk) {
          const int64_t s1 = std::min(n_panels, s0 + kPackChunk);
          // The first A block packs B a few panels at a time, just before using them: they are then
          // still in L1/L2, and a GEMM with a single A block (M ≤ MC) never reads Bp back from L3.
          if (ic == row0) pack_b<T>(g, pc, jc + s0 * NR, kc, std::min(nc, s1 * NR) - s0 * NR, Bp + s0 * NR * kc);
          for (int64_t s = s0; s < s1; ++s) {  // column panel outer: its B panel stays in L1
            const int nr = int(std::min<int64_t>(NR, nc - s * NR));
            for (int64_t r = 0; r < m_panels; ++r) {
              const int mr = int(std::min<int64_t>(MR, mc - r * MR));
              micro_kernel<T>(kc, Ap + r * MR * kc, Bp + s * NR * kc, C + (ic + r * MR) * g.ldc + jc + s * NR,
                              g.ldc, mr, nr, alpha, beta_slice);
            }
          }
        }
      }
    }
  }
}

// The thread grid gm × gn = threads whose rectangles are squarest (least packing per thread), never
// cutting a dimension into more parts than it has MR (NR) panels.
struct ThreadGrid {
  int64_t gm = 1, gn = 1;
};
ThreadGrid choose_grid(int64_t m_panels, int64_t n_panels, int64_t m, int64_t n, int64_t threads) {
  ThreadGrid best;
  double best_cost = -1;
  for (int64_t gm = 1; gm <= threads; ++gm) {
    if (threads % gm) continue;
    const int64_t gn = threads / gm;
    if (gm > m_panels || gn > n_panels) continue;
    const double cost = double(m) / double(gm) + double(n) / double(gn);  // per-thread packing ∝ K·cost
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {gm, gn};
    }
  }
  return best;
}

template <class T>
void gemm_blocked(const GemmArgs& g) {
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  const int64_t m = g.m, n = g.n, k = g.k;
  if (m == 0 || n == 0) return;
  if (k == 0 || g.alpha == 0.0) {
    scale_c<T>(g);
    return;
  }
  const int64_t m_panels = ceil_div(m, MR), n_panels = ceil_div(n, NR);
  const bool parallel = double(m) * double(n) * double(k) >= kParallelMacs && !omp_in_parallel();
  int64_t threads = parallel ? omp_get_max_threads() : 1;
  ThreadGrid grid = choose_grid(m_panels, n_panels, m, n, threads);
  // No grid fits the panel counts (say 3 threads and a C of 2×2 tiles): use fewer threads.
  while (grid.gm * grid.gn != threads) grid = choose_grid(m_panels, n_panels, m, n, --threads);

#pragma omp parallel num_threads(int(threads))
  {
    const int64_t t = omp_get_thread_num();
    if (t < threads) {  // the runtime may give fewer threads than asked, never more
      const int64_t ti = t / grid.gn, tj = t % grid.gn;
      const int64_t row0 = std::min(m, m_panels * ti / grid.gm * MR);
      const int64_t row1 = std::min(m, m_panels * (ti + 1) / grid.gm * MR);
      const int64_t col0 = std::min(n, n_panels * tj / grid.gn * NR);
      const int64_t col1 = std::min(n, n_panels * (tj + 1) / grid.gn * NR);
      if (row0 < row1 && col0 < col1) gemm_rectangle<T>(g, row0, row1, col0, col1);
    }
  }
}

}  // namespace

void gemm_ours(const ExecContext&, DType t, const GemmArgs& g) {
  SCPN_CHECK(g.m >= 0 && g.n >= 0 && g.k >= 0, "gemm: negative size m=", g.m, " n=", g.n, " k=", g.k);
  with_float_type(t, "gemm", [&](auto zero) { gemm_blocked<decltype(zero)>(g); });
}

GemmFn* select_gemm(GemmFn* ours, GemmFn* openblas) {
  const char* env = std::getenv("SCPN_CPU_GEMM");
  const std::string choice = env ? env : "";
  if (choice == "ours") return ours;
  if (choice.empty()) return ours;  // the faster inside the training step here: see docs/benchmarks.md
  if (choice == "openblas") {
    SCPN_CHECK(openblas, "SCPN_CPU_GEMM=openblas, but this build has no OpenBLAS (install libopenblas-openmp-dev and "
               "re-run cmake), or set SCPN_CPU_GEMM=ours");
    return openblas;
  }
  throw Error(cat("SCPN_CPU_GEMM=", choice, ": expected 'ours' or 'openblas'"));
}

}  // namespace scpn::cpu
