// The op harness runner: the checks of tests/support/op_harness.h over one family's cases, with a tally.
#include "tests/support/op_harness.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <sstream>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/support/check.h"
#include "tests/support/skip.h"

namespace scpn::test {

namespace {

const std::vector<std::string> kAllChecks = {"oracle", "gradcheck", "parity", "perf"};

std::set<std::string>& selected_checks() {
  static std::set<std::string> checks = {"oracle", "gradcheck"};
  return checks;
}

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
  void add(bool ok) { ok ? ++passed : ++failed; }
};

// The devices other than the CPU that parity and perf run on.
std::vector<Device> accelerators() {
  std::vector<Device> devices;
  for (int i = 0; i < cuda_device_count(); ++i) devices.push_back(cuda_device(i));
  return devices;
}

std::vector<Tensor> inputs_of(const OpCase& c, DType dtype) {
  std::vector<Tensor> in = c.inputs(dtype);
  SCPN_CHECK(!in.empty(), "op case '", c.name, "': no inputs");
  return in;
}

bool any_requires_grad(const std::vector<Tensor>& in) {
  return std::any_of(in.begin(), in.end(), [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

void check_oracle(const OpCase& c, DType dtype, uint64_t seed, Tally& tally) {
  const std::vector<Tensor> in = inputs_of(c, dtype);
  Tensor out = c.op(in);
  const Tensor upstream = random_tensor(out.shape(), out.dtype(), seed, 0.5, 1.5);
  if (any_requires_grad(in)) backward(sum(mul(out, upstream)));
  const Expected want = c.oracle(in, upstream);
  const Tolerance& tol = c.oracle_tolerance(dtype);
  const std::string label = cat(c.name, " ", dtype_name(dtype));

  CloseReport r = compare(out.to_vector(), want.out, tol.atol, tol.rtol);
  bool ok = r.ok;
  std::string report = cat("out max ", r.max_abs, ok ? "" : cat(" NOT CLOSE: ", r.message));
  for (size_t i = 0; i < want.grads.size() && i < in.size(); ++i) {
    if (want.grads[i].empty()) continue;
    const Tensor g = in[i].grad();
    if (!g.defined()) {
      ok = false;
      report += cat("; grad[", i, "] missing");
      continue;
    }
    r = compare(g.to_vector(), want.grads[i], tol.atol, tol.rtol);
    ok = ok && r.ok;
    report += cat("; grad[", i, "] max ", r.max_abs, r.ok ? "" : cat(" NOT CLOSE: ", r.message));
  }
  std::printf("oracle %s: %s\n", label.c_str(), report.c_str());
  INFO("oracle ", label, ": ", report);
  CHECK(ok);
  tally.add(ok);
}

void check_gradients(const OpCase& c, Tally& tally) {
  const std::vector<Tensor> in = inputs_of(c, DType::f64);
  const GradcheckResult r = gradcheck(c.name, c.op, in, c.gradcheck_eps, c.gradcheck_atol, c.gradcheck_rtol);
  INFO(r.message);
  CHECK(r.ok);
  tally.add(r.ok);
}

void check_parity(const OpCase& c, DType dtype, Device device, uint64_t seed, Tally& tally) {
  const ParityResult r = parity(cat(c.name, " ", dtype_name(dtype), " ", device.str()), c.op, inputs_of(c, dtype),
                                c.parity_tolerance(dtype), c.parity_grad_tolerance(dtype), seed, device);
  INFO(r.message);
  CHECK(r.ok);
  tally.add(r.ok);
}

// Median of a few forward + backward runs after one warm-up, synchronised on the device.
void time_case(const OpCase& c, DType dtype, Device device) {
  std::vector<Tensor> in;
  for (const Tensor& x : inputs_of(c, dtype)) {
    Tensor y = x.detach().to(device).clone();
    if (x.requires_grad()) y.requires_grad_(true);
    in.push_back(y);
  }
  std::vector<double> ms;
  for (int rep = 0; rep < 6; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    Tensor out = c.op(in);
    if (any_requires_grad(in)) backward(sum(out));
    synchronize(device);
    if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("perf %s %s %s: %.3f ms forward+backward (median of %zu)\n", c.name.c_str(), dtype_name(dtype),
              device.str().c_str(), ms[ms.size() / 2], ms.size());
}

}  // namespace

Tensor flat_concat(const std::vector<Tensor>& parts) {
  SCPN_CHECK(!parts.empty(), "flat_concat: no tensors");
  int64_t n = 0;
  for (const Tensor& t : parts) n += t.numel();
  Tensor out = Tensor::empty({n}, parts.front().dtype(), parts.front().device());
  int64_t at = 0;
  for (const Tensor& t : parts) {
    if (t.numel() > 0) out.slice(at, at + t.numel()).copy_(t.reshape({-1}));
    at += t.numel();
  }
  return out;
}

void select_op_checks(const std::string& comma_separated) {
  std::set<std::string> checks;
  std::stringstream in(comma_separated);
  for (std::string name; std::getline(in, name, ',');) {
    SCPN_CHECK(std::find(kAllChecks.begin(), kAllChecks.end(), name) != kAllChecks.end(), "--checks: unknown check '",
               name, "' (expected oracle, gradcheck, parity or perf)");
    checks.insert(name);
  }
  SCPN_CHECK(!checks.empty(), "--checks: no check named");
  selected_checks() = checks;
}

void run_op_cases(const std::string& family, const std::vector<OpCase>& cases) {
  const std::set<std::string>& checks = selected_checks();
  const std::vector<Device> devices = accelerators();
  Tally tally;
  uint64_t seed = 1000;
  for (const OpCase& c : cases) {
    CAPTURE(c.name);
    ++seed;
    if (checks.count("oracle") && c.oracle)
      for (DType dtype : c.dtypes) check_oracle(c, dtype, seed, tally);
    if (checks.count("gradcheck") && c.gradcheck) check_gradients(c, tally);
    if (checks.count("parity") && c.parity) {
      if (devices.empty()) tally.skipped += int(c.dtypes.size());
      for (Device device : devices)
        for (DType dtype : c.dtypes) check_parity(c, dtype, device, seed, tally);
    }
    if (checks.count("perf")) {
      std::vector<Device> timed = {kCPU};
      timed.insert(timed.end(), devices.begin(), devices.end());
      for (Device device : timed)
        for (DType dtype : c.dtypes) time_case(c, dtype, device);
    }
  }
  std::string names;
  for (const std::string& n : kAllChecks)
    if (checks.count(n)) names += (names.empty() ? "" : ",") + n;
  const std::string skip_reason = devices.empty() && checks.count("parity") ? cat(" (no CUDA device: ", no_cuda_device_reason(), ")") : "";
  std::printf("op harness %s: %zu cases x %zu checks (%s) x %zu devices: %d passed, %d failed, %d skipped%s\n",
              family.c_str(), cases.size(), checks.size(), names.c_str(), devices.size() + 1, tally.passed,
              tally.failed, tally.skipped, skip_reason.c_str());
  if (tally.passed == 0 && tally.failed == 0 && tally.skipped > 0) {
    skip_test_case(cat("op harness ", family, ": every check needs a device", skip_reason));
  } else if (tally.passed + tally.failed + tally.skipped == 0 && !(checks.size() == 1 && checks.count("perf"))) {
    // No case takes any selected check (all switched off, say): a run that checks nothing must not pass.
    FAIL_CHECK("op harness " << family << ": no check applies to any of the " << cases.size() << " cases");
  }
}

}  // namespace scpn::test
