// Calls fn(T{}) with T the C++ type of a floating compute dtype (f32 or f64); the CPU computes bf16/f16
// only after conversion, so those and the integer types are rejected with the kernel's name.
#pragma once
#include "kernels/common/dtype.h"
#include "kernels/common/error.h"

namespace scpn::cpu {

template <class Fn>
void with_float_type(DType t, const char* kernel, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    default: throw Error(cat(kernel, ": dtype ", dtype_name(t), " is not supported on the CPU (f32 or f64)"));
  }
}

// Parallelise a loop only when it is worth a thread wake-up.
inline constexpr int64_t kParallelGrain = 1 << 15;

}  // namespace scpn::cpu
