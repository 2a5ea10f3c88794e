// CUDA vs CPU parity of log_softmax and softmax (kernels/cuda/softmax.cu): forward and backward, f32 and
// f64, narrow rows (a warp per row) and wide ones (a block per row: 513, 1000, 11000 and 100003 columns),
// batch 1, logits around ±1000, and rows holding NaN or ±inf.
#include <doctest/doctest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "engine/ops/softmax.h"
#include "tests/support/parity.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

// Both devices shift by the same maximum and sum in double; only the order of the additions differs.
Tolerance tolerance(DType dt) { return dt == DType::f64 ? Tolerance{1e-12, 1e-12} : Tolerance{1e-5, 1e-5}; }

Tensor log_softmax_of(const std::vector<Tensor>& v) { return log_softmax(v[0]); }
Tensor softmax_of(const std::vector<Tensor>& v) { return softmax(v[0]); }

const std::vector<Shape> kShapes = {{1, 1},    {1, 10},    {7, 33},    {5, 512},     {5, 513},
                                    {64, 1000}, {3, 11000}, {300, 17}, {2, 100003}};

}  // namespace

TEST_CASE("log_softmax and softmax on CUDA match the CPU (narrow and wide rows, f32 and f64)") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 600;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : kShapes) {
      Tensor x = random_tensor(shape, dt, ++seed, -4.0, 4.0).requires_grad_();
      CHECK_PARITY(cat("log_softmax ", shape_str(shape), " ", dtype_name(dt)), log_softmax_of,
                   std::vector<Tensor>{x}, tolerance(dt), tolerance(dt));
      CHECK_PARITY(cat("softmax ", shape_str(shape), " ", dtype_name(dt)), softmax_of, std::vector<Tensor>{x},
                   tolerance(dt), tolerance(dt));
    }
  }
}

TEST_CASE("log_softmax on CUDA is stable at logits of ±1000, like the CPU") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 700;
  for (DType dt : {DType::f32, DType::f64}) {
    // lse (double on both devices) near 1000 is known to about an ulp of 1000, 1e-13, which the outputs
    // inherit; f32 outputs as large as -2000 round to 1e-4.
    const Tolerance tol = dt == DType::f64 ? Tolerance{1e-10, 1e-12} : Tolerance{1e-4, 1e-5};
    for (const Shape& shape : {Shape{4, 10}, Shape{8, 1000}, Shape{2, 11000}}) {
      for (auto [low, high] : {std::pair{995.0, 1005.0}, std::pair{-1005.0, -995.0}, std::pair{-1000.0, 1000.0}}) {
        Tensor x = random_tensor(shape, dt, ++seed, low, high).requires_grad_();
        CHECK_PARITY(cat("log_softmax ", shape_str(shape), " in [", low, ", ", high, ") ", dtype_name(dt)),
                     log_softmax_of, std::vector<Tensor>{x}, tol, tol);
      }
    }
  }
}

TEST_CASE("log_softmax on CUDA propagates NaN and inf per row, like the CPU") {
  SCPN_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t cols : {int64_t(5), int64_t(600)}) {  // a warp per row, then a block per row
      // Rows: a NaN, a +inf, one -inf entry (finite elsewhere), all -inf, and an ordinary row.
      std::vector<double> v = random_tensor({5, cols}, DType::f64, 800 + uint64_t(cols)).to_vector();
      v[size_t(0 * cols + cols / 2)] = NAN;
      v[size_t(1 * cols + 1)] = INFINITY;
      v[size_t(2 * cols + cols - 1)] = -INFINITY;
      for (int64_t c = 0; c < cols; ++c) v[size_t(3 * cols + c)] = -INFINITY;
      Tensor x = from_vector(v, {5, cols}, dt).requires_grad_();
      CHECK_PARITY(cat("log_softmax NaN/inf rows [5, ", cols, "] ", dtype_name(dt)), log_softmax_of,
                   std::vector<Tensor>{x}, tolerance(dt), tolerance(dt));
    }
  }
}
