// CUDA vs CPU parity of the reduction family (kernels/cuda/reduce.cu): sum and mean forward and backward
// through the engine ops over shapes that reach each of the kernel's thread mappings (short rows, long rows,
// wide and narrow columns, chunked two-pass reductions), f32 and f64; max and min bit for bit, with the
// CPU's NaN, infinity and signed-zero rules; and run-to-run determinism of chunked sums.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
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

// [outer, reduce, inner] views, each picked to reach one mapping of the CUDA kernel (see plan_reduce).
struct View {
  int64_t outer, reduce, inner;
};
const std::vector<View> kViews = {
    {1, 1, 1},       {1, 7, 1},         {3, 1, 5},       {5, 3, 2},       {300, 2, 3},     // few elements
    {4, 33, 1},      {1000, 1000, 1},   {8200, 1100, 1},                                     // rows, a group each
    {2, 100003, 1},  {1, 1000003, 1},   {3, 30000, 5},   {1, 9000, 31},                      // slabs, chunked
    {2, 70, 33},     {6, 10, 100},      {2, 5000, 40},   {1, 20000, 64},                     // columns (+ chunks)
    {2, 0, 3}};                                                                               // empty axis

// Inputs in [-1, 1) with NaN, infinities and zeros of both signs sprinkled in (every 5th element special).
Tensor with_specials(const Shape& shape, DType dt, uint64_t seed) {
  Tensor x = random_tensor(shape, dt, seed).to(DType::f64);
  std::vector<double> v = x.to_vector();
  const double specials[] = {std::nan(""), 0.0, -0.0, -INFINITY, INFINITY, -0.0, 0.0, std::nan("")};
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (double& e : v) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t pick = state >> 33;
    if (pick % 5 == 0) e = specials[(pick / 5) % 8];
  }
  return from_vector(v, shape, dt);
}

// out[o, i] on one device, the kernel called directly (the engine has no min reduction).
Tensor reduce_on(Device device, ReduceOp op, const Tensor& x, const View& v) {
  Tensor in = x.to(device);
  Tensor out = Tensor::empty({v.outer, v.inner}, x.dtype(), device);
  kernels().reduce.on(device)(exec_context(device), op, x.dtype(), v.outer, v.reduce, v.inner, in.raw_data(),
                              out.raw_data());
  return out.to(kCPU);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// The first differing element of two CPU tensors, for the failure message.
std::string first_difference(const Tensor& cuda, const Tensor& cpu) {
  const std::vector<double> a = cuda.to_vector(), e = cpu.to_vector();
  for (size_t i = 0; i < a.size() && i < e.size(); ++i)
    if (std::memcmp(&a[i], &e[i], sizeof(double)) != 0) return cat("element ", i, ": cuda ", a[i], ", cpu ", e[i]);
  return "(sizes or NaN payloads differ)";
}

// Sums accumulate in double on both devices, in different orders: the f64 results differ by rounding of
// the running sum (relative ~1e-16 per term, so allow ~1e-14·terms against values in [-1, 1)); the f32
// results are the double sums rounded to float, equal but for rare 1-ulp ties.
Tolerance sum_tolerance(DType dt, int64_t terms) {
  const double n = double(std::max<int64_t>(terms, 1));
  return dt == DType::f64 ? Tolerance{1e-14 * n, 1e-12} : Tolerance{1e-12 * n + 1e-7, 1e-6};
}

}  // namespace

TEST_CASE("sum and mean on CUDA match the CPU, forward and backward") {
  SCPN_REQUIRE_CUDA();
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keepdim;
  };
  const std::vector<Case> cases = {
      {{1}, {}, false},                 {{7}, {}, false},               {{1000003}, {}, false},
      {{2, 1000003}, {1}, false},       {{1000, 3, 2}, {1}, false},     {{3, 1000, 64}, {1}, true},
      {{5, 20000, 3}, {1}, false},      {{64, 33}, {0}, false},         {{64, 33}, {1}, false},
      {{2, 3, 5, 7}, {0, 2, 3}, true},  {{8, 64, 7, 7}, {0, 2, 3}, false}, {{2, 3, 5, 7}, {}, false},
      {{1, 1, 1}, {1}, false}};
  uint64_t seed = 700;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      int64_t terms = 1;
      for (int64_t d : c.dims) terms *= c.shape[size_t(d)];
      if (c.dims.empty()) terms = shape_numel(c.shape);
      const Tolerance tol = sum_tolerance(dt, terms);
      const Tolerance grad_tol = dt == DType::f64 ? Tolerance{1e-14, 1e-13} : Tolerance{1e-7, 1e-6};
      Tensor x = random_tensor(c.shape, dt, ++seed).requires_grad_();
      const std::string label = cat(shape_str(c.shape), " dims ", c.dims.size(), c.keepdim ? " keepdim " : " ", dtype_name(dt));
      CHECK_PARITY(cat("sum ", label), [&](const std::vector<Tensor>& v) { return sum(v[0], c.dims, c.keepdim); }, {x},
                   tol, grad_tol);
      CHECK_PARITY(cat("mean ", label), [&](const std::vector<Tensor>& v) { return mean(v[0], c.dims, c.keepdim); },
                   {x}, tol, grad_tol);
    }
  }
}

TEST_CASE("sum on CUDA matches the CPU in every thread mapping (kernel called directly)") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 900;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const View& v : kViews) {
      CAPTURE(dtype_name(dt));
      CAPTURE(v.outer);
      CAPTURE(v.reduce);
      CAPTURE(v.inner);
      Tensor x = random_tensor({v.outer * v.reduce * v.inner}, dt, ++seed);
      const Tolerance tol = sum_tolerance(dt, v.reduce);
      CHECK_CLOSE(reduce_on(cuda_device(0), ReduceOp::sum, x, v), reduce_on(kCPU, ReduceOp::sum, x, v), tol.atol,
                  tol.rtol);
    }
  }
}

TEST_CASE("max and min on CUDA equal the CPU's bit for bit, NaN and signed zeros included") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1100;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const View& v : kViews) {
      for (ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(op == ReduceOp::max ? "max" : "min");
        CAPTURE(v.outer);
        CAPTURE(v.reduce);
        CAPTURE(v.inner);
        // NaN is skipped, so an all-NaN or empty slice gives ∓inf; among equal values the first wins,
        // which shows as the sign of a zero: the second input has every slice's non-NaN values all zeros
        // (-0 first in some slices, +0 first in others).
        Tensor x = with_specials({v.outer * v.reduce * v.inner}, dt, ++seed);
        std::vector<double> zeros_and_nans(size_t(v.outer * v.reduce * v.inner), std::nan(""));
        for (size_t k = 0; k < zeros_and_nans.size(); ++k)
          if (k % 7 == 3 || k % 11 == 5) zeros_and_nans[k] = (k / 13) % 2 ? -0.0 : 0.0;
        Tensor z = from_vector(zeros_and_nans, {int64_t(zeros_and_nans.size())}, dt);
        for (const Tensor& input : {x, z}) {
          const Tensor cuda = reduce_on(cuda_device(0), op, input, v), cpu = reduce_on(kCPU, op, input, v);
          INFO(first_difference(cuda, cpu));
          CHECK(same_bytes(cuda, cpu));
        }
      }
    }
  }
}

TEST_CASE("amax on CUDA equals the CPU's through the engine op") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1300;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : {Shape{7}, Shape{4, 33}, Shape{3, 1000, 5}, Shape{2, 3, 5, 7}, Shape{1000003}}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(shape_str(shape));
      Tensor x = with_specials(shape, dt, ++seed);
      for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, std::vector<int64_t>{-1}, std::vector<int64_t>{0}}) {
        const Tensor cuda = amax(x.to(cuda_device(0)), dims).to(kCPU), cpu = amax(x, dims);
        INFO(first_difference(cuda, cpu));
        CHECK(same_bytes(cuda, cpu));
      }
    }
  }
}

TEST_CASE("chunked sums on CUDA are the same on every run") {
  SCPN_REQUIRE_CUDA();
  // Two-pass reductions (partials in scratch memory, merged in a fixed order): no atomics, so repeated
  // runs agree bit for bit.
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = random_tensor({4000037}, dt, 1500).to(cuda_device(0));
    const Tensor first = sum(x).to(kCPU);
    for (int run = 0; run < 3; ++run) CHECK(same_bytes(sum(x).to(kCPU), first));
    const View columns{1, 20000, 64};
    Tensor y = random_tensor({columns.outer * columns.reduce * columns.inner}, dt, 1501);
    const Tensor first_columns = reduce_on(cuda_device(0), ReduceOp::sum, y, columns);
    CHECK(same_bytes(reduce_on(cuda_device(0), ReduceOp::sum, y, columns), first_columns));
  }
}
