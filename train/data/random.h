// Randomness of the input pipeline as pure functions of (seed, epoch, index): the epoch's sample order
// and each sample's augmentation stream. Nothing is shared between threads, so batches do not depend
// on the number of loader threads, and a resumed run sees the same batches as an uninterrupted one.
#pragma once
#include <cstdint>
#include <vector>

namespace scpn::data {

// A private Philox stream (engine/random.h) for one sample: key from (seed, epoch), block
// offset from the dataset index. Each draw consumes one 32-bit word.
class SampleRng {
 public:
  SampleRng(uint64_t seed, uint64_t epoch, uint64_t index);
  double uniform();                         // [0, 1), 24 random bits
  double uniform(double low, double high);  // [low, high)
  int64_t integer(int64_t low, int64_t high);  // uniform in [low, high] (inclusive); high - low < 2^24

 private:
  uint64_t key_, first_block_, word_ = 0;
};

// The order in which an epoch visits samples 0..n-1: a Fisher-Yates shuffle driven by a Philox stream
// keyed on (seed, epoch), or the identity when shuffle is false.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, uint64_t epoch, bool shuffle);

}  // namespace scpn::data
