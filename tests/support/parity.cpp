#include "tests/support/parity.h"

#include <cstdio>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/skip.h"

namespace scpn::test {

bool skip_without_cuda() {
  if (cuda_device_count() > 0) return false;
  const std::string why = no_cuda_device_reason();
  skip_test_case(cat("no CUDA device (", why, ")"));
  return true;
}

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double low, double high) {
  Generator g(seed);
  return uniform(shape, low, high, g, dtype);
}

namespace {

struct Run {
  Tensor out;
  std::vector<Tensor> grads;  // on the CPU; undefined where the input needs none
};

Run run_on(Device device, const std::function<Tensor(const std::vector<Tensor>&)>& f,
           const std::vector<Tensor>& inputs, uint64_t upstream_seed) {
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) {
    Tensor c = x.detach().to(device).clone();
    if (x.requires_grad()) c.requires_grad_(true);
    xs.push_back(c);
  }
  Run r;
  Tensor y = f(xs);
  r.out = y.detach().to(kCPU);
  bool any_grad = false;
  for (const Tensor& x : inputs) any_grad = any_grad || x.requires_grad();
  if (any_grad) {
    Tensor upstream = random_tensor(y.shape(), y.dtype(), upstream_seed).to(device);
    backward(sum(mul(y, upstream)));
  }
  for (const Tensor& x : xs) r.grads.push_back(x.requires_grad() && x.grad().defined() ? x.grad().to(kCPU) : Tensor());
  return r;
}

}  // namespace

ParityResult parity(const std::string& label, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                    const std::vector<Tensor>& inputs, Tolerance out_tol, Tolerance grad_tol, uint64_t upstream_seed,
                    Device device) {
  ParityModeScope parity_mode;
  ParityResult res;
  const Run cpu = run_on(kCPU, f, inputs, upstream_seed);
  const Run gpu = run_on(device, f, inputs, upstream_seed);
  auto add = [&](const std::string& what, const CloseReport& r) {
    res.ok = res.ok && r.ok;
    res.message += cat(res.message.empty() ? "" : "; ", what, " max ", r.max_abs, " mean ", r.mean_abs, " worst [",
                       r.worst_index, "]", r.ok ? "" : cat(" NOT CLOSE: ", r.message));
  };
  add("out", compare(gpu.out, cpu.out, out_tol.atol, out_tol.rtol));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    if (cpu.grads[i].defined() != gpu.grads[i].defined()) {
      res.ok = false;
      res.message += cat("; grad[", i, "] defined on one device only");
      continue;
    }
    if (cpu.grads[i].defined()) add(cat("grad[", i, "]"), compare(gpu.grads[i], cpu.grads[i], grad_tol.atol, grad_tol.rtol));
  }
  std::printf("parity %s: %s\n", label.c_str(), res.message.c_str());
  return res;
}

}  // namespace scpn::test
