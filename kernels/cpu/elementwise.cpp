// CPU elementwise kernels: fill, cast, random, unary, broadcast binary, where, axpy.
#include "kernels/elementwise.h"

#include <cmath>
#include <cstring>

#include "kernels/common/half.h"
#include "kernels/common/philox.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

namespace {
double load(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return bf16_to_float(static_cast<const bf16*>(p)[i]);
    case DType::f16: return f16_to_float(static_cast<const f16*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
void store(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); return;
    case DType::f64: static_cast<double*>(p)[i] = v; return;
    case DType::bf16: static_cast<bf16*>(p)[i] = float_to_bf16(float(v)); return;
    case DType::f16: static_cast<f16*>(p)[i] = float_to_f16(float(v)); return;
    case DType::i32: static_cast<int32_t*>(p)[i] = int32_t(v); return;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(v); return;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(v); return;
  }
}
}  // namespace

void fill(const ExecContext&, DType t, int64_t n, double value, void* out) {
  if (t == DType::f32) {
    float v = float(value);
    float* o = static_cast<float*>(out);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(t, out, i, value);
}

void cast(const ExecContext&, int64_t n, DType src_type, const void* src, DType dst_type, void* dst) {
  // bf16/f16 are rounded from float (their only compute type), so f64 -> bf16 goes through f32.
  bool via_float = dst_type == DType::bf16 || dst_type == DType::f16;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    double v = load(src_type, src, i);
    store(dst_type, dst, i, via_float ? double(float(v)) : v);
  }
}

void random(const ExecContext&, DType t, int64_t n, RandomDist dist, double a, double b, uint64_t seed,
            uint64_t offset, void* out) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    double v = dist == RandomDist::uniform ? a + (b - a) * philox_uniform(seed, offset, uint64_t(i))
                                           : a + b * philox_normal(seed, offset, uint64_t(i));
    store(t, out, i, v);
  }
}

template <class T>
static T apply_unary(UnaryOp op, T x, T alpha) {
  switch (op) {
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::abs: return std::abs(x);
    case UnaryOp::sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return T(1) / x;
    case UnaryOp::add_scalar: return x + alpha;
    case UnaryOp::mul_scalar: return x * alpha;
    case UnaryOp::pow_scalar: return std::pow(x, alpha);
  }
  return x;
}

void unary(const ExecContext&, UnaryOp op, DType t, int64_t n, const void* x, double alpha, void* out) {
  with_float_type(t, "unary", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* o = static_cast<T*>(out);
    T a = T(alpha);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = apply_unary(op, xs[i], a);
  });
}

template <class T>
static T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::relu_backward: return b > T(0) ? a : T(0);
    case BinaryOp::gt: return T(a > b);
    case BinaryOp::ge: return T(a >= b);
    case BinaryOp::eq: return T(a == b);
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
  }
  return a;
}

// Walks the output in row-major order; the innermost dimension is a tight loop with fixed strides.
void binary(const ExecContext&, BinaryOp op, DType t, const BroadcastLayout& L, const void* a, const void* b,
            void* out) {
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
#pragma omp parallel for if (rows * inner > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
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
      if (sa == 1 && sb == 1 && op == BinaryOp::add) {
        for (int64_t i = 0; i < inner; ++i) o[i] = ra[i] + rb[i];
      } else if (sa == 1 && sb == 1 && op == BinaryOp::mul) {
        for (int64_t i = 0; i < inner; ++i) o[i] = ra[i] * rb[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) o[i] = apply_binary(op, ra[i * sa], rb[i * sb]);
      }
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
