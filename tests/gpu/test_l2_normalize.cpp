// CUDA vs CPU parity of l2_normalize (kernels/cuda/l2_normalize.cu): forward and backward, f32 and f64,
// narrow rows (a warp per row) and wide ones (a block per row), batch 1, rows whose norm is below eps
// (the constant-denominator branch), zero rows, and a norm exactly at eps.
#include <doctest/doctest.h>

#include <vector>

#include "engine/ops/l2_normalize.h"
#include "tests/support/parity.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

// Norms and dot products in double on both devices; only the order of the additions differs.
Tolerance tolerance(DType dt) { return dt == DType::f64 ? Tolerance{1e-12, 1e-12} : Tolerance{1e-5, 1e-5}; }

auto normalize_with(double eps) {
  return [eps](const std::vector<Tensor>& v) { return l2_normalize(v[0], eps); };
}

}  // namespace

TEST_CASE("l2_normalize on CUDA matches the CPU (narrow and wide rows, f32 and f64)") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1300;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : {Shape{1, 1}, Shape{7, 33}, Shape{64, 128}, Shape{3, 512}, Shape{3, 513},
                               Shape{5, 2048}, Shape{1, 11000}, Shape{2, 100003}, Shape{1000, 3}}) {
      Tensor x = random_tensor(shape, dt, ++seed).requires_grad_();
      CHECK_PARITY(cat("l2_normalize ", shape_str(shape), " ", dtype_name(dt)), normalize_with(1e-12),
                   std::vector<Tensor>{x}, tolerance(dt), tolerance(dt));
    }
  }
}

TEST_CASE("l2_normalize on CUDA takes the eps branch where the CPU does") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1400;
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t cols : {int64_t(4), int64_t(300), int64_t(1000)}) {
      // Rows alternate between tiny (norm far below eps = 0.1) and ordinary; row 2 is all zeros.
      std::vector<double> v = random_tensor({6, cols}, DType::f64, ++seed).to_vector();
      for (int64_t r = 0; r < 6; r += 2)
        for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] *= 1e-4;
      for (int64_t c = 0; c < cols; ++c) v[size_t(2 * cols + c)] = 0;
      Tensor x = from_vector(v, {6, cols}, dt).requires_grad_();
      CHECK_PARITY(cat("l2_normalize small rows [6, ", cols, "] eps 0.1 ", dtype_name(dt)), normalize_with(0.1),
                   std::vector<Tensor>{x}, tolerance(dt), tolerance(dt));
      // With eps = 1e-12 the tiny rows take the 1/norm branch: their gradients are ~1e4 times larger, and
      // so is the absolute effect of a last-bit difference in y or the norm.
      const Tolerance scaled{tolerance(dt).atol * 1e4, tolerance(dt).rtol};
      CHECK_PARITY(cat("l2_normalize small rows [6, ", cols, "] eps 1e-12 ", dtype_name(dt)),
                   normalize_with(1e-12), std::vector<Tensor>{x}, tolerance(dt), scaled);
    }
    // ‖(3, 4)‖ = 5 exactly: at norm = eps the gradient takes the (g − y⟨y, g⟩)/norm branch on both devices.
    Tensor at_eps = from_vector({3, 4, 0, 1}, {2, 2}, dt).requires_grad_();
    CHECK_PARITY(cat("l2_normalize norm = eps ", dtype_name(dt)), normalize_with(5.0), std::vector<Tensor>{at_eps},
                 tolerance(dt), tolerance(dt));
  }
}
