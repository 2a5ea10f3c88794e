// Reductions: sum, mean, amax and sum_to as op-harness cases against naive loops written here (shapes that
// reach each of the CUDA kernel's thread mappings, the reduce kernel on [outer, reduce, inner] views), plus
// hand values, the max/min rules for NaN, signed zeros and empty slices, errors, and device determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

namespace {

// Central differences cost one forward per input element: larger cases are compared, not gradchecked.
constexpr int64_t kGradcheckLimit = 4096;

// A case whose gradients need their own device tolerance (sums over a broadcast or reduced operand).
void add_with_grad_tolerance(std::vector<OpCase>& cases, OpCase c, Tolerance grad_f32, Tolerance grad_f64) {
  c.parity_grad_f32 = grad_f32;
  c.parity_grad_f64 = grad_f64;
  cases.push_back(std::move(c));
}

// Sums accumulate in double on every device, in different orders: the f64 results differ by rounding of
// the running sum (relative ~1e-16 per term, so allow ~1e-14·terms against values in [-1, 1)); the f32
// results are the double sums rounded to float, equal but for rare 1-ulp ties.
Tolerance sum_tolerance(DType dt, int64_t terms) {
  const double n = double(std::max<int64_t>(terms, 1));
  return dt == DType::f64 ? Tolerance{1e-14 * n, 1e-12} : Tolerance{1e-12 * n + 1e-7, 1e-6};
}
// The gradient of a sum or mean is the output gradient broadcast (and scaled): one rounding at most.
const Tolerance kGrad32{1e-7, 1e-6}, kGrad64{1e-14, 1e-13};

// A reduction by the definition: for each element of x (row-major), the output element it goes to when
// `dims` (empty: all) are reduced, and the output's size.
struct Targets {
  std::vector<size_t> of;
  int64_t out_size = 1, terms = 1;
};

Targets targets_of(const Shape& shape, std::vector<int64_t> dims) {
  const int64_t rank = int64_t(shape.size());
  std::vector<bool> reduced(shape.size(), dims.empty());
  for (int64_t d : dims) reduced[size_t(d < 0 ? d + rank : d)] = true;
  Targets t;
  for (size_t d = 0; d < shape.size(); ++d) (reduced[d] ? t.terms : t.out_size) *= shape[d];
  const int64_t total = shape_numel(shape);
  for (int64_t k = 0; k < total; ++k) {
    int64_t rest = k, flat = 0, stride = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      const int64_t coord = rest % shape[d];
      rest /= shape[d];
      if (reduced[d]) continue;
      flat += coord * stride;
      stride *= shape[d];
    }
    t.of.push_back(size_t(flat));
  }
  return t;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (int64_t d : dims) s += cat(s.empty() ? "" : ", ", d);
  return s;
}

// sum (scale 1) or mean (scale 1/terms) over dims, and its gradient: the output gradient, scaled, at
// every element that went into it.
test::Oracle sum_oracle(std::vector<int64_t> dims, bool is_mean) {
  return [dims, is_mean](const std::vector<Tensor>& in, const Tensor& g) {
    const Targets t = targets_of(in[0].shape(), dims);
    const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
    const double scale = is_mean ? 1.0 / double(std::max<int64_t>(t.terms, 1)) : 1.0;
    Expected e{std::vector<double>(size_t(t.out_size)), {std::vector<double>(x.size())}};
    for (size_t k = 0; k < x.size(); ++k) e.out[t.of[k]] += x[k];
    for (double& y : e.out) y *= scale;
    for (size_t k = 0; k < x.size(); ++k) e.grads[0][k] = gv[t.of[k]] * scale;
    return e;
  };
}

std::vector<OpCase> sum_mean_cases() {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keepdim;
  };
  // Everything, short and long rows, a middle axis (wide and narrow columns), several axes at once (the
  // batch-norm statistics), and a reduced axis of size 1.
  const std::vector<Case> shapes = {
      {{2, 3, 4, 4}, {0, 2}, false},     {{2, 3, 4, 4}, {1, 3}, true},      {{2, 3, 4, 4}, {}, false},
      {{1}, {}, false},                  {{7}, {}, false},                  {{1000003}, {}, false},
      {{2, 1000003}, {1}, false},        {{1000, 3, 2}, {1}, false},        {{3, 1000, 64}, {1}, true},
      {{5, 20000, 3}, {1}, false},       {{64, 33}, {0}, false},            {{64, 33}, {1}, false},
      {{2, 3, 5, 7}, {0, 2, 3}, true},   {{8, 64, 7, 7}, {0, 2, 3}, false}, {{2, 3, 5, 7}, {}, false},
      {{1, 1, 1}, {1}, false},           {{2, 3, 4, 4}, {-1}, false}};
  std::vector<OpCase> cases;
  uint64_t seed = 700;
  for (const Case& c : shapes) {
    const int64_t terms = targets_of(c.shape, c.dims).terms;
    const uint64_t s = ++seed;
    const auto inputs = [c, s](DType d) { return std::vector<Tensor>{random_tensor(c.shape, d, s).requires_grad_()}; };
    const std::string label = cat(shape_str(c.shape), " dims {", dims_str(c.dims), "}", c.keepdim ? " keepdim" : "");
    for (bool is_mean : {false, true}) {
      add_with_grad_tolerance(
          cases,
          {.name = cat(is_mean ? "mean " : "sum ", label),
           .inputs = inputs,
           .op = [c, is_mean](const std::vector<Tensor>& v) {
             return is_mean ? mean(v[0], c.dims, c.keepdim) : sum(v[0], c.dims, c.keepdim);
           },
           .oracle = sum_oracle(c.dims, is_mean),
           .oracle_f64 = sum_tolerance(DType::f64, terms),
           .gradcheck = shape_numel(c.shape) <= kGradcheckLimit,
           .parity_f32 = sum_tolerance(DType::f32, terms),
           .parity_f64 = sum_tolerance(DType::f64, terms)},
          kGrad32, kGrad64);
    }
  }
  // sum_to, the adjoint of broadcasting: [2, 3, 4] summed to [3, 1] (a leading axis and a trailing one).
  add_with_grad_tolerance(cases,
                          {.name = "sum_to [2, 3, 4] to [3, 1]",
                           .inputs = [](DType d) {
                             return std::vector<Tensor>{random_tensor({2, 3, 4}, d, 720).requires_grad_()};
                           },
                           .op = [](const std::vector<Tensor>& v) { return sum_to(v[0], {3, 1}); },
                           .oracle = sum_oracle({0, 2}, false),
                           .oracle_f64 = sum_tolerance(DType::f64, 8),
                           .parity_f32 = sum_tolerance(DType::f32, 8),
                           .parity_f64 = sum_tolerance(DType::f64, 8)},
                          kGrad32, kGrad64);
  return cases;
}

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

// out[o, i] = op over r of x[o, r, i] on x's device, the kernel called directly (the engine has no min
// reduction, and its ops skip the kernel for an axis of size 1).
Tensor reduce_kernel(ReduceOp op, const Tensor& x, const View& v) {
  Tensor out = Tensor::empty({v.outer, v.inner}, x.dtype(), x.device());
  kernels().reduce.on(x.device())(exec_context(x.device()), op, x.dtype(), v.outer, v.reduce, v.inner, x.raw_data(),
                                  out.raw_data());
  return out;
}

Tensor reduce_on(Device device, ReduceOp op, const Tensor& x, const View& v) {
  return reduce_kernel(op, x.to(device), v).to(kCPU);
}

std::vector<OpCase> kernel_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 900;
  for (const View& v : kViews) {
    const uint64_t s = ++seed;
    const Tolerance f32 = sum_tolerance(DType::f32, v.reduce), f64 = sum_tolerance(DType::f64, v.reduce);
    cases.push_back({.name = cat("reduce kernel sum [", v.outer, ", ", v.reduce, ", ", v.inner, "]"),
                     .inputs = [v, s](DType d) {
                       return std::vector<Tensor>{random_tensor({v.outer * v.reduce * v.inner}, d, s)};
                     },
                     .op = [v](const std::vector<Tensor>& in) { return reduce_kernel(ReduceOp::sum, in[0], v); },
                     .oracle =
                         [v](const std::vector<Tensor>& in, const Tensor&) {
                           const std::vector<double> x = in[0].to_vector();
                           Expected e{std::vector<double>(size_t(v.outer * v.inner)), {}};
                           for (int64_t o = 0; o < v.outer; ++o)
                             for (int64_t r = 0; r < v.reduce; ++r)
                               for (int64_t i = 0; i < v.inner; ++i)
                                 e.out[size_t(o * v.inner + i)] += x[size_t((o * v.reduce + r) * v.inner + i)];
                           return e;
                         },
                     .oracle_f64 = f64,
                     .gradcheck = false,  // a kernel, outside autograd
                     .parity_f32 = f32,
                     .parity_f64 = f64});
  }
  return cases;
}

// amax: the largest value over dims (no gradient), exact on every device.
std::vector<OpCase> amax_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 1300;
  for (const Shape& shape : {Shape{7}, Shape{4, 33}, Shape{3, 1000, 5}, Shape{2, 3, 5, 7}, Shape{1000003}}) {
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, std::vector<int64_t>{-1}, std::vector<int64_t>{0}}) {
      const uint64_t s = ++seed;
      cases.push_back({.name = cat("amax ", shape_str(shape), " dims {", dims_str(dims), "}"),
                       .inputs = [shape, s](DType d) { return std::vector<Tensor>{random_tensor(shape, d, s)}; },
                       .op = [dims](const std::vector<Tensor>& v) { return amax(v[0], dims); },
                       .oracle =
                           [dims](const std::vector<Tensor>& in, const Tensor&) {
                             const Targets t = targets_of(in[0].shape(), dims);
                             const std::vector<double> x = in[0].to_vector();
                             Expected e{std::vector<double>(size_t(t.out_size), -INFINITY), {}};
                             for (size_t k = 0; k < x.size(); ++k) e.out[t.of[k]] = std::max(e.out[t.of[k]], x[k]);
                             return e;
                           },
                       .oracle_f32 = {0, 0},
                       .oracle_f64 = {0, 0},
                       .gradcheck = false,  // amax has no gradient
                       .parity_f32 = {0, 0},
                       .parity_f64 = {0, 0}});
    }
  }
  return cases;
}

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

}  // namespace

TEST_CASE("reduce: op harness") {
  std::vector<OpCase> cases = sum_mean_cases();
  for (OpCase& c : kernel_cases()) cases.push_back(std::move(c));
  for (OpCase& c : amax_cases()) cases.push_back(std::move(c));
  test::run_op_cases("reduce", cases);
}

TEST_CASE("reductions") {
  Tensor x = arange(24, DType::f64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276);
  CHECK(sum(x, {1}).shape() == Shape{2, 4});
  CHECK(sum(x, {1}).to_vector()[0] == 0 + 4 + 8);
  CHECK(sum(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  CHECK(sum(x, {0, 2}).to_vector() == std::vector<double>{60, 92, 124});
  CHECK(mean(x, {-1}).to_vector()[0] == 1.5);
  CHECK(amax(x, {2}).to_vector() == std::vector<double>{3, 7, 11, 15, 19, 23});
  CHECK(sum_to(ones({2, 3, 4}), {3, 1}).to_vector() == std::vector<double>{8, 8, 8});
}

TEST_CASE("max and min skip NaN, keep the first of equal values, and give ∓inf where no value is left") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    // Rows: NaN around a 1; all NaN; -0 before +0; +0 before -0 (and a NaN after).
    Tensor x = from_vector({NAN, 1, NAN, NAN, NAN, NAN, -0.0, 0.0, NAN, 0.0, -0.0, NAN}, {4, 3}, dt);
    const std::vector<double> hi = amax(x, {1}).to_vector();
    CHECK(hi[0] == 1);
    CHECK(hi[1] == -INFINITY);
    CHECK((hi[2] == 0 && std::signbit(hi[2])));
    CHECK((hi[3] == 0 && !std::signbit(hi[3])));
    // min through the kernel (the engine has no min op).
    const std::vector<double> lo = reduce_on(kCPU, ReduceOp::min, x, {4, 3, 1}).to_vector();
    CHECK(lo[0] == 1);
    CHECK(lo[1] == INFINITY);
    CHECK((lo[2] == 0 && std::signbit(lo[2])));
    CHECK((lo[3] == 0 && !std::signbit(lo[3])));
    // An empty axis: the sum is 0, the max -inf, the min +inf.
    const Tensor empty = zeros({0}, dt);
    CHECK(reduce_on(kCPU, ReduceOp::sum, empty, {2, 0, 3}).to_vector() == std::vector<double>(6, 0.0));
    CHECK(reduce_on(kCPU, ReduceOp::max, empty, {2, 0, 3}).to_vector() == std::vector<double>(6, -INFINITY));
    CHECK(reduce_on(kCPU, ReduceOp::min, empty, {2, 0, 3}).to_vector() == std::vector<double>(6, INFINITY));
  }
}

TEST_CASE("bad input names the reduction and the shapes") {
  CHECK_THROWS_WITH_AS(sum(zeros({2}), {3}), "sum: dimension 3 out of range for a 1-D tensor", Error);
  CHECK_THROWS_WITH_AS(mean(zeros({2, 3}), {-3}), "mean: dimension -3 out of range for a 2-D tensor", Error);
  CHECK_THROWS_WITH_AS(sum(zeros({2, 3}), {0, -2}), "sum: repeated dimension in dims", Error);
  CHECK_THROWS_WITH_AS(sum(zeros({2}, DType::i32)), "sum: argument 'x' must be f32 or f64, got i32 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(mean(zeros({2}, DType::u8)), "mean: argument 'x' must be f32 or f64, got u8 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(amax(zeros({2}, DType::i64)), "amax: argument 'x' must be f32 or f64, got i64 [2] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(amax(zeros({0, 3})), "amax: empty tensor f32 [0, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(amax(zeros({2, 3}), {2}), "amax: dimension 2 out of range for a 2-D tensor", Error);
  CHECK_THROWS_WITH_AS(sum_to(zeros({3}), {2, 3}), "sum_to: cannot sum [3] to [2, 3]", Error);
  CHECK_THROWS_WITH_AS(sum_to(zeros({2, 3}), {4}), "sum_to: cannot sum [2, 3] to [4]", Error);
}

TEST_CASE("gpu: max and min equal the CPU's bit for bit, NaN and signed zeros included") {
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

TEST_CASE("gpu: amax equals the CPU's bit for bit through the engine op, NaN and signed zeros included") {
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

TEST_CASE("gpu: chunked sums are the same on every run") {
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
