// GEMM kernels (kernels/gemm.h): our blocked CPU GEMM and, when built, OpenBLAS, against a naive
// double-precision triple loop — all four transpose combinations, alpha/beta (beta = 0 over NaN),
// padded leading dimensions, odd sizes across the block edges, f32 and f64 — and SCPN_CPU_GEMM.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

struct Impl {
  const char* name;
  GemmFn* fn;
};

std::vector<Impl> implementations() {
  std::vector<Impl> list{{"ours", cpu::gemm_ours}};
#if defined(SCPN_HAVE_OPENBLAS)
  list.push_back({"openblas", cpu::gemm_openblas});
#endif
  return list;
}

struct Case {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1, beta = 0;
  int64_t pad = 0;  // extra elements per row beyond the row length, in A, B and C alike
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSentinel = 12345.0;  // C's row padding: must survive untouched

// Runs one case through `impl` in element type T and compares with the double-precision loop.
template <class T>
void check_case(const Impl& impl, const Case& c, uint32_t seed) {
  INFO(cat(impl.name, " ", sizeof(T) == 4 ? "f32" : "f64", " trans_a=", c.trans_a, " trans_b=", c.trans_b,
           " m=", c.m, " n=", c.n, " k=", c.k, " alpha=", c.alpha, " beta=", c.beta, " pad=", c.pad));
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  // Padding of A and B is NaN: a kernel that reads past a row poisons its result.
  std::vector<T> A(size_t(a_rows * lda), T(kNaN)), B(size_t(b_rows * ldb), T(kNaN));
  std::vector<T> C(size_t(c.m * ldc), T(kSentinel));
  for (int64_t i = 0; i < a_rows; ++i)
    for (int64_t j = 0; j < a_cols; ++j) A[size_t(i * lda + j)] = T(dist(rng));
  for (int64_t i = 0; i < b_rows; ++i)
    for (int64_t j = 0; j < b_cols; ++j) B[size_t(i * ldb + j)] = T(dist(rng));
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) C[size_t(i * ldc + j)] = c.beta == 0 ? T(kNaN) : T(dist(rng));

  auto op_a = [&](int64_t i, int64_t p) { return double(c.trans_a ? A[size_t(p * lda + i)] : A[size_t(i * lda + p)]); };
  auto op_b = [&](int64_t p, int64_t j) { return double(c.trans_b ? B[size_t(j * ldb + p)] : B[size_t(p * ldb + j)]); };
  std::vector<double> expected, actual;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double dot = 0;
      for (int64_t p = 0; p < c.k; ++p) dot += op_a(i, p) * op_b(p, j);
      const double old = double(C[size_t(i * ldc + j)]);
      expected.push_back(c.alpha * dot + (c.beta == 0 ? 0.0 : c.beta * old));
    }

  const GemmArgs g{.trans_a = c.trans_a, .trans_b = c.trans_b, .m = c.m, .n = c.n, .k = c.k, .alpha = c.alpha,
                   .a = A.data(), .lda = lda, .b = B.data(), .ldb = ldb, .beta = c.beta, .c = C.data(), .ldc = ldc};
  impl.fn(ExecContext{kCPU}, sizeof(T) == 4 ? DType::f32 : DType::f64, g);

  bool padding_intact = true;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) actual.push_back(double(C[size_t(i * ldc + j)]));
    for (int64_t j = c.n; j < ldc; ++j) padding_intact &= C[size_t(i * ldc + j)] == T(kSentinel);
  }
  CHECK(padding_intact);
  // Rounding of a k-term dot product grows at most like k·eps·Σ|a·b| (≤ k·eps·k here); the realistic
  // error is far smaller, while an indexing bug is of order 1.
  const double eps = std::numeric_limits<T>::epsilon();
  const double atol = 8.0 * eps * double(c.k + 1) * std::max(1.0, std::abs(c.alpha)) + 4.0 * eps;
  CHECK_CLOSE(actual, expected, atol, 4.0 * eps);
}

const std::pair<double, double> kAlphaBeta[] = {{1.0, 0.0}, {1.0, 1.0}, {-1.5, 0.25}, {0.5, 0.0}, {2.0, -1.0}};

template <class T>
void check_sizes(const Impl& impl, const std::vector<std::array<int64_t, 3>>& sizes) {
  uint32_t seed = 1;
  for (const auto& [m, n, k] : sizes)
    for (int t = 0; t < 4; ++t) {
      const auto [alpha, beta] = kAlphaBeta[seed % 5];
      Case c{bool(t & 1), bool(t & 2), m, n, k, alpha, beta, int64_t(seed % 3 == 0 ? 0 : 3)};
      check_case<T>(impl, c, seed++);
    }
}

// Every mix of small odd sizes: below, at and above one micro-tile (6×16 f32, 6×8 f64).
std::vector<std::array<int64_t, 3>> small_sizes() {
  std::vector<std::array<int64_t, 3>> s;
  for (int64_t m : {1, 7, 13, 33})
    for (int64_t n : {1, 7, 13, 33})
      for (int64_t k : {1, 7, 13, 33}) s.push_back({m, n, k});
  return s;
}

// Larger mixes crossing the cache blocks (MC = 144 f32 / 72 f64, KC = 256, NC = 4080) and the
// multi-threaded path.
const std::vector<std::array<int64_t, 3>> kLargeSizes = {
    {65, 127, 257}, {257, 65, 127}, {127, 257, 65}, {257, 257, 257}, {1, 257, 127}, {257, 1, 65},
    {33, 65, 600},  {7, 4100, 13},  {300, 17, 5},   {64, 200, 27}};

}  // namespace

TEST_CASE("gemm: small odd sizes, all transposes, alpha/beta, padded leading dimensions") {
  for (const Impl& impl : implementations()) {
    check_sizes<float>(impl, small_sizes());
    check_sizes<double>(impl, small_sizes());
  }
}

TEST_CASE("gemm: sizes across the cache blocks and threads") {
  for (const Impl& impl : implementations()) {
    check_sizes<float>(impl, kLargeSizes);
    check_sizes<double>(impl, kLargeSizes);
  }
}

TEST_CASE("gemm: beta = 0 overwrites NaN, k = 0 and alpha = 0 scale C, empty outputs") {
  for (const Impl& impl : implementations()) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_case<float>(impl, {ta, tb, 65, 33, 129, 1.0, 0.0, 2}, 100);  // NaN-filled C, beta = 0
        check_case<double>(impl, {ta, tb, 65, 33, 129, 0.75, 0.0, 0}, 101);
        check_case<float>(impl, {ta, tb, 5, 7, 0, 1.0, 0.0, 1}, 102);   // k = 0, beta = 0: zeros over NaN
        check_case<double>(impl, {ta, tb, 5, 7, 0, 1.0, 0.5, 1}, 103);  // k = 0: C = beta·C
        check_case<float>(impl, {ta, tb, 9, 20, 11, 0.0, 2.0, 0}, 104);  // alpha = 0: C = beta·C
        check_case<double>(impl, {ta, tb, 1, 1, 1, 1.0, 0.0, 0}, 105);
        check_case<double>(impl, {ta, tb, 0, 7, 5, 1.0, 0.0, 0}, 106);   // m = 0: nothing to do
        check_case<float>(impl, {ta, tb, 7, 0, 5, 1.0, 1.0, 0}, 107);    // n = 0
      }
  }
}

TEST_CASE("gemm: bad dtype names the kernel") {
  float x = 0;
  GemmArgs g;
  g.m = g.n = g.k = 1;
  g.a = g.b = g.c = &x;
  g.lda = g.ldb = g.ldc = 1;
  CHECK_THROWS_WITH_AS(cpu::gemm_ours(ExecContext{kCPU}, DType::i32, g),
                       "gemm: dtype i32 is not supported on the CPU (f32 or f64)", Error);
}

TEST_CASE("gemm: SCPN_CPU_GEMM chooses the registered implementation") {
  // Stand-ins for the two implementations: select_gemm only compares and returns them.
  GemmFn* const ours = cpu::gemm_ours;
  GemmFn* const blas = [](const ExecContext&, DType, const GemmArgs&) {};
  const char* saved = std::getenv("SCPN_CPU_GEMM");
  const std::string saved_value = saved ? saved : "";

  unsetenv("SCPN_CPU_GEMM");
  CHECK((cpu::select_gemm(ours, blas) == ours));  // ours by default, even when OpenBLAS is built
  CHECK((cpu::select_gemm(ours, nullptr) == ours));
  setenv("SCPN_CPU_GEMM", "ours", 1);
  CHECK((cpu::select_gemm(ours, blas) == ours));
  setenv("SCPN_CPU_GEMM", "openblas", 1);
  CHECK((cpu::select_gemm(ours, blas) == blas));
  CHECK_THROWS_WITH_AS(cpu::select_gemm(ours, nullptr),
                       "SCPN_CPU_GEMM=openblas, but this build has no OpenBLAS (install libopenblas-openmp-dev and "
                       "re-run cmake), or set SCPN_CPU_GEMM=ours",
                       Error);
  setenv("SCPN_CPU_GEMM", "mkl", 1);
  CHECK_THROWS_WITH_AS(cpu::select_gemm(ours, blas), "SCPN_CPU_GEMM=mkl: expected 'ours' or 'openblas'", Error);

  if (saved) setenv("SCPN_CPU_GEMM", saved_value.c_str(), 1);
  else unsetenv("SCPN_CPU_GEMM");
  CHECK(kernels().gemm.supports(kCPU));
}
