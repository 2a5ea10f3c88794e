// cuBLAS GEMM (kernels/cublas/gemm.cpp) on cuda:0 with TF32 tensor cores allowed, which needs the CUDA
// runtime's math mode: f32 agrees loosely with a double-precision loop, f64 (which ignores TF32) still to
// rounding. Everything else about the GEMM, devices included, is in tests/ops/test_gemm.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/dispatch.h"
#include "engine/cuda/runtime.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

const Device kGpu = cuda_device(0);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSentinel = 12345.0;  // C's row padding: must survive untouched

struct Case {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1, beta = 0;
  int64_t pad = 0;         // extra elements per row beyond the row length, in A, B and C alike
  bool nan_operands = false;  // A and B entirely NaN (for k = 0 or alpha = 0: they must not be read)
};

// Runs one case through the CUDA gemm slot and compares with the double-precision loop. `tf32` loosens
// the tolerance to TF32's 10-bit mantissa (the caller sets the math mode).
void check_case(const Case& c, DType dt, uint32_t seed, bool tf32 = false) {
  INFO(dtype_name(dt), " trans_a=", c.trans_a, " trans_b=", c.trans_b, " m=", c.m, " n=", c.n, " k=", c.k,
       " alpha=", c.alpha, " beta=", c.beta, " pad=", c.pad, tf32 ? " tf32" : "");
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  const int64_t lda = std::max<int64_t>(a_cols + c.pad, 1), ldb = std::max<int64_t>(b_cols + c.pad, 1);
  const int64_t ldc = std::max<int64_t>(c.n + c.pad, 1);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  // Padding of A and B is NaN: a kernel that reads past a row poisons its result.
  std::vector<double> A(size_t(std::max<int64_t>(a_rows * lda, 1)), kNaN), B(size_t(std::max<int64_t>(b_rows * ldb, 1)), kNaN);
  std::vector<double> C(size_t(std::max<int64_t>(c.m * ldc, 1)), kSentinel);
  if (!c.nan_operands) {
    for (int64_t i = 0; i < a_rows; ++i)
      for (int64_t j = 0; j < a_cols; ++j) A[size_t(i * lda + j)] = dist(rng);
    for (int64_t i = 0; i < b_rows; ++i)
      for (int64_t j = 0; j < b_cols; ++j) B[size_t(i * ldb + j)] = dist(rng);
  }
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) C[size_t(i * ldc + j)] = c.beta == 0 ? kNaN : dist(rng);
  // Round the operands to the dtype first, so the reference multiplies the same numbers.
  Tensor a = from_vector(A, {int64_t(A.size())}, dt), b = from_vector(B, {int64_t(B.size())}, dt);
  Tensor cc = from_vector(C, {int64_t(C.size())}, dt);
  A = a.to_vector();
  B = b.to_vector();
  C = cc.to_vector();

  auto op_a = [&](int64_t i, int64_t p) { return c.trans_a ? A[size_t(p * lda + i)] : A[size_t(i * lda + p)]; };
  auto op_b = [&](int64_t p, int64_t j) { return c.trans_b ? B[size_t(j * ldb + p)] : B[size_t(p * ldb + j)]; };
  std::vector<double> expected, actual;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double dot = 0;
      if (c.alpha != 0)
        for (int64_t p = 0; p < c.k; ++p) dot += op_a(i, p) * op_b(p, j);
      const double old = C[size_t(i * ldc + j)];
      expected.push_back((c.alpha != 0 ? c.alpha * dot : 0.0) + (c.beta == 0 ? 0.0 : c.beta * old));
    }

  Tensor ag = a.to(kGpu), bg = b.to(kGpu), cg = cc.to(kGpu);
  const GemmArgs g{.trans_a = c.trans_a, .trans_b = c.trans_b, .m = c.m, .n = c.n, .k = c.k, .alpha = c.alpha,
                   .a = ag.raw_data(), .lda = lda, .b = bg.raw_data(), .ldb = ldb, .beta = c.beta, .c = cg.raw_data(), .ldc = ldc};
  kernels().gemm.on(kGpu)(exec_context(kGpu), dt, g);

  const std::vector<double> result = cg.to_vector();
  bool padding_intact = true;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) actual.push_back(result[size_t(i * ldc + j)]);
    for (int64_t j = c.n; j < ldc; ++j) padding_intact &= result[size_t(i * ldc + j)] == kSentinel;
  }
  CHECK(padding_intact);
  const double eps = dt == DType::f64 ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
  if (tf32) {
    // Inputs rounded to 10 mantissa bits: ~1e-3 relative per product, errors growing like sqrt(k).
    CHECK_CLOSE(actual, expected, 2e-3 * std::sqrt(double(c.k) + 1) * std::max(1.0, std::abs(c.alpha)), 1e-2);
  } else {
    // Rounding of a k-term dot product grows at most like k·eps·Σ|a·b| (≤ k·eps·k here); the realistic
    // error is far smaller, while an indexing bug is of order 1.
    const double atol = 8.0 * eps * double(c.k + 1) * std::max(1.0, std::abs(c.alpha)) + 4.0 * eps;
    CHECK_CLOSE(actual, expected, atol, 4.0 * eps);
  }
}

const std::pair<double, double> kAlphaBeta[] = {{1.0, 0.0}, {1.0, 1.0}, {-1.5, 0.25}, {0.5, 0.0}, {2.0, -1.0}};

void check_sizes(const std::vector<std::array<int64_t, 3>>& sizes, DType dt, bool tf32 = false) {
  uint32_t seed = 1;
  for (const auto& [m, n, k] : sizes)
    for (int t = 0; t < 4; ++t) {
      const auto [alpha, beta] = kAlphaBeta[seed % 5];
      Case c{bool(t & 1), bool(t & 2), m, n, k, alpha, beta, int64_t(seed % 3 == 0 ? 0 : 3)};
      check_case(c, dt, seed++, tf32);
    }
}

const std::vector<std::array<int64_t, 3>> kLargeSizes = {
    {65, 127, 257}, {257, 65, 127}, {127, 257, 65}, {257, 257, 257}, {1, 257, 127}, {257, 1, 65},
    {33, 65, 600},  {7, 4100, 13},  {300, 17, 5},   {512, 512, 512}, {256, 1000, 512}};

}  // namespace

TEST_CASE("cuBLAS gemm with TF32 allowed agrees loosely with the reference") {
  SCPN_REQUIRE_CUDA();
  cuda::MathModeGuard tf32({.allow_tf32 = true, .deterministic = false});
  check_sizes(kLargeSizes, DType::f32, true);
  check_sizes(kLargeSizes, DType::f64);  // f64 ignores TF32: still exact to rounding
}
