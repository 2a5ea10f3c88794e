// Conversions between the storage dtypes and double, shared by the CPU and CUDA casts, fills and random
// draws so that both backends write the same bits for every input.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/common/half.h"
#include "kernels/common/host_device.h"

namespace scpn {

// NaN keeps its sign and payload as far as the target holds them, with the quiet bit set (what x86 and Arm
// do), spelled out in bits so that no backend depends on what its conversion instruction does with NaN.
SCPN_HD double f32_to_f64(float f) {
  if (f != f) {
    const uint32_t u = float_bits(f);
    const uint64_t bits = (uint64_t(u >> 31) << 63) | 0x7ff8000000000000ull | (uint64_t(u & 0x7fffffu) << 29);
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  return double(f);
}

SCPN_HD float f64_to_f32(double d) {
  if (d != d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    return bits_float((uint32_t(u >> 63) << 31) | 0x7fc00000u | uint32_t((u >> 29) & 0x7fffffu));
  }
  return float(d);
}

// double -> integer: truncation toward zero; out of range saturates and NaN gives 0. C++ leaves both
// undefined (x86 returns INT_MIN, CUDA and Arm saturate), so the rule is written here once for all.
// The comparisons are written so that NaN fails them all and lands on 0.
SCPN_HD int32_t f64_to_i32(double v) {
  if (v >= 2147483648.0) return INT32_MAX;
  if (v > -2147483649.0) return int32_t(v);
  return v < 0 ? INT32_MIN : 0;
}
SCPN_HD int64_t f64_to_i64(double v) {
  if (v >= 9223372036854775808.0) return INT64_MAX;
  if (v >= -9223372036854775808.0) return int64_t(v);  // -2^63 itself is representable
  return v < 0 ? INT64_MIN : 0;
}
SCPN_HD uint8_t f64_to_u8(double v) {
  if (v >= 256.0) return 255;
  if (v > -1.0) return uint8_t(v);  // (-1, 0) truncates to 0
  return 0;
}

// Storage value -> double (exact except i64 beyond 2^53, which rounds to nearest even).
template <class T>
SCPN_HD double to_double(T x) {
  if constexpr (std::is_same_v<T, float>) return f32_to_f64(x);
  else if constexpr (std::is_same_v<T, double>) return x;
  else if constexpr (std::is_same_v<T, bf16>) return f32_to_f64(bf16_to_float(x));
  else if constexpr (std::is_same_v<T, f16>) return f32_to_f64(f16_to_float(x));
  else return double(x);  // i32, i64, u8
}

// double -> storage value: f32/f64 exact or rounded to nearest even; bf16/f16 rounded from f32 (their
// compute type); NaN and integers as above.
template <class T>
SCPN_HD T from_double(double v) {
  if constexpr (std::is_same_v<T, float>) return f64_to_f32(v);
  else if constexpr (std::is_same_v<T, double>) return v;
  else if constexpr (std::is_same_v<T, bf16>) return float_to_bf16(f64_to_f32(v));
  else if constexpr (std::is_same_v<T, f16>) return float_to_f16(f64_to_f32(v));
  else if constexpr (std::is_same_v<T, int32_t>) return f64_to_i32(v);
  else if constexpr (std::is_same_v<T, int64_t>) return f64_to_i64(v);
  else {
    static_assert(std::is_same_v<T, uint8_t>, "from_double: not a storage type");
    return f64_to_u8(v);
  }
}

}  // namespace scpn
