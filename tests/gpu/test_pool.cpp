// CUDA vs CPU parity of the pooling ops (kernels/cuda/pool.cu): max pooling (outputs, argmax gradients
// with overlapping windows, ties and NaN — all exact, since both devices scan and add in the same order)
// and 1x1 average pooling, f32 and f64, odd sizes, batch 1 and the ResNet stem and head shapes.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/ops/pool.h"
#include "tests/gpu/parity.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

struct MaxPoolCase {
  Shape shape;
  int64_t kernel, stride, padding;
};

// Odd sizes, batch 1, heavy overlap (stride 1), windows cut by the border, and the ResNet stem.
const std::vector<MaxPoolCase> kMaxPoolCases = {
    {{1, 1, 1, 1}, 1, 1, 0},   {{1, 3, 7, 7}, 3, 2, 1},    {{2, 5, 9, 11}, 2, 2, 0},
    {{1, 2, 8, 8}, 3, 1, 1},   {{3, 2, 13, 6}, 3, 2, 1},   {{1, 1, 5, 5}, 5, 1, 2},
    {{2, 3, 10, 7}, 4, 3, 2},  {{2, 16, 112, 112}, 3, 2, 1},
};

std::string label_of(const char* what, const MaxPoolCase& pc, DType dt) {
  return cat(what, " ", shape_str(pc.shape), " k", pc.kernel, " s", pc.stride, " p", pc.padding, " ", dtype_name(dt));
}

// Values drawn from {0, 1, 2}: most windows hold a tied maximum, several of them shared by overlapping windows.
Tensor tied_values(const Shape& shape, DType dt, uint64_t seed) {
  std::vector<double> v = random_tensor(shape, DType::f64, seed, 0.0, 3.0).to_vector();
  for (double& x : v) x = std::floor(x);
  return from_vector(v, shape, dt);
}

}  // namespace

TEST_CASE("max_pool2d on CUDA matches the CPU exactly (f32, f64, ResNet stem)") {
  SCPN_REQUIRE_CUDA();
  const Tolerance exact{0, 0};
  uint64_t seed = 300;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const MaxPoolCase& pc : kMaxPoolCases) {
      Tensor x = random_tensor(pc.shape, dt, ++seed).requires_grad_();
      auto pool = [&](const std::vector<Tensor>& v) { return max_pool2d(v[0], pc.kernel, pc.stride, pc.padding); };
      CHECK_PARITY(label_of("max_pool2d", pc, dt), pool, std::vector<Tensor>{x}, exact, exact);
    }
  }
}

TEST_CASE("max_pool2d on CUDA keeps the CPU's tie rule, NaN rule and -inf windows") {
  SCPN_REQUIRE_CUDA();
  const Tolerance exact{0, 0};
  uint64_t seed = 400;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const MaxPoolCase& pc : kMaxPoolCases) {
      Tensor ties = tied_values(pc.shape, dt, ++seed).requires_grad_();
      auto pool = [&](const std::vector<Tensor>& v) { return max_pool2d(v[0], pc.kernel, pc.stride, pc.padding); };
      CHECK_PARITY(label_of("max_pool2d ties", pc, dt), pool, std::vector<Tensor>{ties}, exact, exact);
    }
    // NaN wins its windows wherever it is; an all -inf window still names its first value.
    const MaxPoolCase pc{{2, 2, 9, 9}, 3, 2, 1};
    std::vector<double> v = tied_values(pc.shape, DType::f64, ++seed).to_vector();
    for (size_t i = 0; i < v.size(); i += 7) v[i] = NAN;
    for (size_t i = 81; i < 81 + 27; ++i) v[i] = -INFINITY;  // the top three rows of the second plane
    Tensor x = from_vector(v, pc.shape, dt).requires_grad_();
    auto pool = [&](const std::vector<Tensor>& in) { return max_pool2d(in[0], pc.kernel, pc.stride, pc.padding); };
    CHECK_PARITY(label_of("max_pool2d NaN/-inf", pc, dt), pool, std::vector<Tensor>{x}, exact, exact);
  }
}

TEST_CASE("average pooling to 1x1 on CUDA matches the CPU (ResNet head 7x7 and 1x1, odd sizes)") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::f64}) {
    // Sums are in double on both devices, so only the last bit of a rounded mean can differ.
    const Tolerance tol = dt == DType::f64 ? Tolerance{1e-14, 1e-13} : Tolerance{1e-7, 1e-6};
    for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{2, 512, 7, 7}, Shape{4, 2048, 1, 1}, Shape{3, 5, 13, 17},
                               Shape{1, 3, 112, 112}, Shape{1, 7, 33, 1}}) {
      Tensor x = random_tensor(shape, dt, ++seed).requires_grad_();
      CHECK_PARITY(cat("adaptive_avg_pool2d_1x1 ", shape_str(shape), " ", dtype_name(dt)),
                   [](const std::vector<Tensor>& v) { return adaptive_avg_pool2d_1x1(v[0]); },
                   std::vector<Tensor>{x}, tol, tol);
      CHECK_PARITY(cat("global_avg_pool ", shape_str(shape), " ", dtype_name(dt)),
                   [](const std::vector<Tensor>& v) { return global_avg_pool(v[0]); }, std::vector<Tensor>{x}, tol,
                   tol);
    }
  }
}
