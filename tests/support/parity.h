// Device-vs-CPU parity: the same function on CPU tensors and on copies on a device, the same random upstream
// gradient backpropagated through both, every output and input gradient compared with a per-op tolerance
// (in parity mode: TF32 off, deterministic algorithms). Prints "parity <label>: out max ... worst [i]; ...".
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/devices.h"
#include "engine/tensor.h"

namespace scpn::test {

struct Tolerance {
  double atol = 1e-5, rtol = 1e-5;
};

struct ParityResult {
  bool ok = true;
  std::string message;  // every comparison, for the failure report
};

// `inputs` are CPU tensors; those with requires_grad get gradients compared. `f` returns one tensor.
// `upstream_seed` seeds the random weights R of the scalar sum(f(x) ⊙ R) that is backpropagated.
ParityResult parity(const std::string& label, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                    const std::vector<Tensor>& inputs, Tolerance out_tol, Tolerance grad_tol,
                    uint64_t upstream_seed = 99, Device device = cuda_device(0));

// A random CPU tensor of the given dtype (uniform in [low, high)), for parity inputs.
Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double low = -1.0, double high = 1.0);

// True (after printing "skipped: no CUDA device (<reason>)") when the test must skip.
bool skip_without_cuda();

}  // namespace scpn::test

#define CHECK_PARITY(label, f, inputs, out_tol, grad_tol)                        \
  do {                                                                           \
    auto scpn_parity_ = ::scpn::test::parity(label, f, inputs, out_tol, grad_tol); \
    INFO(scpn_parity_.message);                                                  \
    CHECK(scpn_parity_.ok);                                                      \
  } while (0)

// First line of every GPU test case: on a machine without a CUDA device it records the case as skipped
// (tests/support/skip.h) and returns, before any check.
#define SCPN_REQUIRE_CUDA()                          \
  do {                                               \
    if (::scpn::test::skip_without_cuda()) return;   \
  } while (0)
