// CUDA select kernels (kernels/cuda/select.cu) against the CPU ones, through the engine ops of
// engine/ops/select.h: k-th magnitudes must be the same elements bit for bit (random and heavily tied
// scores, ±0, NaN of either sign, ranks unordered with repeats, sizes 1 to 1000003, f32 and f64), and
// magnitude and capacity masks must be equal. Skips without a CUDA device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/ops/select.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

const Device kGpu = cuda_device(0);

// Uniform scores in [−1, 1).
Tensor random_scores(int64_t n, DType dtype, uint64_t seed) { return test::random_tensor({n}, dtype, seed); }

// Scores on a grid of 1/8 with both signs: every magnitude repeats many times, and −0 and +0 appear.
Tensor tied_scores(int64_t n, DType dtype, uint64_t seed) {
  std::vector<double> v = test::random_tensor({n}, DType::f64, seed).to_vector();
  for (double& x : v) x = std::round(x * 8.0) / 8.0;
  if (n > 2) v[1] = -0.0;
  return from_vector(v, {n}, dtype);
}

// Random scores with NaNs of both signs at every `stride`-th position.
Tensor scores_with_nans(int64_t n, DType dtype, uint64_t seed, int64_t stride) {
  std::vector<double> v = test::random_tensor({n}, DType::f64, seed).to_vector();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t i = 0; i < n; i += stride) v[size_t(i)] = (i / stride) % 2 == 0 ? nan : -nan;
  return from_vector(v, {n}, dtype);
}

// Ranks in no order, with repeats: both ends, the middle, and a spread of others.
std::vector<int64_t> ranks_for(int64_t n) {
  std::vector<int64_t> ks = {n, 1, (n + 1) / 2, 1, n, std::max<int64_t>(1, n / 3)};
  for (int64_t j = 1; j <= 7; ++j) ks.push_back(1 + (j * 7919 * (n - 1) / 11) % n);
  ks.push_back(ks[3]);
  return ks;
}

// The independent oracle: |scores| fully sorted, NaN last; the k-th entry of it for every k.
std::vector<double> sorted_oracle(const Tensor& scores, const std::vector<int64_t>& ks) {
  std::vector<double> v = scores.to_vector();
  for (double& x : v) x = std::abs(x);
  std::stable_partition(v.begin(), v.end(), [](double x) { return !std::isnan(x); });
  const auto numbers = std::find_if(v.begin(), v.end(), [](double x) { return std::isnan(x); });
  std::sort(v.begin(), numbers);
  std::vector<double> out;
  for (int64_t k : ks) out.push_back(v[size_t(k - 1)]);
  return out;
}

// CUDA and CPU must return the same elements: exact comparison, NaN equal to NaN.
void check_kth_equal(const char* what, const Tensor& scores, const std::vector<int64_t>& ks) {
  const std::vector<double> cpu = abs_kth_values(scores, ks);
  const std::vector<double> gpu = abs_kth_values(scores.to(kGpu), ks);
  INFO(what, " n = ", scores.numel(), " dtype ", dtype_name(scores.dtype()));
  CHECK_CLOSE(gpu, cpu, 0.0, 0.0);
  CHECK_CLOSE(gpu, sorted_oracle(scores, ks), 0.0, 0.0);
}

}  // namespace

TEST_CASE("cuda abs_kth_values equals the CPU exactly: random and tied scores, odd sizes") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64})
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(7), int64_t(33), int64_t(1000), int64_t(1000003)}) {
      check_kth_equal("random", random_scores(n, dtype, uint64_t(n) + 11), ranks_for(n));
      check_kth_equal("tied", tied_scores(n, dtype, uint64_t(n) + 12), ranks_for(n));
    }
}

TEST_CASE("cuda abs_kth_values: a 4-D score tensor and every rank of a small one") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor scores = test::random_tensor({7, 3, 3, 3}, dtype, 5);
    check_kth_equal("4-D", scores, ranks_for(scores.numel()));
    Tensor small = tied_scores(37, dtype, 6);
    std::vector<int64_t> every;
    for (int64_t k = 37; k >= 1; --k) every.push_back(k);
    check_kth_equal("every rank", small, every);
  }
}

TEST_CASE("cuda abs_kth_values ranks NaN of either sign above every number") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64}) {
    // 1000 scores, every 7th NaN (143 of them): ranks above 857 land on NaN.
    Tensor scores = scores_with_nans(1000, dtype, 21, 7);
    check_kth_equal("NaN", scores, {1000, 857, 858, 1, 500, 857, 999, 2});
    // Scores with +inf as well: inf is the largest number, below every NaN.
    std::vector<double> v = scores.to_vector();
    v[3] = std::numeric_limits<double>::infinity();
    v[4] = -std::numeric_limits<double>::infinity();
    check_kth_equal("NaN and inf", from_vector(v, {1000}, dtype), {855, 856, 857, 858, 1000});
    // Nothing but NaN.
    check_kth_equal("all NaN", scores_with_nans(5, dtype, 22, 1), {1, 5, 3});
  }
}

TEST_CASE("cuda magnitude_mask and capacity_masks equal the CPU's, ties and NaN included") {
  SCPN_REQUIRE_CUDA();
  const std::vector<double> capacities = {1.0, 0.8, 0.6, 0.4, 0.2, 0.05};
  for (DType dtype : {DType::f32, DType::f64})
    for (int64_t n : {int64_t(1), int64_t(33), int64_t(4099), int64_t(1000003)}) {
      for (const Tensor& scores : {random_scores(n, dtype, 31), tied_scores(n, dtype, 32),
                                   scores_with_nans(n, dtype, 33, 5)}) {
        INFO("n = ", n, " dtype ", dtype_name(dtype));
        const std::vector<Tensor> cpu = capacity_masks(scores, capacities);
        const std::vector<Tensor> gpu = capacity_masks(scores.to(kGpu), capacities);
        REQUIRE(gpu.size() == cpu.size());
        for (size_t c = 0; c < cpu.size(); ++c) {
          CHECK(gpu[c].device() == kGpu);
          CHECK_CLOSE(gpu[c].to(kCPU), cpu[c], 0.0, 0.0);
        }
        // Thresholds that are not elements: between grid values, zero, and NaN (keeps nothing).
        for (double tau : {0.3, 0.0, std::numeric_limits<double>::quiet_NaN()})
          CHECK_CLOSE(magnitude_mask(scores.to(kGpu), tau).to(kCPU), magnitude_mask(scores, tau), 0.0, 0.0);
      }
    }
}
