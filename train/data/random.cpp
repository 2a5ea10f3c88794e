// Key derivation for the per-sample streams and the seeded shuffle.
#include "train/data/random.h"

#include <numeric>

#include "engine/error.h"
#include "engine/random.h"

namespace scpn::data {

namespace {

// SplitMix64's finaliser: turns (seed, epoch, purpose) into well-spread, unrelated Philox keys.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Separate keys for the two uses, so the order stream never coincides with a sample stream.
constexpr uint64_t kSamplePurpose = 0x5A4D504C45ull, kOrderPurpose = 0x4F52444552ull;

uint64_t derive_key(uint64_t seed, uint64_t epoch, uint64_t purpose) { return mix(mix(mix(seed) ^ epoch) ^ purpose); }

// Words per sample stream: 2^20 blocks of four, far more than any transform pipeline draws.
constexpr uint64_t kBlocksPerSample = uint64_t(1) << 20;

}  // namespace

SampleRng::SampleRng(uint64_t seed, uint64_t epoch, uint64_t index)
    : key_(derive_key(seed, epoch, kSamplePurpose)), first_block_(index * kBlocksPerSample) {}

double SampleRng::uniform() {
  SCPN_CHECK(word_ < 4 * kBlocksPerSample, "SampleRng: a sample drew more than ", 4 * kBlocksPerSample, " numbers");
  uint64_t w = word_++;
  return uniform01(philox4x32_10(key_, first_block_ + w / 4).w[w % 4]);
}

double SampleRng::uniform(double low, double high) { return low + (high - low) * uniform(); }

int64_t SampleRng::integer(int64_t low, int64_t high) {
  SCPN_CHECK(low <= high && high - low < (int64_t(1) << 24), "SampleRng::integer: bad range [", low, ", ", high, "]");
  int64_t r = low + int64_t(uniform() * double(high - low + 1));
  return r > high ? high : r;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, uint64_t epoch, bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  if (!shuffle) return order;
  const uint64_t key = derive_key(seed, epoch, kOrderPurpose);
  // Step i draws a 64-bit number from block i; its remainder mod (i + 1) is uniform up to a bias of
  // (i + 1) / 2^64, negligible for any data set.
  for (int64_t i = n - 1; i > 0; --i) {
    PhiloxWords b = philox4x32_10(key, uint64_t(i));
    uint64_t r = (uint64_t(b.w[0]) << 32 | b.w[1]) % uint64_t(i + 1);
    std::swap(order[size_t(i)], order[size_t(r)]);
  }
  return order;
}

}  // namespace scpn::data
