// Philox4x32-10 counter-based random numbers (Salmon et al., SC'11): a stream is a 64-bit seed (the key)
// and a 64-bit block offset (the counter); block b yields four 32-bit words.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"

namespace scpn {

struct PhiloxWords {
  uint32_t w[4];
};

// Block `block` of stream `seed`. Any element is computed from (seed, offset, index) alone, so the CPU and
// CUDA backends produce the same numbers bit for bit, whatever the thread layout.
SCPN_HD PhiloxWords philox4x32_10(uint64_t seed, uint64_t block) {
  uint32_t c0 = uint32_t(block), c1 = uint32_t(block >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxWords{{c0, c1, c2, c3}};
}

// [0, 1) with 24 random bits: exactly representable in float, so f32 and f64 agree.
SCPN_HD double uniform01(uint32_t word) { return double(word >> 8) * (1.0 / 16777216.0); }

// Uniform element i of a draw at `offset` (every factory's convention, CPU and CUDA): word (i % 4) of block
// (offset + i / 4), mapped by uniform01.
SCPN_HD double philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return uniform01(philox4x32_10(seed, offset + i / 4).w[i % 4]);
}

// Normal values come from one block per pair: elements 2p and 2p + 1 are Box-Muller on words 0 and 1 of
// block (offset + p), computed in double by kernels/common/random_transform.h, shared by both backends so
// that they write the same bits.

// How many blocks a draw of n values consumes, so the next draw starts on fresh blocks.
SCPN_HD uint64_t philox_uniform_blocks(uint64_t n) { return (n + 3) / 4; }
SCPN_HD uint64_t philox_normal_blocks(uint64_t n) { return (n + 1) / 2; }

}  // namespace scpn
