// GEMM kernels (kernels/gemm.h) as op-harness cases against a naive double-precision loop, with every CPU
// GEMM of the build (ours, OpenBLAS) and on each device (cuBLAS): transposes, alpha/beta, leading dimensions,
// odd sizes across the block edges, beta = 0 over NaN, k = 0 and alpha = 0; SCPN_CPU_GEMM.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/devices.h"
#include "engine/dispatch.h"
#include "tests/support/check.h"
#include "tests/support/each_cpu_gemm.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::Tolerance;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSentinel = 12345.0;  // C's row padding: must survive untouched

struct GemmCase {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1, beta = 0;
  int64_t pad = 0;            // extra elements per row beyond the row length, in A, B and C alike
  bool nan_operands = false;  // A and B entirely NaN (for k = 0 or alpha = 0: they must not be read)
  uint32_t seed = 0;

  int64_t a_rows() const { return trans_a ? k : m; }
  int64_t a_cols() const { return trans_a ? m : k; }
  int64_t b_rows() const { return trans_b ? n : k; }
  int64_t b_cols() const { return trans_b ? k : n; }
  // BLAS wants leading dimensions >= 1 even for empty operands.
  int64_t lda() const { return std::max<int64_t>(a_cols() + pad, 1); }
  int64_t ldb() const { return std::max<int64_t>(b_cols() + pad, 1); }
  int64_t ldc() const { return std::max<int64_t>(n + pad, 1); }
};

// The operands as the kernel sees them: A, B and C stored with their leading dimensions, as flat buffers.
// Padding of A and B is NaN (a kernel that reads past a row poisons its result); C's padding holds the
// sentinel; C itself is NaN where beta = 0 (it must be overwritten, not scaled).
std::vector<Tensor> operands(const GemmCase& c, DType dt) {
  std::mt19937 rng(c.seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const int64_t lda = c.lda(), ldb = c.ldb(), ldc = c.ldc();
  std::vector<double> A(size_t(std::max<int64_t>(c.a_rows() * lda, 1)), kNaN);
  std::vector<double> B(size_t(std::max<int64_t>(c.b_rows() * ldb, 1)), kNaN);
  std::vector<double> C(size_t(std::max<int64_t>(c.m * ldc, 1)), kSentinel);
  if (!c.nan_operands) {
    for (int64_t i = 0; i < c.a_rows(); ++i)
      for (int64_t j = 0; j < c.a_cols(); ++j) A[size_t(i * lda + j)] = dist(rng);
    for (int64_t i = 0; i < c.b_rows(); ++i)
      for (int64_t j = 0; j < c.b_cols(); ++j) B[size_t(i * ldb + j)] = dist(rng);
  }
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) C[size_t(i * ldc + j)] = c.beta == 0 ? kNaN : dist(rng);
  return {from_vector(A, {int64_t(A.size())}, dt), from_vector(B, {int64_t(B.size())}, dt),
          from_vector(C, {int64_t(C.size())}, dt)};
}

// The kernel in the gemm slot for the operands' device, on a copy of C; returns op(A)·op(B) as [m, n] after
// checking that C's row padding survived.
Tensor run_gemm(const GemmCase& c, const std::vector<Tensor>& v) {
  const Device device = v[0].device();
  const DType dt = v[0].dtype();
  Tensor out = v[2].clone();
  const GemmArgs g{.trans_a = c.trans_a, .trans_b = c.trans_b, .m = c.m, .n = c.n, .k = c.k, .alpha = c.alpha,
                   .a = v[0].raw_data(), .lda = c.lda(), .b = v[1].raw_data(), .ldb = c.ldb(), .beta = c.beta,
                   .c = out.raw_data(), .ldc = c.ldc()};
  kernels().gemm.on(device)(exec_context(device), dt, g);
  const std::vector<double> buffer = out.to_vector();
  const int64_t ldc = c.ldc();
  std::vector<double> result;
  bool padding_intact = true;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) result.push_back(buffer[size_t(i * ldc + j)]);
    for (int64_t j = c.n; j < ldc; ++j) padding_intact &= buffer[size_t(i * ldc + j)] == kSentinel;
  }
  CHECK(padding_intact);
  return from_vector(result, {c.m, c.n}, dt, device);
}

// alpha·op(A)·op(B) + beta·C by the definition, in double, from the operands' (rounded) values; A and B
// are not read where alpha = 0.
Expected naive_gemm(const GemmCase& c, const std::vector<Tensor>& in) {
  const std::vector<double> A = in[0].to_vector(), B = in[1].to_vector(), C = in[2].to_vector();
  const int64_t lda = c.lda(), ldb = c.ldb(), ldc = c.ldc();
  auto op_a = [&](int64_t i, int64_t p) { return c.trans_a ? A[size_t(p * lda + i)] : A[size_t(i * lda + p)]; };
  auto op_b = [&](int64_t p, int64_t j) { return c.trans_b ? B[size_t(j * ldb + p)] : B[size_t(p * ldb + j)]; };
  Expected e;
  std::vector<double> dot(size_t(c.n));
  for (int64_t i = 0; i < c.m; ++i) {
    std::fill(dot.begin(), dot.end(), 0.0);
    if (c.alpha != 0)  // each dot product still adds its k terms in order p = 0, 1, …
      for (int64_t p = 0; p < c.k; ++p)
        for (int64_t j = 0; j < c.n; ++j) dot[size_t(j)] += op_a(i, p) * op_b(p, j);
    for (int64_t j = 0; j < c.n; ++j) {
      const double old = C[size_t(i * ldc + j)];
      e.out.push_back((c.alpha != 0 ? c.alpha * dot[size_t(j)] : 0.0) + (c.beta == 0 ? 0.0 : c.beta * old));
    }
  }
  return e;
}

// Rounding of a k-term dot product grows at most like k·eps·Σ|a·b| (≤ k·eps·k here); the realistic error
// is far smaller, while an indexing bug is of order 1.
Tolerance rounding_tolerance(const GemmCase& c, double eps) {
  return {8.0 * eps * double(c.k + 1) * std::max(1.0, std::abs(c.alpha)) + 4.0 * eps, 4.0 * eps};
}

std::string label_of(const GemmCase& c) {
  return cat("gemm ", c.trans_a ? "T" : "N", c.trans_b ? "T" : "N", " m=", c.m, " n=", c.n, " k=", c.k, " alpha=",
             c.alpha, " beta=", c.beta, " pad=", c.pad, c.nan_operands ? " NaN A/B" : "");
}

OpCase op_case(const GemmCase& c) {
  const Tolerance f32 = rounding_tolerance(c, std::numeric_limits<float>::epsilon());
  const Tolerance f64 = rounding_tolerance(c, std::numeric_limits<double>::epsilon());
  return {.name = label_of(c),
          .inputs = [c](DType dt) { return operands(c, dt); },
          .op = [c](const std::vector<Tensor>& v) { return run_gemm(c, v); },
          .oracle = [c](const std::vector<Tensor>& in, const Tensor&) { return naive_gemm(c, in); },
          .oracle_f32 = f32,
          .oracle_f64 = f64,
          .gradcheck = false,  // a kernel, not an op with a backward
          // Each device is within the rounding bound of the exact result, so within twice it of the CPU.
          .parity_f32 = {2 * f32.atol, 2 * f32.rtol},
          .parity_f64 = {2 * f64.atol, 2 * f64.rtol}};
}

const std::pair<double, double> kAlphaBeta[] = {{1.0, 0.0}, {1.0, 1.0}, {-1.5, 0.25}, {0.5, 0.0}, {2.0, -1.0}};

void add_sizes(std::vector<OpCase>& cases, const std::vector<std::array<int64_t, 3>>& sizes) {
  uint32_t seed = 1;
  for (const auto& [m, n, k] : sizes)
    for (int t = 0; t < 4; ++t) {
      const auto [alpha, beta] = kAlphaBeta[seed % 5];
      cases.push_back(op_case({.trans_a = bool(t & 1), .trans_b = bool(t & 2), .m = m, .n = n, .k = k,
                               .alpha = alpha, .beta = beta, .pad = int64_t(seed % 3 == 0 ? 0 : 3), .seed = seed}));
      ++seed;
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
    {65, 127, 257}, {257, 65, 127}, {127, 257, 65}, {257, 257, 257}, {1, 257, 127},
    {257, 1, 65},   {33, 65, 600},  {7, 4100, 13},  {300, 17, 5},    {64, 200, 27}};

// Sizes of ResNet's classifier and beyond, for the devices only: the naive loop over them takes seconds.
const std::vector<std::array<int64_t, 3>> kDeviceSizes = {{512, 512, 512}, {256, 1000, 512}};

// beta = 0 over a NaN-filled C, k = 0 and alpha = 0 (C = beta·C without reading A or B, here NaN), empty C.
std::vector<GemmCase> edge_cases() {
  std::vector<GemmCase> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto add = [&](GemmCase c) {
        c.trans_a = ta;
        c.trans_b = tb;
        cases.push_back(c);
      };
      add({.m = 65, .n = 33, .k = 129, .alpha = 1.0, .beta = 0.0, .pad = 2, .seed = 100});  // NaN-filled C
      add({.m = 65, .n = 33, .k = 129, .alpha = 0.75, .beta = 0.0, .pad = 0, .seed = 101});
      add({.m = 5, .n = 7, .k = 0, .alpha = 1.0, .beta = 0.0, .pad = 1, .seed = 102});   // k = 0: zeros over NaN
      add({.m = 5, .n = 7, .k = 0, .alpha = 1.0, .beta = 0.5, .pad = 1, .seed = 103});   // k = 0: C = beta·C
      add({.m = 5, .n = 7, .k = 0, .alpha = 1.0, .beta = -2.0, .pad = 0, .seed = 104});  // k = 0, contiguous C
      add({.m = 9, .n = 20, .k = 11, .alpha = 0.0, .beta = 2.0, .pad = 0, .seed = 105});  // alpha = 0: C = beta·C
      add({.m = 9, .n = 20, .k = 11, .alpha = 0.0, .beta = 2.0, .pad = 0, .nan_operands = true, .seed = 106});
      add({.m = 9, .n = 20, .k = 11, .alpha = 0.0, .beta = 0.0, .pad = 3, .nan_operands = true, .seed = 107});
      add({.m = 9, .n = 20, .k = 11, .alpha = 0.0, .beta = 1.0, .pad = 3, .nan_operands = true, .seed = 108});
      add({.m = 1, .n = 1, .k = 1, .alpha = 1.0, .beta = 0.0, .pad = 0, .seed = 109});
      add({.m = 0, .n = 7, .k = 5, .alpha = 1.0, .beta = 0.0, .pad = 0, .seed = 110});  // m = 0: nothing to do
      add({.m = 7, .n = 0, .k = 5, .alpha = 1.0, .beta = 1.0, .pad = 0, .seed = 111});  // n = 0
    }
  return cases;
}

std::vector<OpCase> gemm_cases() {
  std::vector<OpCase> cases;
  add_sizes(cases, small_sizes());
  add_sizes(cases, kLargeSizes);
  for (const GemmCase& c : edge_cases()) cases.push_back(op_case(c));
  return cases;
}

}  // namespace

TEST_CASE("gemm: op harness") {
  test::with_each_cpu_gemm([](const char* name) { test::run_op_cases(cat("gemm (", name, ")"), gemm_cases()); });
}

// The device's GEMM against the naive loop itself (the harness compares devices with the CPU only).
TEST_CASE("gpu: gemm on CUDA matches the double-precision loop (parity mode)") {
  SCPN_REQUIRE_CUDA();
  ParityModeScope parity_mode;
  const Device gpu = cuda_device(0);
  std::vector<OpCase> cases = gemm_cases();
  add_sizes(cases, kDeviceSizes);
  for (const OpCase& c : cases)
    for (DType dt : c.dtypes) {
      CAPTURE(c.name);
      CAPTURE(dtype_name(dt));
      const std::vector<Tensor> in = c.inputs(dt);
      std::vector<Tensor> on_gpu;
      for (const Tensor& t : in) on_gpu.push_back(t.to(gpu));
      const Tensor out = c.op(on_gpu);
      const Tolerance& tol = c.oracle_tolerance(dt);
      CHECK_CLOSE(out.to_vector(), c.oracle(in, Tensor()).out, tol.atol, tol.rtol);
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
