// Contract of the elementwise family: fills, casts, random fills, unary maps, binary maps with
// broadcasting, and `where`. Operands are contiguous buffers of one dtype (f32 or f64 for arithmetic;
// casts and fills take any dtype). Every function overwrites its output.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// out[i] = value
using FillFn = void(const ExecContext&, DType, int64_t n, double value, void* out);

// dst[i] = convert(src[i]); floats to integers truncate toward zero, as static_cast does.
using CastFn = void(const ExecContext&, int64_t n, DType src_type, const void* src, DType dst_type,
                    void* dst);

// Philox streams (kernels/common/philox.h): uniform in [a, b) or normal with mean a and stddev b.
enum class RandomDist : uint8_t { uniform, normal };
using RandomFn = void(const ExecContext&, DType, int64_t n, RandomDist, double a, double b,
                      uint64_t seed, uint64_t offset, void* out);

// out[i] = f(x[i]; alpha). relu, abs, sign (sign(0) = 0), neg, exp, log, sqrt, square, reciprocal,
// add_scalar (x + alpha), mul_scalar (x * alpha), pow_scalar (x ^ alpha).
enum class UnaryOp : uint8_t {
  relu, abs, sign, neg, exp, log, sqrt, square, reciprocal, add_scalar, mul_scalar, pow_scalar
};
using UnaryFn = void(const ExecContext&, UnaryOp, DType, int64_t n, const void* x, double alpha,
                     void* out);

// out[idx] = a[idx·a_stride] ∘ b[idx·b_stride] over the output shape; a stride of 0 broadcasts.
// relu_backward: a · (b > 0) (a = gradient, b = relu output). gt / ge / eq give 1 or 0 in a's dtype.
enum class BinaryOp : uint8_t { add, sub, mul, div, relu_backward, gt, ge, eq, maximum, minimum };
struct BroadcastLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};
using BinaryFn = void(const ExecContext&, BinaryOp, DType, const BroadcastLayout&, const void* a,
                      const void* b, void* out);

// out[i] = cond[i] != 0 ? a[i] : b[i]; cond is u8, all of length n.
using WhereFn = void(const ExecContext&, DType, int64_t n, const uint8_t* cond, const void* a,
                     const void* b, void* out);

// y[i] += alpha · x[i] (accumulates into y: gradient accumulation and optimizer updates use it).
using AxpyFn = void(const ExecContext&, DType, int64_t n, double alpha, const void* x, void* y);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/elementwise.cpp
FillFn fill;
CastFn cast;
RandomFn random;
UnaryFn unary;
BinaryFn binary;
WhereFn where;
AxpyFn axpy;
}  // namespace cpu

namespace cuda {  // kernels/cuda/elementwise.cu
FillFn fill;
CastFn cast;
RandomFn random;
UnaryFn unary;
BinaryFn binary;
WhereFn where;
AxpyFn axpy;
}  // namespace cuda

}  // namespace scpn
