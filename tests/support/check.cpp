#include "tests/support/check.h"

#include <cmath>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace scpn::test {

CloseReport compare(const std::vector<double>& a, const std::vector<double>& e, double atol, double rtol) {
  CloseReport r;
  if (a.size() != e.size()) {
    r.ok = false;
    r.message = cat("size mismatch: actual has ", a.size(), " elements, expected ", e.size());
    return r;
  }
  double worst_excess = -1;
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::abs(a[i] - e[i]);
    if (std::isnan(a[i]) != std::isnan(e[i])) err = INFINITY;
    if (std::isnan(a[i]) && std::isnan(e[i])) err = 0;
    total += err;
    r.max_abs = std::max(r.max_abs, err);
    double excess = err - (atol + rtol * std::abs(e[i]));
    if (excess > worst_excess || r.worst_index < 0) {
      worst_excess = excess;
      r.worst_index = int64_t(i);
      r.worst_actual = a[i];
      r.worst_expected = e[i];
    }
    if (excess > 0) r.ok = false;
  }
  r.mean_abs = a.empty() ? 0 : total / double(a.size());
  r.message = cat(r.ok ? "close" : "NOT close", ": max abs err ", r.max_abs, ", mean abs err ", r.mean_abs,
                  ", worst index ", r.worst_index, " (actual ", r.worst_actual, ", expected ", r.worst_expected,
                  "), atol ", atol, ", rtol ", rtol);
  return r;
}

CloseReport compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  if (actual.shape() != expected.shape()) {
    CloseReport r;
    r.ok = false;
    r.message = cat("shape mismatch: actual ", shape_str(actual.shape()), ", expected ", shape_str(expected.shape()));
    return r;
  }
  return compare(actual.to_vector(), expected.to_vector(), atol, rtol);
}

Tensor random_f64(const Shape& shape, uint64_t seed, double low, double high) {
  Generator g(seed);
  return uniform(shape, low, high, g, DType::f64);
}

GradcheckResult gradcheck(const std::string& label, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps, double atol, double rtol) {
  GradcheckResult res;
  for (const Tensor& t : inputs)
    if (t.defined() && (!t.device().is_cpu() || (t.requires_grad() && t.dtype() != DType::f64)))
      throw Error(cat("gradcheck ", label, ": inputs must be CPU tensors, f64 where they require grad, got ",
                      describe(t)));

  Tensor out0 = f(inputs);
  Tensor weights = random_f64(out0.shape(), 12345, 0.5, 1.5);  // avoids cancellations of a plain sum
  auto loss_of = [&](const std::vector<Tensor>& in) {
    NoGradGuard ng;
    return sum(mul(f(in), weights)).item();
  };

  GradientSlot slot;
  Tensor loss = sum(mul(out0, weights));
  BackwardOptions opt;
  opt.slot = &slot;
  backward(loss, Tensor(), opt);

  std::string worst;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = slot.get(x);
    std::vector<double> a = analytic.defined() ? analytic.to_vector() : std::vector<double>(size_t(x.numel()), 0.0);
    double* px = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double saved = px[i];
      px[i] = saved + eps;
      double up = loss_of(inputs);
      px[i] = saved - eps;
      double down = loss_of(inputs);
      px[i] = saved;
      double numeric = (up - down) / (2 * eps);
      double err = std::abs(a[size_t(i)] - numeric);
      double scale = std::max(std::abs(a[size_t(i)]), std::abs(numeric));
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (scale > 1e-7) res.max_rel_error = std::max(res.max_rel_error, err / scale);
      ++res.checked;
      if (err > atol + rtol * std::abs(numeric) && res.ok) {
        res.ok = false;
        worst = cat("input ", k, " element ", i, ": analytic ", a[size_t(i)], ", numeric ", numeric);
      }
    }
  }
  res.message = cat("gradcheck ", label, ": ", res.checked, " elements, max abs err ", res.max_abs_error,
                    ", max rel err ", res.max_rel_error, res.ok ? "" : " FAILED at " + worst);
  std::printf("%s\n", res.message.c_str());
  return res;
}

}  // namespace scpn::test
