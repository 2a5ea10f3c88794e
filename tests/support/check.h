// Test helpers: tensor comparison with an error report (max/mean error and the worst index) and the
// float64 gradient check (analytic backward against central differences).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace scpn::test {

struct CloseReport {
  bool ok = true;
  double max_abs = 0, mean_abs = 0;
  int64_t worst_index = -1;
  double worst_actual = 0, worst_expected = 0;
  std::string message;  // human-readable summary, printed on failure
};

// |actual - expected| <= atol + rtol·|expected| everywhere; shapes must match.
CloseReport compare(const Tensor& actual, const Tensor& expected, double atol, double rtol);
CloseReport compare(const std::vector<double>& actual, const std::vector<double>& expected, double atol, double rtol);

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;  // |a - n| / max(|a|, |n|) over entries where that is > 1e-7
  int64_t checked = 0;       // number of input elements checked
  std::string message;
};

// Checks d(sum(f(inputs) ⊙ R))/d(inputs) for a fixed random R, for every input with requires_grad,
// against central differences with step eps. Inputs must be CPU tensors, f64 where they require grad
// (others, e.g. integer labels, are passed as they are). Prints one summary line
// "gradcheck <label>: ..." so the test log records the worst error per op.
GradcheckResult gradcheck(const std::string& label, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-7,
                          double rtol = 1e-5);

// Random f64 tensor in [low, high) from a fixed seed, for test inputs.
Tensor random_f64(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0);

}  // namespace scpn::test

// doctest glue: CHECK_CLOSE(actual, expected, atol, rtol) prints the report on failure.
#define CHECK_CLOSE(actual, expected, atol, rtol)                           \
  do {                                                                      \
    auto scpn_report_ = ::scpn::test::compare(actual, expected, atol, rtol); \
    INFO(scpn_report_.message);                                             \
    CHECK(scpn_report_.ok);                                                 \
  } while (0)

#define CHECK_GRADCHECK(label, f, inputs)                              \
  do {                                                                 \
    auto scpn_gc_ = ::scpn::test::gradcheck(label, f, inputs);         \
    INFO(scpn_gc_.message);                                            \
    CHECK(scpn_gc_.ok);                                                \
  } while (0)
