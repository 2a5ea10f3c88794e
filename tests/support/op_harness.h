// The op harness (after ggml's test-backend-ops): a family's test file lists its cases once — inputs,
// dtypes, tolerances, an f64 oracle — and run_op_cases() applies every selected check to each of them.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tests/support/parity.h"

namespace scpn::test {

// What an oracle computes from the inputs' values, in f64: the output (row-major) and, for each input,
// the gradient of sum(out ⊙ upstream) — an empty vector where the oracle does not give one.
struct Expected {
  std::vector<double> out;
  std::vector<std::vector<double>> grads;
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;
using Oracle = std::function<Expected(const std::vector<Tensor>& inputs, const Tensor& upstream)>;

struct OpCase {
  std::string name{};  // what the case is, e.g. "max_pool2d [2, 2, 7, 9] k3 s2 p1"
  std::vector<DType> dtypes = {DType::f32, DType::f64};
  // The inputs in `dtype`, on the CPU; those with requires_grad are differentiated (others, e.g. integer
  // labels, are passed as they are). Called afresh for every check.
  std::function<std::vector<Tensor>(DType dtype)> inputs{};
  OpFn op{};
  Oracle oracle{};  // may be empty: the case then has no oracle check
  Tolerance oracle_f32{1e-5, 1e-5}, oracle_f64{1e-12, 1e-12};
  bool gradcheck = true;  // false where the op is not differentiable at these inputs (say why in the case)
  double gradcheck_eps = 1e-6, gradcheck_atol = 1e-7, gradcheck_rtol = 1e-5;
  bool parity = true;
  Tolerance parity_f32{1e-5, 1e-5}, parity_f64{1e-12, 1e-12};  // outputs, and gradients unless set below
  std::optional<Tolerance> parity_grad_f32{}, parity_grad_f64{};

  const Tolerance& oracle_tolerance(DType d) const { return d == DType::f64 ? oracle_f64 : oracle_f32; }
  const Tolerance& parity_tolerance(DType d) const { return d == DType::f64 ? parity_f64 : parity_f32; }
  const Tolerance& parity_grad_tolerance(DType d) const {
    const std::optional<Tolerance>& g = d == DType::f64 ? parity_grad_f64 : parity_grad_f32;
    return g ? *g : parity_tolerance(d);
  }
};

// Runs the selected checks over `cases` (doctest CHECKs with the numbers on failure) and prints
//   op harness <family>: <cases> cases × <checks> checks × <devices> devices: P passed, F failed, S skipped
// A run whose every check was skipped (parity without a device) marks the test case as skipped.
void run_op_cases(const std::string& family, const std::vector<OpCase>& cases);

// One tensor holding `parts` flattened, one after the other, on their device: the single output of a
// case whose op produces several tensors (masks per rank, parameters and optimizer state).
Tensor flat_concat(const std::vector<Tensor>& parts);

// The checks to run, from the command line's --checks (tests/support/main.cpp; default oracle,gradcheck);
// throws on an unknown name. CTest runs each family as ops/F (the CPU checks) and gpu/F (--checks=parity).
//   oracle     the op's output and input gradients against an independent f64 computation, per dtype;
//   gradcheck  the op's backward against central differences, in f64;
//   parity     every available device against the CPU, per dtype (skipped, with the reason, without one);
//   perf       forward + backward time per case and device (printed, never asserted).
void select_op_checks(const std::string& comma_separated);

}  // namespace scpn::test
