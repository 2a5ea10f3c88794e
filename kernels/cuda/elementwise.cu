// CUDA elementwise kernels: fill, cast, random, unary, broadcast binary, where, axpy. The arithmetic is the
// CPU backend's own (SCPN_HD functions in kernels/common/), so casts, fills and random draws are bit-identical
// to kernels/cpu/elementwise.cpp; only the launch is ours.
#include <cstdint>
#include <cstring>

#include "kernels/common/elementwise_math.h"
#include "kernels/common/random_transform.h"
#include "kernels/common/scalar_convert.h"
#include "kernels/elementwise.h"
#include "kernels/cuda/launch.h"

namespace scpn::cuda {

namespace {

// ---- packs and grid-stride loops ---------------------------------------------------------------------

// Grid-stride loops over packs of four elements (one 16-byte load for f32) when the pointers allow it.

constexpr int kPack = 4;

// Four consecutive elements, aligned so that one (or, for 8-byte types, two) vector instructions move them.
template <class T>
struct alignas(sizeof(T) * kPack) Pack {
  T v[kPack];
};

template <class T>
__device__ Pack<T> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T>*>(p);
}
template <class T>
__device__ void store_pack(T* p, const Pack<T>& pack) {
  *reinterpret_cast<Pack<T>*>(p) = pack;
}

// Tensors are views into storage (dim-0 slices start anywhere), so packs are used only when every
// pointer of the call is aligned to its pack.
template <class T>
bool pack_aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kPack) == 0;
}

__device__ int64_t thread_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t thread_count() { return int64_t(gridDim.x) * blockDim.x; }

// Grid-stride loop over n elements: pack_body(i) handles elements i..i+3 (i a multiple of 4) while
// whole packs remain, one_body(i) the rest. With packed == false everything goes through one_body.
template <class PackBody, class OneBody>
__device__ void for_each_element(int64_t n, bool packed, PackBody&& pack_body, OneBody&& one_body) {
  const int64_t first = thread_index(), step = thread_count();
  const int64_t packs = packed ? n / kPack : 0;
  for (int64_t p = first; p < packs; p += step) pack_body(p * kPack);
  for (int64_t i = packs * kPack + first; i < n; i += step) one_body(i);
}

// Blocks for `tasks` units of work, one per thread up to 2^28 (the grid-stride loops take any rest).
// Unlike launch.h's grid_for (a few waves of long-running blocks), this gives many short waves, so the
// last, partly filled wave costs little whatever the kernel's occupancy.
unsigned blocks_for(int64_t tasks) {
  return unsigned(std::clamp<int64_t>((tasks + kBlock - 1) / kBlock, 1, int64_t(1) << 20));
}
// Blocks for a for_each_element launch.
unsigned grid_for_elements(int64_t n, bool packed) { return blocks_for(packed ? (n + kPack - 1) / kPack : n); }

// Calls f(T{}) with T the storage type of dtype t (all seven dtypes).
template <class F>
void switch_storage(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    case DType::bf16: f(bf16{}); return;
    case DType::f16: f(f16{}); return;
    case DType::i32: f(int32_t{}); return;
    case DType::i64: f(int64_t{}); return;
    case DType::u8: f(uint8_t{}); return;
  }
  throw Error(cat("cast: unknown dtype ", int(t)));
}

// Calls f(U{}) with U the unsigned integer of dtype t's size: fill and where only move bits.
template <class F>
void switch_bits(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: f(uint8_t{}); return;
    case 2: f(uint16_t{}); return;
    case 4: f(uint32_t{}); return;
    case 8: f(uint64_t{}); return;
  }
  throw Error(cat("elementwise: dtype ", dtype_name(t), " has no bit-copy type"));
}

// ---- kernels ------------------------------------------------------------------------------------------

template <class U>
__global__ void fill_kernel(int64_t n, bool packed, U value, U* __restrict__ out) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        Pack<U> pack;
        for (int k = 0; k < kPack; ++k) pack.v[k] = value;
        store_pack(out + i, pack);
      },
      [&](int64_t i) { out[i] = value; });
}

template <class S, class D>
__global__ void cast_kernel(int64_t n, bool packed, const S* __restrict__ src, D* __restrict__ dst) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        const Pack<S> in = load_pack(src + i);
        Pack<D> out;
        for (int k = 0; k < kPack; ++k) out.v[k] = from_double<D>(to_double(in.v[k]));
        store_pack(dst + i, out);
      },
      [&](int64_t i) { dst[i] = from_double<D>(to_double(src[i])); });
}

// One thread per Philox block: elements 4p..4p+3 are words 0..3 of block offset + p.
template <class T>
__global__ void uniform_kernel(int64_t n, bool packed, double a, double b, uint64_t seed, uint64_t offset,
                               T* __restrict__ out) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t p = thread_index(); p < blocks; p += thread_count()) {
    const PhiloxWords words = philox4x32_10(seed, offset + uint64_t(p));
    const int64_t first = 4 * p;
    if (packed && first + kPack <= n) {
      Pack<T> pack;
      for (int k = 0; k < kPack; ++k) pack.v[k] = from_double<T>(uniform_from_word(a, b, words.w[k]));
      store_pack(out + first, pack);
    } else {
      for (int k = 0; k < 4 && first + k < n; ++k) out[first + k] = from_double<T>(uniform_from_word(a, b, words.w[k]));
    }
  }
}

// One thread per two Philox blocks: elements 4q, 4q+1 come from block offset + 2q (cos, sin) and
// 4q+2, 4q+3 from block offset + 2q + 1, as random_normal_value() maps element i to block offset + i/2.
template <class T>
__global__ void normal_kernel(int64_t n, bool packed, double mean, double stddev, uint64_t seed,
                              uint64_t offset, T* __restrict__ out) {
  const int64_t quads = (n + 3) / 4;
  for (int64_t q = thread_index(); q < quads; q += thread_count()) {
    const PhiloxWords first_block = philox4x32_10(seed, offset + 2 * uint64_t(q));
    const PhiloxWords second_block = philox4x32_10(seed, offset + 2 * uint64_t(q) + 1);
    const NormalPair z01 = box_muller(first_block.w[0], first_block.w[1]);
    const NormalPair z23 = box_muller(second_block.w[0], second_block.w[1]);
    const double z[4] = {z01.z0, z01.z1, z23.z0, z23.z1};
    const int64_t first = 4 * q;
    if (packed && first + kPack <= n) {
      Pack<T> pack;
      for (int k = 0; k < kPack; ++k) pack.v[k] = from_double<T>(normal_from_z(mean, stddev, z[k]));
      store_pack(out + first, pack);
    } else {
      for (int k = 0; k < 4 && first + k < n; ++k) out[first + k] = from_double<T>(normal_from_z(mean, stddev, z[k]));
    }
  }
}

template <class T>
__global__ void unary_kernel(UnaryOp op, int64_t n, bool packed, const T* __restrict__ x, T alpha,
                             T* __restrict__ out) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        Pack<T> pack = load_pack(x + i);
        for (int k = 0; k < kPack; ++k) pack.v[k] = unary_value(op, pack.v[k], alpha);
        store_pack(out + i, pack);
      },
      [&](int64_t i) { out[i] = unary_value(op, x[i], alpha); });
}

// Same-shape operands, or one of them a single broadcast value.
template <class T>
__global__ void binary_flat_kernel(BinaryOp op, int64_t n, bool packed, const T* __restrict__ a, bool a_single,
                                   const T* __restrict__ b, bool b_single, T* __restrict__ out) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        Pack<T> pa, pb;
        if (a_single) {
          for (int k = 0; k < kPack; ++k) pa.v[k] = a[0];
        } else {
          pa = load_pack(a + i);
        }
        if (b_single) {
          for (int k = 0; k < kPack; ++k) pb.v[k] = b[0];
        } else {
          pb = load_pack(b + i);
        }
        Pack<T> result;
        for (int k = 0; k < kPack; ++k) result.v[k] = binary_value(op, pa.v[k], pb.v[k]);
        store_pack(out + i, result);
      },
      [&](int64_t i) { out[i] = binary_value(op, a[a_single ? 0 : i], b[b_single ? 0 : i]); });
}

// A broadcast layout after collapse_layout(), with Index = uint32_t when every index and offset fits
// (32-bit division is several times cheaper than 64-bit on the GPU).
template <class Index>
struct StridedLayout {
  int ndim;
  Index shape[kMaxDims];
  Index a_stride[kMaxDims];
  Index b_stride[kMaxDims];
};

template <class T, class Index>
__global__ void binary_strided_kernel(BinaryOp op, Index n, StridedLayout<Index> L, const T* __restrict__ a,
                                      const T* __restrict__ b, T* __restrict__ out) {
  const Index step = Index(gridDim.x) * blockDim.x;
  for (Index idx = Index(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += step) {
    // Row-major decomposition of the output index, innermost dimension first; the fixed-bound loop keeps
    // the layout arrays in registers/parameter space (no local-memory copy for a dynamic index).
    Index rest = idx, offset_a = 0, offset_b = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 1; --d) {
      if (d < L.ndim) {
        const Index q = rest / L.shape[d];
        const Index coordinate = rest - q * L.shape[d];
        offset_a += coordinate * L.a_stride[d];
        offset_b += coordinate * L.b_stride[d];
        rest = q;
      }
    }
    offset_a += rest * L.a_stride[0];
    offset_b += rest * L.b_stride[0];
    out[idx] = binary_value(op, a[offset_a], b[offset_b]);
  }
}

template <class U>
__global__ void where_kernel(int64_t n, bool packed, const uint8_t* __restrict__ cond, const U* __restrict__ a,
                             const U* __restrict__ b, U* __restrict__ out) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        const Pack<uint8_t> c = load_pack(cond + i);
        const Pack<U> pa = load_pack(a + i), pb = load_pack(b + i);
        Pack<U> result;
        for (int k = 0; k < kPack; ++k) result.v[k] = c.v[k] ? pa.v[k] : pb.v[k];
        store_pack(out + i, result);
      },
      [&](int64_t i) { out[i] = cond[i] ? a[i] : b[i]; });
}

// y += alpha·x as one fused multiply-add in T: the CPU loop `y[i] += a * x[i]` is contracted to the same
// fma by g++ with -march=native on FMA hardware (without it the CPU rounds twice: tests use a tolerance).
template <class T>
__global__ void axpy_kernel(int64_t n, bool packed, T alpha, const T* __restrict__ x, T* __restrict__ y) {
  for_each_element(
      n, packed,
      [&](int64_t i) {
        const Pack<T> px = load_pack(x + i);
        Pack<T> py = load_pack(y + i);
        for (int k = 0; k < kPack; ++k) py.v[k] = std::fma(alpha, px.v[k], py.v[k]);
        store_pack(y + i, py);
      },
      [&](int64_t i) { y[i] = std::fma(alpha, x[i], y[i]); });
}

// ---- broadcast layouts --------------------------------------------------------------------------------

// Drops size-1 dimensions and merges neighbours that are contiguous for both operands (a dimension d
// continues d-1 when stride[d-1] == stride[d]·shape[d] for a and for b): a same-shape add becomes one
// dimension, a per-channel [N, C, H, W] + [1, C, 1, 1] becomes [N, C, H·W].
BroadcastLayout collapse_layout(const BroadcastLayout& L) {
  BroadcastLayout c;
  c.ndim = 0;
  for (int d = 0; d < L.ndim; ++d) {
    if (L.shape[d] == 1) continue;
    const int last = c.ndim - 1;
    if (last >= 0 && c.a_stride[last] == L.a_stride[d] * L.shape[d] && c.b_stride[last] == L.b_stride[d] * L.shape[d]) {
      c.shape[last] *= L.shape[d];
      c.a_stride[last] = L.a_stride[d];
      c.b_stride[last] = L.b_stride[d];
      continue;
    }
    c.shape[c.ndim] = L.shape[d];
    c.a_stride[c.ndim] = L.a_stride[d];
    c.b_stride[c.ndim] = L.b_stride[d];
    ++c.ndim;
  }
  return c;
}

template <class Index>
StridedLayout<Index> narrow_layout(const BroadcastLayout& L) {
  StridedLayout<Index> s{};
  s.ndim = L.ndim;
  for (int d = 0; d < L.ndim; ++d) {
    s.shape[d] = Index(L.shape[d]);
    s.a_stride[d] = Index(L.a_stride[d]);
    s.b_stride[d] = Index(L.b_stride[d]);
  }
  return s;
}

template <class T>
void launch_binary(const ExecContext& ctx, BinaryOp op, const BroadcastLayout& layout, const T* a, const T* b,
                   T* out) {
  int64_t n = 1;
  for (int d = 0; d < layout.ndim; ++d) n *= layout.shape[d];
  if (n == 0) return;
  const BroadcastLayout L = collapse_layout(layout);
  const cudaStream_t stream = stream_of(ctx);
  const bool flat = L.ndim == 0 || (L.ndim == 1 && (L.a_stride[0] == 0 || L.a_stride[0] == 1) &&
                                    (L.b_stride[0] == 0 || L.b_stride[0] == 1));
  if (flat) {
    const bool a_single = L.ndim == 0 || L.a_stride[0] == 0;
    const bool b_single = L.ndim == 0 || L.b_stride[0] == 0;
    const bool packed = (a_single || pack_aligned<T>(a)) && (b_single || pack_aligned<T>(b)) && pack_aligned<T>(out);
    binary_flat_kernel<T><<<grid_for_elements(n, packed), kBlock, 0, stream>>>(op, n, packed, a, a_single, b,
                                                                               b_single, out);
    SCPN_CUDA_LAUNCH_CHECK("binary_flat_kernel");
    return;
  }
  // 32-bit indexing when the output index (plus one grid stride) and every operand offset stay below 2^31.
  int64_t max_offset_a = 0, max_offset_b = 0;
  for (int d = 0; d < L.ndim; ++d) {
    max_offset_a += (L.shape[d] - 1) * L.a_stride[d];
    max_offset_b += (L.shape[d] - 1) * L.b_stride[d];
  }
  const int64_t limit = int64_t(1) << 31;
  if (n < limit && max_offset_a < limit && max_offset_b < limit) {
    binary_strided_kernel<T, uint32_t>
        <<<blocks_for(n), kBlock, 0, stream>>>(op, uint32_t(n), narrow_layout<uint32_t>(L), a, b, out);
  } else {
    binary_strided_kernel<T, int64_t><<<blocks_for(n), kBlock, 0, stream>>>(op, n, narrow_layout<int64_t>(L), a, b, out);
  }
  SCPN_CUDA_LAUNCH_CHECK("binary_strided_kernel");
}

}  // namespace

// ---- entry points (kernels/elementwise.h) ------------------------------------------------------------

void fill(const ExecContext& ctx, DType t, int64_t n, double value, void* out) {
  if (n <= 0) return;
  // The stored bits come from the same conversion as the CPU fill; then only bits are copied.
  uint64_t bits = 0;
  switch_storage(t, [&](auto zero) {
    using T = decltype(zero);
    const T v = from_double<T>(value);
    std::memcpy(&bits, &v, sizeof(T));
  });
  const size_t size = dtype_size(t);
  if (bits == 0 || size == 1) {
    SCPN_CUDA_CHECK(cudaMemsetAsync(out, int(bits & 0xffu), size_t(n) * size, stream_of(ctx)));
    return;
  }
  switch_bits(t, [&](auto zero) {
    using U = decltype(zero);
    U pattern;
    std::memcpy(&pattern, &bits, sizeof(U));  // little-endian: the low bytes hold the value
    const bool packed = pack_aligned<U>(out);
    fill_kernel<U><<<grid_for_elements(n, packed), kBlock, 0, stream_of(ctx)>>>(n, packed, pattern,
                                                                                static_cast<U*>(out));
    SCPN_CUDA_LAUNCH_CHECK("fill_kernel");
  });
}

void cast(const ExecContext& ctx, int64_t n, DType src_type, const void* src, DType dst_type, void* dst) {
  if (n <= 0) return;
  switch_storage(src_type, [&](auto src_zero) {
    switch_storage(dst_type, [&](auto dst_zero) {
      using S = decltype(src_zero);
      using D = decltype(dst_zero);
      const bool packed = pack_aligned<S>(src) && pack_aligned<D>(dst);
      cast_kernel<S, D><<<grid_for_elements(n, packed), kBlock, 0, stream_of(ctx)>>>(
          n, packed, static_cast<const S*>(src), static_cast<D*>(dst));
      SCPN_CUDA_LAUNCH_CHECK("cast_kernel");
    });
  });
}

void random(const ExecContext& ctx, DType t, int64_t n, RandomDist dist, double a, double b, uint64_t seed,
            uint64_t offset, void* out) {
  if (n <= 0) return;
  switch_storage(t, [&](auto zero) {
    using T = decltype(zero);
    const bool packed = pack_aligned<T>(out);
    const unsigned blocks = blocks_for((n + 3) / 4);
    if (dist == RandomDist::uniform) {
      uniform_kernel<T><<<blocks, kBlock, 0, stream_of(ctx)>>>(n, packed, a, b, seed, offset, static_cast<T*>(out));
      SCPN_CUDA_LAUNCH_CHECK("uniform_kernel");
    } else {
      normal_kernel<T><<<blocks, kBlock, 0, stream_of(ctx)>>>(n, packed, a, b, seed, offset, static_cast<T*>(out));
      SCPN_CUDA_LAUNCH_CHECK("normal_kernel");
    }
  });
}

void unary(const ExecContext& ctx, UnaryOp op, DType t, int64_t n, const void* x, double alpha, void* out) {
  switch_float(t, "unary", [&](auto zero) {
    using T = decltype(zero);
    if (n <= 0) return;
    const bool packed = pack_aligned<T>(x) && pack_aligned<T>(out);
    unary_kernel<T><<<grid_for_elements(n, packed), kBlock, 0, stream_of(ctx)>>>(
        op, n, packed, static_cast<const T*>(x), T(alpha), static_cast<T*>(out));
    SCPN_CUDA_LAUNCH_CHECK("unary_kernel");
  });
}

void binary(const ExecContext& ctx, BinaryOp op, DType t, const BroadcastLayout& layout, const void* a, const void* b,
            void* out) {
  SCPN_CHECK(layout.ndim >= 0 && layout.ndim <= kMaxDims, "binary: ", layout.ndim, " dimensions (at most ",
             kMaxDims, ")");
  switch_float(t, "binary", [&](auto zero) {
    using T = decltype(zero);
    launch_binary<T>(ctx, op, layout, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
  });
}

void where(const ExecContext& ctx, DType t, int64_t n, const uint8_t* cond, const void* a, const void* b, void* out) {
  if (n <= 0) return;
  switch_bits(t, [&](auto zero) {
    using U = decltype(zero);
    const bool packed = pack_aligned<uint8_t>(cond) && pack_aligned<U>(a) && pack_aligned<U>(b) && pack_aligned<U>(out);
    where_kernel<U><<<grid_for_elements(n, packed), kBlock, 0, stream_of(ctx)>>>(
        n, packed, cond, static_cast<const U*>(a), static_cast<const U*>(b), static_cast<U*>(out));
    SCPN_CUDA_LAUNCH_CHECK("where_kernel");
  });
}

void axpy(const ExecContext& ctx, DType t, int64_t n, double alpha, const void* x, void* y) {
  switch_float(t, "axpy", [&](auto zero) {
    using T = decltype(zero);
    if (n <= 0) return;
    const bool packed = pack_aligned<T>(x) && pack_aligned<T>(y);
    axpy_kernel<T><<<grid_for_elements(n, packed), kBlock, 0, stream_of(ctx)>>>(n, packed, T(alpha),
                                                                                 static_cast<const T*>(x),
                                                                                 static_cast<T*>(y));
    SCPN_CUDA_LAUNCH_CHECK("axpy_kernel");
  });
}

}  // namespace scpn::cuda
