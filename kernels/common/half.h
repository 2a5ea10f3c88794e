// bf16 and f16 storage types with exact round-to-nearest-even conversion from float. On the CPU these
// types are storage only: kernels convert to float to compute.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common/host_device.h"

namespace scpn {

SCPN_HD uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
SCPN_HD float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct bf16 {
  uint16_t bits = 0;
};
struct f16 {
  uint16_t bits = 0;
};

SCPN_HD bf16 float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40u)};  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{uint16_t(u >> 16)};
}
SCPN_HD float bf16_to_float(bf16 h) { return bits_float(uint32_t(h.bits) << 16); }

SCPN_HD f16 float_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u)};            // NaN
  if (a >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};           // overflow -> inf
  if (a < 0x38800000u) {                                                // subnormal or zero
    // value = a_float; f16 subnormal step is 2^-24: round(a_float * 2^24) with ties to even.
    float v = bits_float(a) * 16777216.0f;
    float r = v + 12582912.0f - 12582912.0f;  // 1.5*2^23 trick: rounds to nearest even integer
    return f16{uint16_t(sign | uint32_t(r))};
  }
  uint32_t e = ((a >> 23) - 112u) << 10;  // rebias 127 -> 15
  uint32_t m = (a >> 13) & 0x3ffu;
  uint32_t rest = a & 0x1fffu;
  uint32_t h = e | m;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;  // may carry into the exponent: correct
  return f16{uint16_t(sign | h)};
}
SCPN_HD float f16_to_float(f16 h) {
  uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  uint32_t e = (h.bits >> 10) & 0x1fu;
  uint32_t m = h.bits & 0x3ffu;
  if (e == 0) {  // zero or subnormal: m * 2^-24
    float v = float(m) * (1.0f / 16777216.0f);
    return bits_float(float_bits(v) | sign);
  }
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace scpn
