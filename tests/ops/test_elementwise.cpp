// Elementwise ops: unary and scalar ops, broadcast binary ops (up to 8-D), comparisons, where and axpy_ as
// op-harness cases against naive loops written here (odd sizes, a misaligned view), plus hand values and
// errors, and the device's bit-exact rules for casts, fills, random draws and special values.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_f64;
using test::random_tensor;
using test::Tolerance;

namespace {

// Device tolerances: one rounding per element, whichever the order of operations.
const Tolerance kOut32{1e-6, 1e-5}, kOut64{1e-13, 1e-12};
// Gradients summed back to a broadcast operand add many terms: the reduction's tolerance.
const Tolerance kGrad32{1e-4, 1e-5}, kGrad64{1e-11, 1e-11};

// Central differences cost one forward per input element: larger cases are compared, not gradchecked.
constexpr int64_t kGradcheckLimit = 4096;

// A case whose gradients need their own device tolerance (sums over a broadcast or reduced operand).
void add_with_grad_tolerance(std::vector<OpCase>& cases, OpCase c, Tolerance grad_f32, Tolerance grad_f64) {
  c.parity_grad_f32 = grad_f32;
  c.parity_grad_f64 = grad_f64;
  cases.push_back(std::move(c));
}

// ---- Unary and scalar ops ------------------------------------------------------------------------------

struct UnaryOp {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> value, slope;
  bool positive;       // defined for x > 0 only, or tested there
  double low, high;    // the range of the odd-sized inputs
};

double sign_of(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

const std::vector<UnaryOp>& unary_ops() {
  static const std::vector<UnaryOp> ops = {
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }, false, -1.0, 1.0},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::abs(x); }, sign_of, false, -1.0, 1.0},
      {"sign", [](const Tensor& x) { return sign(x); }, sign_of, [](double) { return 0.0; }, false, -1.0, 1.0},
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, [](double) { return -1.0; }, false,
       -1.0, 1.0},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); },
       [](double x) { return std::exp(x); }, false, -1.0, 1.0},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; },
       [](double x) { return 2 * x; }, false, -1.0, 1.0},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); },
       [](double x) { return 1 / x; }, true, 0.1, 3.0},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); },
       [](double x) { return 0.5 / std::sqrt(x); }, true, 0.1, 3.0},
      {"add_scalar 1.7", [](const Tensor& x) { return add_scalar(x, 1.7); }, [](double x) { return x + 1.7; },
       [](double) { return 1.0; }, true, 0.2, 2.0},
      {"mul_scalar -1.7", [](const Tensor& x) { return mul_scalar(x, -1.7); }, [](double x) { return -1.7 * x; },
       [](double) { return -1.7; }, true, 0.2, 2.0},
      {"mul_scalar -0.37", [](const Tensor& x) { return mul_scalar(x, -0.37); }, [](double x) { return -0.37 * x; },
       [](double) { return -0.37; }, true, 0.2, 2.0},
      {"pow_scalar 1.7", [](const Tensor& x) { return pow_scalar(x, 1.7); }, [](double x) { return std::pow(x, 1.7); },
       [](double x) { return 1.7 * std::pow(x, 0.7); }, true, 0.2, 2.0},
  };
  return ops;
}

test::Oracle unary_oracle(const UnaryOp& op) {
  return [value = op.value, slope = op.slope](const std::vector<Tensor>& in, const Tensor& g) {
    const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
    Expected e{{}, {std::vector<double>(x.size())}};
    for (size_t i = 0; i < x.size(); ++i) {
      e.out.push_back(value(x[i]));
      e.grads[0][i] = gv[i] * slope(x[i]);
    }
    return e;
  };
}

std::vector<OpCase> unary_cases() {
  std::vector<OpCase> cases;
  uint64_t seed = 100;
  for (const UnaryOp& op : unary_ops()) {
    const auto apply = [f = op.f](const std::vector<Tensor>& v) { return f(v[0]); };
    // A small matrix away from the kinks: |x| in [0.1, 1) with mixed signs, or x in [0.5, 2).
    cases.push_back({.name = op.name + (op.positive ? " [3, 4]" : " [4, 5]"),
                     .inputs = [positive = op.positive](DType d) {
                       Tensor x = positive ? random_f64({3, 4}, 5, 0.5, 2.0)
                                           : mul(random_f64({4, 5}, 3, 0.1, 1.0), sign(random_f64({4, 5}, 4)));
                       return std::vector<Tensor>{x.to(d).detach().requires_grad_()};
                     },
                     .op = apply,
                     .oracle = unary_oracle(op),
                     .parity_f32 = kOut32,
                     .parity_f64 = kOut64});
    // One element, an odd few, and a million and three (more than one block, a ragged tail).
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
      const uint64_t s = ++seed;
      cases.push_back({.name = cat(op.name, " [", n, "]"),
                       .inputs = [n, s, low = op.low, high = op.high](DType d) {
                         return std::vector<Tensor>{random_tensor({n}, d, s, low, high).requires_grad_()};
                       },
                       .op = apply,
                       .oracle = unary_oracle(op),
                       .gradcheck = n <= kGradcheckLimit,
                       .parity_f32 = kOut32,
                       .parity_f64 = kOut64});
    }
  }
  // A view that starts one element into its storage: the kernels fall back from 16-byte packs. The view
  // is taken inside the op, so that it is one on every device.
  cases.push_back({.name = "square of a misaligned view [1000, 1]",
                   .inputs = [](DType d) { return std::vector<Tensor>{random_tensor({1001, 1}, d, 199).requires_grad_()}; },
                   .op = [](const std::vector<Tensor>& v) { return square(v[0].slice(1, 1001)); },
                   .oracle =
                       [](const std::vector<Tensor>& in, const Tensor& g) {
                         const std::vector<double> x = in[0].to_vector(), gv = g.to_vector();
                         Expected e{{}, {std::vector<double>(x.size())}};
                         for (size_t i = 1; i < x.size(); ++i) {
                           e.out.push_back(x[i] * x[i]);
                           e.grads[0][i] = 2 * x[i] * gv[i - 1];
                         }
                         return e;
                       },
                   .parity_f32 = kOut32,
                   .parity_f64 = kOut64});
  return cases;
}

// ---- Broadcast binary ops -------------------------------------------------------------------------------

// Broadcasting by the definition: trailing dimensions aligned, a size-1 dimension stretched.
Shape broadcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// For each element of an `out`-shaped result (row-major), the element of an operand of shape `s` it reads.
std::vector<size_t> read_index(const Shape& out, const Shape& s) {
  const int64_t total = shape_numel(out);
  const size_t pad = out.size() - s.size();
  std::vector<size_t> index(static_cast<size_t>(total));
  for (int64_t k = 0; k < total; ++k) {
    int64_t rest = k, flat = 0, stride = 1;
    for (size_t d = out.size(); d-- > 0;) {
      const int64_t coord = rest % out[d];
      rest /= out[d];
      if (d < pad) continue;
      const int64_t size = s[d - pad];
      if (size != 1) flat += coord * stride;
      stride *= size;
    }
    index[size_t(k)] = size_t(flat);
  }
  return index;
}

struct BinaryOp {
  const char* name;
  Tensor (*f)(const Tensor&, const Tensor&);
  double (*value)(double, double);
  double (*da)(double, double);  // ∂value/∂a
  double (*db)(double, double);  // ∂value/∂b
};

const std::vector<BinaryOp> kBinaryOps = {
    {"add", add, [](double a, double b) { return a + b; }, [](double, double) { return 1.0; },
     [](double, double) { return 1.0; }},
    {"sub", sub, [](double a, double b) { return a - b; }, [](double, double) { return 1.0; },
     [](double, double) { return -1.0; }},
    {"mul", mul, [](double a, double b) { return a * b; }, [](double, double b) { return b; },
     [](double a, double) { return a; }},
    {"div", div, [](double a, double b) { return a / b; }, [](double, double b) { return 1 / b; },
     [](double a, double b) { return -a / (b * b); }},
    // The gradient goes to the larger operand, to a on ties.
    {"maximum", maximum, [](double a, double b) { return a >= b ? a : b; },
     [](double a, double b) { return a >= b ? 1.0 : 0.0; }, [](double a, double b) { return a >= b ? 0.0 : 1.0; }},
};

test::Oracle binary_oracle(const BinaryOp& op) {
  return [op](const std::vector<Tensor>& in, const Tensor& g) {
    const Shape out = broadcast(in[0].shape(), in[1].shape());
    const std::vector<size_t> ia = read_index(out, in[0].shape()), ib = read_index(out, in[1].shape());
    const std::vector<double> a = in[0].to_vector(), b = in[1].to_vector(), gv = g.to_vector();
    Expected e{{}, {std::vector<double>(a.size()), std::vector<double>(b.size())}};
    for (size_t k = 0; k < ia.size(); ++k) {
      const double x = a[ia[k]], y = b[ib[k]];
      e.out.push_back(op.value(x, y));
      e.grads[0][ia[k]] += gv[k] * op.da(x, y);
      e.grads[1][ib[k]] += gv[k] * op.db(x, y);
    }
    return e;
  };
}

std::vector<OpCase> binary_cases() {
  struct Shapes {
    Shape a, b;
  };
  // Same shapes from one element to a million and three, a scalar-like operand on either side, the
  // per-channel forms, stretching on both sides, and 8-D.
  const std::vector<Shapes> shapes = {
      {{1}, {1}},           {{2, 3}, {2, 3}},          {{2, 3, 5}, {2, 3, 5}},        {{1, 3, 2, 2}, {1, 3, 2, 2}},
      {{7}, {7}},           {{1000003}, {1000003}},    {{1000003}, {1}},              {{1}, {7}},
      {{2, 3, 5, 7}, {1, 3, 1, 1}},                    {{2, 3, 5, 7}, {3, 1, 1}},     {{4, 1, 3}, {2, 1}},
      {{2, 3}, {1}},        {{5, 1, 33}, {5, 7, 1}},   {{3, 64, 9, 9}, {64, 1, 1}},   {{1, 3, 1, 1}, {2, 3, 5, 7}},
      {{2, 1, 3, 1, 5, 1, 2, 3}, {1, 4, 3, 2, 1, 1, 2, 1}}};
  std::vector<OpCase> cases;
  uint64_t seed = 300;
  for (const Shapes& s : shapes) {
    const int64_t elements = shape_numel(s.a) + shape_numel(s.b);
    for (const BinaryOp& op : kBinaryOps) {
      const uint64_t sa = ++seed, sb = ++seed;
      // b away from 0 (div) and, being positive while a is in [-1, 1), rarely tied with a (maximum).
      add_with_grad_tolerance(cases,
                              {.name = cat(op.name, " ", shape_str(s.a), " ", shape_str(s.b)),
                               .inputs = [s, sa, sb](DType d) {
                                 return std::vector<Tensor>{random_tensor(s.a, d, sa).requires_grad_(),
                                                            random_tensor(s.b, d, sb, 0.5, 1.5).requires_grad_()};
                               },
                               .op = [f = op.f](const std::vector<Tensor>& v) { return f(v[0], v[1]); },
                               .oracle = binary_oracle(op),
                               .gradcheck = elements <= kGradcheckLimit,
                               .parity_f32 = kOut32,
                               .parity_f64 = kOut64},
                              kGrad32, kGrad64);
    }
  }
  // Per-channel scale and bias, as batch norm applies them: three operands, two of them broadcast.
  add_with_grad_tolerance(
      cases,
      {.name = "mul+add per-channel [2, 3, 4, 4] [3, 1, 1] [1, 3, 1, 1]",
       .inputs = [](DType d) {
         return std::vector<Tensor>{random_tensor({2, 3, 4, 4}, d, 8).requires_grad_(),
                                    random_tensor({3, 1, 1}, d, 9).requires_grad_(),
                                    random_tensor({1, 3, 1, 1}, d, 10).requires_grad_()};
       },
       .op = [](const std::vector<Tensor>& v) { return add(mul(v[0], v[1]), v[2]); },
       .oracle =
           [](const std::vector<Tensor>& in, const Tensor& g) {
             const Shape out = in[0].shape();
             const std::vector<size_t> is = read_index(out, in[1].shape()), ib = read_index(out, in[2].shape());
             const std::vector<double> x = in[0].to_vector(), scale = in[1].to_vector(), bias = in[2].to_vector(),
                                       gv = g.to_vector();
             Expected e{{}, {std::vector<double>(x.size()), std::vector<double>(scale.size()),
                             std::vector<double>(bias.size())}};
             for (size_t k = 0; k < x.size(); ++k) {
               e.out.push_back(x[k] * scale[is[k]] + bias[ib[k]]);
               e.grads[0][k] = gv[k] * scale[is[k]];
               e.grads[1][is[k]] += gv[k] * x[k];
               e.grads[2][ib[k]] += gv[k];
             }
             return e;
           },
       .parity_f32 = kOut32,
       .parity_f64 = kOut64},
      kGrad32, kGrad64);
  return cases;
}

// ---- Comparisons, where, axpy_ ---------------------------------------------------------------------------

std::vector<OpCase> select_cases() {
  std::vector<OpCase> cases;
  // where over a fixed mask, handed to the op on the inputs' device (gradcheck takes f64 inputs only, so
  // the u8 mask is not an input): the gradient goes to a where the mask is set, to b elsewhere.
  const auto where_case = [](std::string name, Tensor cond, std::function<std::vector<Tensor>(DType)> inputs) {
    return OpCase{.name = std::move(name),
                  .inputs = std::move(inputs),
                  .op = [cond](const std::vector<Tensor>& v) { return where(cond.to(v[0].device()), v[0], v[1]); },
                  .oracle =
                      [cond](const std::vector<Tensor>& in, const Tensor& g) {
                        const std::vector<double> a = in[0].to_vector(), b = in[1].to_vector(),
                                                  mask = cond.to_vector(), gv = g.to_vector();
                        Expected e{{}, {std::vector<double>(a.size()), std::vector<double>(b.size())}};
                        for (size_t i = 0; i < a.size(); ++i) {
                          e.out.push_back(mask[i] != 0 ? a[i] : b[i]);
                          (mask[i] != 0 ? e.grads[0] : e.grads[1])[i] = gv[i];
                        }
                        return e;
                      },
                  .gradcheck = cond.numel() <= kGradcheckLimit,
                  .parity_f32 = kOut32,
                  .parity_f64 = kOut64};
  };
  cases.push_back(where_case("where [3, 4]", greater(random_f64({3, 4}, 6), zeros({1}, DType::f64)), [](DType d) {
    return std::vector<Tensor>{random_f64({3, 4}, 5, 0.5, 2.0).to(d).requires_grad_(),
                               random_f64({3, 4}, 7).to(d).requires_grad_()};
  }));
  uint64_t seed = 500;
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
    const uint64_t sa = ++seed, sb = ++seed, st = ++seed, sy = ++seed;
    // Comparison masks (u8 0/1, no gradient) compared as values in the input's dtype: exact.
    const auto mask_oracle = [](bool or_equal) {
      return [or_equal](const std::vector<Tensor>& in, const Tensor&) {
        const std::vector<double> a = in[0].to_vector(), b = in[1].to_vector();
        Expected e;
        for (size_t i = 0; i < a.size(); ++i) {
          const double y = b[b.size() == 1 ? 0 : i];
          e.out.push_back(or_equal ? double(a[i] >= y) : double(a[i] > y));
        }
        return e;
      };
    };
    cases.push_back({.name = cat("greater [", n, "] [", n, "]"),
                     .inputs = [n, sa, sb](DType d) {
                       return std::vector<Tensor>{random_tensor({n}, d, sa), random_tensor({n}, d, sb)};
                     },
                     .op = [](const std::vector<Tensor>& v) { return greater(v[0], v[1]).to(v[0].dtype()); },
                     .oracle = mask_oracle(false),
                     .oracle_f32 = {0, 0},
                     .oracle_f64 = {0, 0},
                     .gradcheck = false,  // a mask has no gradient
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
    cases.push_back({.name = cat("greater_equal [", n, "] [1]"),
                     .inputs = [n, sa, st](DType d) {
                       return std::vector<Tensor>{random_tensor({n}, d, sa), random_tensor({1}, d, st)};
                     },
                     .op = [](const std::vector<Tensor>& v) { return greater_equal(v[0], v[1]).to(v[0].dtype()); },
                     .oracle = mask_oracle(true),
                     .oracle_f32 = {0, 0},
                     .oracle_f64 = {0, 0},
                     .gradcheck = false,  // a mask has no gradient
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
    cases.push_back(where_case(cat("where [", n, "]"),
                               greater(random_tensor({n}, DType::f64, sa), random_tensor({n}, DType::f64, sb)),
                               [n, sa, sb](DType d) {
                                 return std::vector<Tensor>{random_tensor({n}, d, sa).requires_grad_(),
                                                            random_tensor({n}, d, sb).requires_grad_()};
                               }));
    // y += alpha·x: one fma per element on the GPU; the CPU rounds the same way where it is compiled with
    // FMA instructions, so allow the double rounding of the other case.
    cases.push_back({.name = cat("axpy_ -0.37 [", n, "]"),
                     .inputs = [n, sa, sy](DType d) {
                       return std::vector<Tensor>{random_tensor({n}, d, sy), random_tensor({n}, d, sa)};
                     },
                     .op = [](const std::vector<Tensor>& v) {
                       Tensor y = v[0].clone();
                       axpy_(y, -0.37, v[1]);
                       return y;
                     },
                     .oracle =
                         [](const std::vector<Tensor>& in, const Tensor&) {
                           const std::vector<double> y = in[0].to_vector(), x = in[1].to_vector();
                           Expected e;
                           for (size_t i = 0; i < y.size(); ++i) e.out.push_back(y[i] - 0.37 * x[i]);
                           return e;
                         },
                     .gradcheck = false,  // in place, outside autograd
                     .parity_f32 = {1e-7, 1e-7},
                     .parity_f64 = {1e-15, 1e-15}});
  }
  return cases;
}

// ---- Bit-exact device comparisons -----------------------------------------------------------------------

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

#define CHECK_SAME_VALUES(actual, expected)                            \
  do {                                                                 \
    const std::string scpn_diff_ = value_difference(actual, expected); \
    INFO(scpn_diff_);                                                  \
    CHECK(scpn_diff_.empty());                                         \
  } while (0)

#define CHECK_SAME_BYTES(actual, expected)                            \
  do {                                                                \
    const std::string scpn_diff_ = byte_difference(actual, expected); \
    INFO(scpn_diff_);                                                 \
    CHECK(scpn_diff_.empty());                                        \
  } while (0)

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

TEST_CASE("elementwise: op harness") {
  std::vector<OpCase> cases = unary_cases();
  for (OpCase& c : binary_cases()) cases.push_back(std::move(c));
  for (OpCase& c : select_cases()) cases.push_back(std::move(c));
  test::run_op_cases("elementwise", cases);
}

TEST_CASE("binary ops broadcast per-channel and same-shape operands") {
  Tensor x = arange(12).reshape({1, 3, 2, 2});
  Tensor c = from_vector({10, 20, 30}, {3, 1, 1});
  Tensor y = add(x, c);
  CHECK(y.shape() == Shape{1, 3, 2, 2});
  CHECK(y.to_vector() == std::vector<double>{10, 11, 12, 13, 24, 25, 26, 27, 38, 39, 40, 41});
  CHECK(mul(x, x).to_vector()[3] == 9);
  CHECK(sub(x, from_vector({1}, {1})).to_vector()[0] == -1);
  CHECK(div(from_vector({1, 4}, {2}), from_vector({2, 8}, {2})).to_vector() == std::vector<double>{0.5, 0.5});
  CHECK(broadcast_shapes("t", {4, 1, 3}, {2, 1}) == Shape{4, 2, 3});
}

TEST_CASE("unary ops and scalars") {
  Tensor x = from_vector({-2, 0, 3}, {3});
  CHECK(relu(x).to_vector() == std::vector<double>{0, 0, 3});
  CHECK(abs(x).to_vector() == std::vector<double>{2, 0, 3});
  CHECK(sign(x).to_vector() == std::vector<double>{-1, 0, 1});
  CHECK(add_scalar(x, 1).to_vector() == std::vector<double>{-1, 1, 4});
  CHECK((x * 2.0).to_vector() == std::vector<double>{-4, 0, 6});
  CHECK(neg(x).to_vector() == std::vector<double>{2, 0, -3});
  Tensor m = greater(x, zeros({1}));
  CHECK(m.dtype() == DType::u8);
  CHECK(where(m, x, full({3}, 9)).to_vector() == std::vector<double>{9, 9, 3});
}

TEST_CASE("bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(add(zeros({2, 3}), zeros({4})), "add: shapes [2, 3] and [4] cannot be broadcast together",
                       Error);
  CHECK_THROWS_WITH_AS(mul(zeros({2}), zeros({2}, DType::f64)),
                       "mul: dtype mismatch: a is f32 [2] on cpu, b is f64 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(relu(zeros({2}, DType::i32)), "relu: argument 'x' must be f32 or f64, got i32 [2] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(where(zeros({2}, DType::u8), zeros({2}), zeros({3})),
                       "where: shapes must match: cond [2], a [2], b [3]", Error);
}

TEST_CASE("gpu: fill_ in every dtype stores the CPU's bits, aligned or not") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
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

TEST_CASE("gpu: casts between all dtypes match the CPU bit for bit") {
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

TEST_CASE("gpu: random draws equal the CPU's bit for bit for the same seed and offset") {
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

TEST_CASE("gpu: elementwise NaN, infinity and signed-zero rules are the CPU's") {
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
