// The random kernels' transformation of Philox words into uniform and normal values, shared by the CPU
// and CUDA backends so that both write the same bits for the same (seed, offset).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/common/host_device.h"
#include "kernels/common/philox.h"

namespace scpn {

// Bit-identical across backends: only IEEE operations that every backend rounds the same way (+, −, ×, /,
// sqrt, fma, each correctly rounded), with every multiply-add written as an explicit fma, because compilers
// otherwise fuse a·b + c on some targets (nvcc always, g++ with -march=native) and not others. libm's
// log/sin/cos are not used: the device and host libraries differ in the last bit. So f64 and f32 outputs
// (and bf16/f16, rounded from f32) are the same bits on every backend.

// ln(k · 2^-24) for an integer 1 <= k <= 2^24 (so the argument is in (0, 1]): an exact exponent split,
// then a 2·atanh series (measured ≤ 1.35 ulp).
SCPN_HD double log_of_24bit_fraction(uint32_t k) {
  // k = m · 2^e with m in [√½, √2): read the exponent and mantissa off the bits of double(k), exactly.
  const double x = double(k);
  uint64_t bits;
  std::memcpy(&bits, &x, 8);
  int e = int((bits >> 52) & 0x7ff) - 1023;
  uint64_t mantissa = bits & 0x000fffffffffffffull;
  uint64_t m_exponent = 0x3ff0000000000000ull;         // m in [1, 2)
  if (mantissa > 0x6a09e667f3bcdull) {                 // m > √2 (mantissa bits of √2): use m/2, e + 1
    m_exponent = 0x3fe0000000000000ull;
    e += 1;
  }
  const uint64_t m_bits = m_exponent | mantissa;
  double m;
  std::memcpy(&m, &m_bits, 8);
  e -= 24;
  // ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| <= 0.1716: m − 1 is exact (Sterbenz) and so is m + 1
  // (m has at most 24 significant bits). The series 2s·(1 + s²/3 + s⁴/5 + … + s²⁴/25) leaves out
  // terms below 1e-21 relative.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 25;
  p = std::fma(p, s2, 1.0 / 23);
  p = std::fma(p, s2, 1.0 / 21);
  p = std::fma(p, s2, 1.0 / 19);
  p = std::fma(p, s2, 1.0 / 17);
  p = std::fma(p, s2, 1.0 / 15);
  p = std::fma(p, s2, 1.0 / 13);
  p = std::fma(p, s2, 1.0 / 11);
  p = std::fma(p, s2, 1.0 / 9);
  p = std::fma(p, s2, 1.0 / 7);
  p = std::fma(p, s2, 1.0 / 5);
  p = std::fma(p, s2, 1.0 / 3);
  const double two_s = 2.0 * s;                          // exact
  const double log_m = std::fma(two_s * s2, p, two_s);   // 2s + 2s·s²·p
  // e·ln2 with ln2 split in two (fdlibm's constants): e·ln2_hi is exact for |e| < 2^20.
  const double ln2_hi = 6.93147180369123816490e-01;
  const double ln2_lo = 1.90821492927058770002e-10;
  return std::fma(double(e), ln2_hi, std::fma(double(e), ln2_lo, log_m));
}

struct SinCos {
  double sin, cos;
};

// sin and cos of 2π·j/2^24 for 0 <= j < 2^24. The quadrant (j / 2^22) and the fold at π/4 are exact
// integer steps, so the polynomials only see angles t in [0, π/4], where the Taylor series to t^19
// (sin) and t^18 (cos) leave out terms below 1e-20 (measured ≤ 1.71 ulp).
SCPN_HD SinCos sincos_of_24bit_turn(uint32_t j) {
  const uint32_t quadrant = (j >> 22) & 3u;
  uint32_t r = j & 0x3fffffu;             // angle inside the quadrant, in units of 2π/2^24
  const bool folded = r > (1u << 21);     // beyond π/4: take π/2 − angle and swap sin and cos
  if (folded) r = (1u << 22) - r;
  const double two_pi_over_2p24 = 6.283185307179586476925286766559 / 16777216.0;
  const double t = double(r) * two_pi_over_2p24;
  const double t2 = t * t;
  double ps = -1.0 / 121645100408832000.0;  // −1/19!
  ps = std::fma(ps, t2, 1.0 / 355687428096000.0);
  ps = std::fma(ps, t2, -1.0 / 1307674368000.0);
  ps = std::fma(ps, t2, 1.0 / 6227020800.0);
  ps = std::fma(ps, t2, -1.0 / 39916800.0);
  ps = std::fma(ps, t2, 1.0 / 362880.0);
  ps = std::fma(ps, t2, -1.0 / 5040.0);
  ps = std::fma(ps, t2, 1.0 / 120.0);
  ps = std::fma(ps, t2, -1.0 / 6.0);
  const double sin_t = std::fma(t * t2, ps, t);  // t + t³·ps
  double pc = -1.0 / 6402373705728000.0;         // −1/18!
  pc = std::fma(pc, t2, 1.0 / 20922789888000.0);
  pc = std::fma(pc, t2, -1.0 / 87178291200.0);
  pc = std::fma(pc, t2, 1.0 / 479001600.0);
  pc = std::fma(pc, t2, -1.0 / 3628800.0);
  pc = std::fma(pc, t2, 1.0 / 40320.0);
  pc = std::fma(pc, t2, -1.0 / 720.0);
  pc = std::fma(pc, t2, 1.0 / 24.0);
  pc = std::fma(pc, t2, -1.0 / 2.0);
  const double cos_t = std::fma(t2, pc, 1.0);  // 1 + t²·pc
  const double s = folded ? cos_t : sin_t;
  const double c = folded ? sin_t : cos_t;
  switch (quadrant) {
    case 0: return {s, c};
    case 1: return {c, -s};   // angle + π/2
    case 2: return {-s, -c};  // angle + π
    default: return {-c, s};  // angle + 3π/2
  }
}

// Box–Muller on one Philox block (philox.h's convention): u1 = (w0 >> 8) + 1 over 2^24 in (0, 1],
// u2 = (w1 >> 8) over 2^24 in [0, 1); z0 = r·cos 2πu2 (even elements), z1 = r·sin 2πu2 (odd elements).
// The values differ from a libm-based Box–Muller by about 1 ulp of double, far below any statistical effect.
struct NormalPair {
  double z0, z1;
};
SCPN_HD NormalPair box_muller(uint32_t w0, uint32_t w1) {
  const double radius = std::sqrt(-2.0 * log_of_24bit_fraction((w0 >> 8) + 1u));
  const SinCos sc = sincos_of_24bit_turn(w1 >> 8);
  return {radius * sc.cos, radius * sc.sin};
}

// a + (b − a)·u for one Philox word (uniform in [a, b)).
SCPN_HD double uniform_from_word(double a, double b, uint32_t word) {
  return std::fma(b - a, uniform01(word), a);
}
// mean + stddev·z.
SCPN_HD double normal_from_z(double mean, double stddev, double z) { return std::fma(stddev, z, mean); }

// Element i of a draw at (seed, offset), in the block layout of philox.h. The CUDA kernels compute whole
// blocks at a time with the same functions.
SCPN_HD double random_uniform_value(double a, double b, uint64_t seed, uint64_t offset, uint64_t i) {
  return uniform_from_word(a, b, philox4x32_10(seed, offset + i / 4).w[i % 4]);
}
SCPN_HD double random_normal_value(double mean, double stddev, uint64_t seed, uint64_t offset, uint64_t i) {
  const PhiloxWords block = philox4x32_10(seed, offset + i / 2);
  const NormalPair z = box_muller(block.w[0], block.w[1]);
  return normal_from_z(mean, stddev, i % 2 == 0 ? z.z0 : z.z1);
}

}  // namespace scpn
