// CUDA vs CPU parity of cross_entropy (kernels/cuda/loss.cu): loss and logit gradient, f32 and f64, label
// smoothing 0 and 0.1, 1 to 11000 classes (a warp or a block per row), batch 1, logits around ±1000,
// NaN/inf logits, and a bitwise-repeatable loss on the device (the batch sum runs in a fixed order).
#include <doctest/doctest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "engine/ops/loss.h"
#include "tests/support/parity.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

Tensor random_targets(int64_t batch, int64_t classes, uint64_t seed) {
  std::vector<double> t = random_tensor({batch}, DType::f64, seed, 0.0, double(classes)).to_vector();
  for (double& v : t) v = std::floor(v);
  return from_vector(t, {batch}, DType::i64);
}

// Row losses and lse are f64 on both devices; the batch sum's order and the exp's last bit differ.
Tolerance loss_tolerance(DType dt) { return dt == DType::f64 ? Tolerance{1e-12, 1e-12} : Tolerance{1e-5, 1e-5}; }
Tolerance grad_tolerance(DType dt) { return dt == DType::f64 ? Tolerance{1e-14, 1e-12} : Tolerance{1e-8, 1e-5}; }

}  // namespace

TEST_CASE("cross_entropy on CUDA matches the CPU (1 to 11000 classes, smoothing 0 and 0.1)") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 900;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},     {1, 10},   {7, 10},   {33, 1000},
                                                           {256, 1000}, {3, 513}, {2, 11000}, {1, 11000}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (auto [batch, classes] : shapes) {
      for (double eps : {0.0, 0.1}) {
        Tensor logits = random_tensor({batch, classes}, dt, ++seed, -5.0, 5.0).requires_grad_();
        Tensor targets = random_targets(batch, classes, ++seed);
        auto loss = [eps](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], eps); };
        CHECK_PARITY(cat("cross_entropy [", batch, ", ", classes, "] eps ", eps, " ", dtype_name(dt)), loss,
                     (std::vector<Tensor>{logits, targets}), loss_tolerance(dt), grad_tolerance(dt));
      }
    }
  }
}

TEST_CASE("cross_entropy on CUDA is stable at logits of ±1000, like the CPU") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1000;
  for (DType dt : {DType::f32, DType::f64}) {
    // lse near 1000 is known to an ulp there (~1e-13 in f64), which both the row losses (differences of
    // numbers near 1000) and the probabilities exp(x − lse) inherit.
    const Tolerance out = dt == DType::f64 ? Tolerance{1e-10, 1e-12} : Tolerance{1e-4, 1e-5};
    const Tolerance grad = dt == DType::f64 ? Tolerance{1e-12, 1e-10} : Tolerance{1e-8, 1e-5};
    for (auto [low, high] : {std::pair{995.0, 1005.0}, std::pair{-1005.0, -995.0}, std::pair{-1000.0, 1000.0}}) {
      for (double eps : {0.0, 0.1}) {
        for (int64_t classes : {int64_t(10), int64_t(1000)}) {
          Tensor logits = random_tensor({8, classes}, dt, ++seed, low, high).requires_grad_();
          Tensor targets = random_targets(8, classes, ++seed);
          auto loss = [eps](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], eps); };
          CHECK_PARITY(cat("cross_entropy [8, ", classes, "] in [", low, ", ", high, ") eps ", eps, " ",
                           dtype_name(dt)),
                       loss, (std::vector<Tensor>{logits, targets}), out, grad);
        }
      }
    }
  }
}

TEST_CASE("cross_entropy on CUDA handles NaN and -inf logits like the CPU") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t classes : {int64_t(6), int64_t(700)}) {
      // Row 0: a −inf logit in a non-target class (finite loss at ε = 0, +inf at ε > 0); row 1: a NaN.
      std::vector<double> v = random_tensor({3, classes}, DType::f64, 1100 + uint64_t(classes)).to_vector();
      v[size_t(classes - 1)] = -INFINITY;
      v[size_t(classes + 2)] = NAN;
      Tensor logits = from_vector(v, {3, classes}, dt).requires_grad_();
      Tensor targets = from_vector({0, 1, double(classes - 1)}, {3}, DType::i64);
      for (double eps : {0.0, 0.1}) {
        auto loss = [eps](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], eps); };
        CHECK_PARITY(cat("cross_entropy NaN/-inf [3, ", classes, "] eps ", eps, " ", dtype_name(dt)), loss,
                     (std::vector<Tensor>{logits, targets}), loss_tolerance(dt), grad_tolerance(dt));
        // Without the NaN row, ε = 0 must keep the loss finite on the device too.
        if (eps == 0.0) {
          Tensor loss0 = cross_entropy(logits.detach().slice(0, 1).to(cuda_device(0)),
                                       targets.slice(0, 1).to(cuda_device(0)), 0.0);
          CHECK(std::isfinite(loss0.item()));
        }
      }
    }
  }
}

TEST_CASE("cross_entropy on CUDA gives the same bits on every run") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor logits = random_tensor({4096, 1000}, dt, 1200).to(cuda_device(0));
    Tensor targets = random_targets(4096, 1000, 1201).to(cuda_device(0));
    const double first = cross_entropy(logits, targets, 0.1).item();
    for (int run = 0; run < 3; ++run) CHECK(cross_entropy(logits, targets, 0.1).item() == first);
  }
}
