// CUDA vs CPU parity of the elementwise family (kernels/cuda/elementwise.cu): unary and broadcast binary
// ops forward and backward through the engine ops (f32, f64, odd sizes, misaligned views); casts between
// all seven dtypes, fills and random draws compared BIT FOR BIT (their arithmetic is shared SCPN_HD code).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_tensor;
using test::Tolerance;

namespace {

const std::vector<DType> kAllDtypes = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8};

// Empty when the two CPU tensors hold the same bytes; else the first differing element, as bytes in hex.
std::string byte_difference(const Tensor& actual, const Tensor& expected) {
  if (actual.dtype() != expected.dtype() || actual.shape() != expected.shape())
    return cat("dtype/shape differ: ", dtype_name(actual.dtype()), " ", shape_str(actual.shape()), " vs ",
               dtype_name(expected.dtype()), " ", shape_str(expected.shape()));
  const size_t size = dtype_size(actual.dtype());
  const auto* a = static_cast<const unsigned char*>(actual.raw_data());
  const auto* e = static_cast<const unsigned char*>(expected.raw_data());
  for (int64_t i = 0; i < actual.numel(); ++i) {
    if (std::memcmp(a + size_t(i) * size, e + size_t(i) * size, size) == 0) continue;
    auto hex = [&](const unsigned char* p) {
      std::string s;
      const char* digits = "0123456789abcdef";
      for (size_t k = size; k-- > 0;) s += std::string{digits[p[k] >> 4], digits[p[k] & 15]};  // little-endian
      return s;
    };
    return cat("element ", i, ": cuda 0x", hex(a + size_t(i) * size), ", cpu 0x", hex(e + size_t(i) * size));
  }
  return "";
}

// Arithmetic on NaN returns a NaN whose payload is the hardware's choice (x86 keeps an operand's, the GPU
// returns a canonical one), so arithmetic results compare as values: both NaN, or the same bits.
std::string value_difference(const Tensor& actual, const Tensor& expected) {
  const std::vector<double> a = actual.to_vector(), e = expected.to_vector();
  for (size_t i = 0; i < a.size() && i < e.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(e[i])) continue;
    if (std::memcmp(&a[i], &e[i], sizeof(double)) != 0) return cat("element ", i, ": cuda ", a[i], ", cpu ", e[i]);
  }
  return a.size() == e.size() ? "" : "sizes differ";
}

#define CHECK_SAME_VALUES(actual, expected)                             \
  do {                                                                  \
    const std::string scpn_diff_ = value_difference(actual, expected); \
    INFO(scpn_diff_);                                                   \
    CHECK(scpn_diff_.empty());                                          \
  } while (0)

#define CHECK_SAME_BYTES(actual, expected)                   \
  do {                                                       \
    const std::string scpn_diff_ = byte_difference(actual, expected); \
    INFO(scpn_diff_);                                        \
    CHECK(scpn_diff_.empty());                               \
  } while (0)

Tolerance out_tolerance(DType dt) { return dt == DType::f64 ? Tolerance{1e-13, 1e-12} : Tolerance{1e-6, 1e-5}; }

// Source values for the casts: zeros of both signs, infinities, NaN, values that round (ties to even in
// bf16/f16), f16 overflow and subnormals, integer limits and values outside every integer range.
std::vector<double> cast_values() {
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.1, -2.75, 3.14159265358979, 255.0, 255.5, 256.0, 300.0,
                           -0.999, -1.5, 65504.0, 65519.0, 65520.0, 1e5, 6e-8, 3e-8, 1e-5, 1e-40, 1e-310,
                           1.00390625, 1.01171875, 2147483647.0, 2147483648.0, -2147483648.0, -2147483649.0,
                           9007199254740993.0, 9.3e18, -9.3e18, 1e30, 3.4e38, 3.5e38, 1e300, INFINITY, -INFINITY,
                           std::nan(""), -std::nan("")};
  Generator g(4242);
  for (double x : uniform({200}, -1000.0, 1000.0, g, DType::f64).to_vector()) v.push_back(x);
  for (double x : uniform({100}, -3.0, 3.0, g, DType::f64).to_vector()) v.push_back(x);
  return v;
}

}  // namespace

TEST_CASE("unary ops on CUDA match the CPU, forward and backward") {
  SCPN_REQUIRE_CUDA();
  struct Op {
    const char* name;
    Tensor (*f)(const Tensor&);
    bool positive_inputs;
  };
  const std::vector<Op> ops = {{"relu", relu, false}, {"abs", abs, false},   {"sign", sign, false},
                               {"neg", neg, false},   {"exp", exp, false},   {"log", log, true},
                               {"sqrt", sqrt, true},  {"square", square, false}};
  uint64_t seed = 100;
  for (DType dt : {DType::f32, DType::f64}) {
    const Tolerance tol = out_tolerance(dt);
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
      for (const Op& op : ops) {
        Tensor x = op.positive_inputs ? random_tensor({n}, dt, ++seed, 0.1, 3.0) : random_tensor({n}, dt, ++seed);
        x.requires_grad_();
        CHECK_PARITY(cat(op.name, " n=", n, " ", dtype_name(dt)), [&](const std::vector<Tensor>& v) { return op.f(v[0]); },
                     {x}, tol, tol);
      }
      Tensor p = random_tensor({n}, dt, ++seed, 0.2, 2.0).requires_grad_();
      CHECK_PARITY(cat("add_scalar n=", n, " ", dtype_name(dt)),
                   [](const std::vector<Tensor>& v) { return add_scalar(v[0], 1.7); }, {p}, tol, tol);
      CHECK_PARITY(cat("mul_scalar n=", n, " ", dtype_name(dt)),
                   [](const std::vector<Tensor>& v) { return mul_scalar(v[0], -0.37); }, {p}, tol, tol);
      CHECK_PARITY(cat("pow_scalar n=", n, " ", dtype_name(dt)),
                   [](const std::vector<Tensor>& v) { return pow_scalar(v[0], 1.7); }, {p}, tol, tol);
    }
    // A view that starts one element into its storage: the kernels fall back from 16-byte packs.
    Tensor base = random_tensor({1001, 1}, dt, ++seed);
    Tensor misaligned = base.slice(1, 1001).requires_grad_();
    CHECK_PARITY(cat("square of a misaligned view ", dtype_name(dt)),
                 [](const std::vector<Tensor>& v) { return square(v[0]); }, {misaligned}, tol, tol);
  }
}

TEST_CASE("binary ops on CUDA match the CPU with broadcasting, forward and backward") {
  SCPN_REQUIRE_CUDA();
  struct Shapes {
    Shape a, b;
  };
  const std::vector<Shapes> cases = {
      {{1}, {1}},          {{7}, {7}},                   {{1000003}, {1000003}},     {{1000003}, {1}},
      {{1}, {7}},          {{2, 3, 5, 7}, {1, 3, 1, 1}}, {{2, 3, 5, 7}, {3, 1, 1}},  {{4, 1, 3}, {2, 1}},
      {{2, 3}, {1}},       {{5, 1, 33}, {5, 7, 1}},      {{3, 64, 9, 9}, {64, 1, 1}}, {{1, 3, 1, 1}, {2, 3, 5, 7}},
      {{2, 1, 3, 1, 5, 1, 2, 3}, {1, 4, 3, 2, 1, 1, 2, 1}}};
  struct Op {
    const char* name;
    Tensor (*f)(const Tensor&, const Tensor&);
  };
  const std::vector<Op> ops = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}, {"maximum", maximum}};
  uint64_t seed = 300;
  for (DType dt : {DType::f32, DType::f64}) {
    // Gradients summed back to a broadcast operand add many terms: the reduction's tolerance.
    const Tolerance tol = out_tolerance(dt);
    const Tolerance grad_tol = dt == DType::f64 ? Tolerance{1e-11, 1e-11} : Tolerance{1e-4, 1e-5};
    for (const Shapes& s : cases) {
      for (const Op& op : ops) {
        Tensor a = random_tensor(s.a, dt, ++seed).requires_grad_();
        // b away from 0 (div) and, being positive while a is in [-1, 1), rarely tied with a (maximum).
        Tensor b = random_tensor(s.b, dt, ++seed, 0.5, 1.5).requires_grad_();
        CHECK_PARITY(cat(op.name, " ", shape_str(s.a), " ", shape_str(s.b), " ", dtype_name(dt)),
                     [&](const std::vector<Tensor>& v) { return op.f(v[0], v[1]); }, std::vector<Tensor>({a, b}), tol,
                     grad_tol);
      }
    }
  }
}

TEST_CASE("comparisons, where, fill_ and axpy_ on CUDA match the CPU") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
      Tensor a = random_tensor({n}, dt, ++seed), b = random_tensor({n}, dt, ++seed);
      Tensor threshold = random_tensor({1}, dt, ++seed);
      CHECK_SAME_BYTES(greater(a.to(gpu), b.to(gpu)).to(kCPU), greater(a, b));
      CHECK_SAME_BYTES(greater_equal(a.to(gpu), threshold.to(gpu)).to(kCPU), greater_equal(a, threshold));
      Tensor cond = greater(a, b);
      Tensor pa = a.detach().requires_grad_(), pb = b.detach().requires_grad_();
      CHECK_PARITY(cat("where n=", n, " ", dtype_name(dt)),
                   [&](const std::vector<Tensor>& v) { return where(cond.to(v[0].device()), v[0], v[1]); },
                   std::vector<Tensor>({pa, pb}), out_tolerance(dt), out_tolerance(dt));
      // y += alpha·x: one fma per element on the GPU; the CPU rounds the same way where it is compiled
      // with FMA instructions, so allow the double rounding of the other case.
      Tensor y_cpu = random_tensor({n}, dt, ++seed);
      Tensor y_gpu = y_cpu.to(gpu);
      axpy_(y_cpu, -0.37, a);
      axpy_(y_gpu, -0.37, a.to(gpu));
      CHECK_CLOSE(y_gpu.to(kCPU), y_cpu, dt == DType::f64 ? 1e-15 : 1e-7, dt == DType::f64 ? 1e-15 : 1e-7);
    }
  }
  // fill_ in every dtype: the stored bits are the CPU's (value conversion shared), aligned or not.
  for (DType dt : kAllDtypes) {
    for (double value : {0.0, -0.0, 1.0, -2.5, 0.1, 300.7, 70000.0, -1e10, double(INFINITY), std::nan("")}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(value);
      Tensor cpu = zeros({1001}, dt);
      Tensor gpu_t = zeros({1001}, dt, gpu);
      fill_(cpu.slice(1, 1001), value);
      fill_(gpu_t.slice(1, 1001), value);
      CHECK_SAME_BYTES(gpu_t.to(kCPU), cpu);
      CHECK_SAME_BYTES(full({7}, value, dt, gpu).to(kCPU), full({7}, value, dt));
    }
  }
}

TEST_CASE("casts between all dtypes on CUDA match the CPU bit for bit") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  const std::vector<double> values = cast_values();
  const int64_t n = int64_t(values.size());
  Tensor source_f64 = from_vector(values, {n}, DType::f64);
  for (DType src : kAllDtypes) {
    Tensor source = source_f64.to(src);
    if (src == DType::f32) {
      // NaN payloads and signs: kept through f32 <-> f64 and into bf16/f16 as far as they fit.
      const uint32_t nans[4] = {0x7fc12345u, 0xffc00001u, 0x7f800001u, 0xff9fffffu};
      std::memcpy(static_cast<float*>(source.raw_data()) + 1, nans, sizeof(nans));
    }
    Tensor source_gpu = source.to(gpu);
    for (DType dst : kAllDtypes) {
      if (dst == src) continue;  // Tensor::to returns the tensor itself
      CAPTURE(dtype_name(src));
      CAPTURE(dtype_name(dst));
      CHECK_SAME_BYTES(source_gpu.to(dst).to(kCPU), source.to(dst));
      // A view one element into its storage (no packed loads or stores).
      Tensor view_cpu = source.slice(1, n), view_gpu = source_gpu.slice(1, n);
      CHECK_SAME_BYTES(view_gpu.to(dst).to(kCPU), view_cpu.to(dst));
    }
  }
  // Casting a large tensor exercises the packed path over many blocks.
  Tensor big = random_tensor({1000003}, DType::f32, 77, -70000.0, 70000.0);
  for (DType dst : kAllDtypes) {
    if (dst == DType::f32) continue;
    CAPTURE(dtype_name(dst));
    CHECK_SAME_BYTES(big.to(gpu).to(dst).to(kCPU), big.to(dst));
  }
}

TEST_CASE("random draws on CUDA equal the CPU's bit for bit for the same seed and offset") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  const uint64_t seeds[] = {0, 7, (uint64_t(1) << 40) + 3};
  const uint64_t offsets[] = {0, 1, 3, 5, (uint64_t(1) << 32) + 1};
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (uint64_t seed : seeds) {
      for (uint64_t offset : offsets) {
        for (int64_t n : {int64_t(1), int64_t(2), int64_t(3), int64_t(7), int64_t(1001)}) {
          CAPTURE(dtype_name(dt));
          CAPTURE(seed);
          CAPTURE(offset);
          CAPTURE(n);
          Generator cpu_gen(seed, offset), gpu_gen(seed, offset);
          CHECK_SAME_BYTES(uniform({n}, -0.5, 2.0, gpu_gen, dt, gpu).to(kCPU), uniform({n}, -0.5, 2.0, cpu_gen, dt));
          CHECK_SAME_BYTES(normal({n}, 0.3, 1.7, gpu_gen, dt, gpu).to(kCPU), normal({n}, 0.3, 1.7, cpu_gen, dt));
          CHECK(gpu_gen.offset == cpu_gen.offset);
        }
      }
    }
    // Large draws (many blocks, packed stores) and a draw into a misaligned view, kernel called directly.
    for (RandomDist dist : {RandomDist::uniform, RandomDist::normal}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(int(dist));
      const int64_t n = 1000003;
      Tensor cpu = zeros({n + 1}, dt), gpu_t = zeros({n + 1}, dt, gpu);
      for (const Tensor& t : {cpu, gpu_t})
        kernels().random.on(t.device())(exec_context(t.device()), dt, n, dist, -1.25, 3.5, 99, 12345,
                                        t.slice(1, n + 1).raw_data());
      CHECK_SAME_BYTES(gpu_t.to(kCPU), cpu);
    }
  }
}

TEST_CASE("elementwise NaN, infinity and signed-zero rules on CUDA are the CPU's") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  const std::vector<double> specials = {std::nan(""), -std::nan(""), INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0};
  std::vector<double> av, bv;
  for (double a : specials)
    for (double b : specials) av.push_back(a), bv.push_back(b);
  const int64_t n = int64_t(av.size());
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    Tensor a = from_vector(av, {n}, dt), b = from_vector(bv, {n}, dt);
    Tensor ga = a.to(gpu), gb = b.to(gpu);
    // Selections and comparisons move or test bits: exact, NaN payloads included.
    CHECK_SAME_BYTES(maximum(ga, gb).to(kCPU), maximum(a, b));
    CHECK_SAME_BYTES(greater(ga, gb).to(kCPU), greater(a, b));
    CHECK_SAME_BYTES(greater_equal(ga, gb).to(kCPU), greater_equal(a, b));
    CHECK_SAME_BYTES(relu(ga).to(kCPU), relu(a));
    CHECK_SAME_BYTES(sign(ga).to(kCPU), sign(a));
    // Arithmetic: the same values and signed zeros; NaN is NaN.
    CHECK_SAME_VALUES(add(ga, gb).to(kCPU), add(a, b));
    CHECK_SAME_VALUES(mul(ga, gb).to(kCPU), mul(a, b));
    CHECK_SAME_VALUES(div(ga, gb).to(kCPU), div(a, b));
    CHECK_SAME_VALUES(abs(ga).to(kCPU), abs(a));
    CHECK_SAME_VALUES(sqrt(ga).to(kCPU), sqrt(a));
  }
}
