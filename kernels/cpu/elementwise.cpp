// CPU elementwise kernels: fill, cast, random, unary, broadcast binary, where, axpy.
#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/common/elementwise_math.h"
#include "kernels/common/random_transform.h"
#include "kernels/common/scalar_convert.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {
// The conversions are scalar_convert.h's, shared with the CUDA backend (same bits for NaN, rounding and
// out-of-range integers on both).
double load(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::f32: return to_double(static_cast<const float*>(p)[i]);
    case DType::f64: return to_double(static_cast<const double*>(p)[i]);
    case DType::bf16: return to_double(static_cast<const bf16*>(p)[i]);
    case DType::f16: return to_double(static_cast<const f16*>(p)[i]);
    case DType::i32: return to_double(static_cast<const int32_t*>(p)[i]);
    case DType::i64: return to_double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return to_double(static_cast<const uint8_t*>(p)[i]);
  }
  return 0;
}
void store(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = from_double<float>(v); return;
    case DType::f64: static_cast<double*>(p)[i] = v; return;
    case DType::bf16: static_cast<bf16*>(p)[i] = from_double<bf16>(v); return;
    case DType::f16: static_cast<f16*>(p)[i] = from_double<f16>(v); return;
    case DType::i32: static_cast<int32_t*>(p)[i] = from_double<int32_t>(v); return;
    case DType::i64: static_cast<int64_t*>(p)[i] = from_double<int64_t>(v); return;
    case DType::u8: static_cast<uint8_t*>(p)[i] = from_double<uint8_t>(v); return;
  }
}

// fn(std::integral_constant<Op, op>{}): with the op a compile-time constant, unary_value's and
// binary_value's switch folds away and the element loops vectorise (a switch per element does not).
template <class Fn>
void with_unary_op(UnaryOp op, Fn&& fn) {
  using U = UnaryOp;
  switch (op) {
    case U::relu: return fn(std::integral_constant<U, U::relu>{});
    case U::abs: return fn(std::integral_constant<U, U::abs>{});
    case U::sign: return fn(std::integral_constant<U, U::sign>{});
    case U::neg: return fn(std::integral_constant<U, U::neg>{});
    case U::exp: return fn(std::integral_constant<U, U::exp>{});
    case U::log: return fn(std::integral_constant<U, U::log>{});
    case U::sqrt: return fn(std::integral_constant<U, U::sqrt>{});
    case U::square: return fn(std::integral_constant<U, U::square>{});
    case U::reciprocal: return fn(std::integral_constant<U, U::reciprocal>{});
    case U::add_scalar: return fn(std::integral_constant<U, U::add_scalar>{});
    case U::mul_scalar: return fn(std::integral_constant<U, U::mul_scalar>{});
    case U::pow_scalar: return fn(std::integral_constant<U, U::pow_scalar>{});
  }
  throw Error(cat("unary: unknown op ", int(op)));
}

template <class Fn>
void with_binary_op(BinaryOp op, Fn&& fn) {
  using B = BinaryOp;
  switch (op) {
    case B::add: return fn(std::integral_constant<B, B::add>{});
    case B::sub: return fn(std::integral_constant<B, B::sub>{});
    case B::mul: return fn(std::integral_constant<B, B::mul>{});
    case B::div: return fn(std::integral_constant<B, B::div>{});
    case B::relu_backward: return fn(std::integral_constant<B, B::relu_backward>{});
    case B::gt: return fn(std::integral_constant<B, B::gt>{});
    case B::ge: return fn(std::integral_constant<B, B::ge>{});
    case B::eq: return fn(std::integral_constant<B, B::eq>{});
    case B::maximum: return fn(std::integral_constant<B, B::maximum>{});
    case B::minimum: return fn(std::integral_constant<B, B::minimum>{});
  }
  throw Error(cat("binary: unknown op ", int(op)));
}

}  // namespace

void fill(const ExecContext&, DType t, int64_t n, double value, void* out) {
  if (t == DType::f32) {
    float v = from_double<float>(value);
    float* o = static_cast<float*>(out);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(t, out, i, value);
}

void cast(const ExecContext&, int64_t n, DType src_type, const void* src, DType dst_type, void* dst) {
  // bf16/f16 are rounded from float (their only compute type), so f64 -> bf16 goes through f32 (store).
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) store(dst_type, dst, i, load(src_type, src, i));
}

void random(const ExecContext&, DType t, int64_t n, RandomDist dist, double a, double b, uint64_t seed,
            uint64_t offset, void* out) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    // random_transform.h: the same bits as the CUDA kernel for the same (seed, offset).
    double v = dist == RandomDist::uniform ? random_uniform_value(a, b, seed, offset, uint64_t(i))
                                           : random_normal_value(a, b, seed, offset, uint64_t(i));
    store(t, out, i, v);
  }
}

void unary(const ExecContext&, UnaryOp op, DType t, int64_t n, const void* x, double alpha, void* out) {
  with_float_type(t, "unary", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* o = static_cast<T*>(out);
    T a = T(alpha);
    with_unary_op(op, [&](auto constant) {
#pragma omp parallel for if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) o[i] = unary_value(decltype(constant)::value, xs[i], a);
    });
  });
}

namespace {

// Adjacent dimensions both operands step through contiguously (or both broadcast) merge into one: two
// same-shape NCHW tensors become one long row instead of N·C·H rows of W values.
BroadcastLayout merge_contiguous_dims(const BroadcastLayout& L) {
  if (L.ndim <= 1) return L;
  BroadcastLayout m;  // built innermost first, reversed at the end
  m.ndim = 1;
  m.shape[0] = L.shape[L.ndim - 1];
  m.a_stride[0] = L.a_stride[L.ndim - 1];
  m.b_stride[0] = L.b_stride[L.ndim - 1];
  for (int d = L.ndim - 2; d >= 0; --d) {
    const int k = m.ndim - 1;
    if (L.a_stride[d] == m.a_stride[k] * m.shape[k] && L.b_stride[d] == m.b_stride[k] * m.shape[k]) {
      m.shape[k] *= L.shape[d];
    } else {
      m.shape[m.ndim] = L.shape[d];
      m.a_stride[m.ndim] = L.a_stride[d];
      m.b_stride[m.ndim] = L.b_stride[d];
      ++m.ndim;
    }
  }
  std::reverse(m.shape, m.shape + m.ndim);
  std::reverse(m.a_stride, m.a_stride + m.ndim);
  std::reverse(m.b_stride, m.b_stride + m.ndim);
  return m;
}

}  // namespace

// Walks the output in row-major order; the innermost dimension is a tight loop with fixed strides, cut
// into pieces of kPiece values so that one long row is still shared between threads.
void binary(const ExecContext&, BinaryOp op, DType t, const BroadcastLayout& layout, const void* a, const void* b,
            void* out) {
  constexpr int64_t kPiece = 8192;
  const BroadcastLayout L = merge_contiguous_dims(layout);
  with_float_type(t, "binary", [&](auto zero) {
    using T = decltype(zero);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* po = static_cast<T*>(out);
    int nd = L.ndim;
    int64_t inner = nd ? L.shape[nd - 1] : 1;
    int64_t sa = nd ? L.a_stride[nd - 1] : 0, sb = nd ? L.b_stride[nd - 1] : 0;
    int64_t rows = 1;
    for (int d = 0; d + 1 < nd; ++d) rows *= L.shape[d];
    const int64_t pieces = std::max<int64_t>(1, inner / kPiece);
#pragma omp parallel for if (rows * inner > kParallelGrain)
    for (int64_t task = 0; task < rows * pieces; ++task) {
      const int64_t r = task / pieces, piece = task % pieces;
      const int64_t begin = inner * piece / pieces, end = inner * (piece + 1) / pieces;
      int64_t oa = 0, ob = 0, rem = r;
      for (int d = nd - 2; d >= 0; --d) {
        int64_t idx = rem % L.shape[d];
        rem /= L.shape[d];
        oa += idx * L.a_stride[d];
        ob += idx * L.b_stride[d];
      }
      T* o = po + r * inner;
      const T* ra = pa + oa;
      const T* rb = pb + ob;
      with_binary_op(op, [&](auto constant) {
        constexpr BinaryOp kOp = decltype(constant)::value;
        if (sa == 1 && sb == 1) {
          for (int64_t i = begin; i < end; ++i) o[i] = binary_value(kOp, ra[i], rb[i]);
        } else {
          for (int64_t i = begin; i < end; ++i) o[i] = binary_value(kOp, ra[i * sa], rb[i * sb]);
        }
      });
    }
  });
}

void where(const ExecContext&, DType t, int64_t n, const uint8_t* cond, const void* a, const void* b, void* out) {
  size_t es = dtype_size(t);
  const char* pa = static_cast<const char*>(a);
  const char* pb = static_cast<const char*>(b);
  char* po = static_cast<char*>(out);
  for (int64_t i = 0; i < n; ++i) std::memcpy(po + i * es, (cond[i] ? pa : pb) + i * es, es);
}

void axpy(const ExecContext&, DType t, int64_t n, double alpha, const void* x, void* y) {
  with_float_type(t, "axpy", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    T a = T(alpha);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) ys[i] += a * xs[i];
  });
}

}  // namespace scpn::cpu
