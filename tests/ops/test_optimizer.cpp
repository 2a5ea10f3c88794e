// The fused SGD and AdamW kernels (kernels/optimizer.h) as op-harness cases against per-element double
// arithmetic written here: three steps of the engine optimizers over 200 parameters (every SGD variant,
// two groups, AdamW), and direct kernel calls with an empty tensor, mixed first steps and distant steps.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_tensor;

namespace {

// ---- per element, in double ------------------------------------------------------------------------
struct SgdHyper {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

struct AdamWHyper {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

// torch.optim.SGD on one element; `first` is the parameter's first update (the buffer becomes d).
void sgd_element(const SgdHyper& h, double& p, double g, double& buf, bool first) {
  double d = g + h.weight_decay * p;
  if (h.momentum != 0) {
    buf = first ? d : h.momentum * buf + (1 - h.dampening) * d;
    d = h.nesterov ? d + h.momentum * buf : buf;
  }
  p -= h.lr * d;
}

// torch.optim.AdamW on one element at the parameter's step t >= 1.
void adamw_element(const AdamWHyper& h, double& p, double g, double& m, double& v, int64_t t) {
  p -= h.lr * h.weight_decay * p;
  m = h.beta1 * m + (1 - h.beta1) * g;
  v = h.beta2 * v + (1 - h.beta2) * g * g;
  const double m_hat = m / (1 - std::pow(h.beta1, double(t)));
  const double v_hat = v / (1 - std::pow(h.beta2, double(t)));
  p -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
}

// ---- three steps of an engine optimizer over 200 parameters -------------------------------------------
// 200 shapes: one element first, a few multi-chunk tensors (the kernel's chunk is 16384 elements), the
// rest random up to 3000 elements, some 4-D.
std::vector<Shape> parameter_shapes() {
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<int64_t> small(1, 3000);
  std::vector<Shape> shapes = {{1}, {16384}, {16385}, {100003}, {64, 64, 3, 3}, {1, 1, 1, 1}, {7, 3, 3, 3}};
  while (shapes.size() < 200) shapes.push_back({small(rng)});
  return shapes;
}

constexpr int kSteps = 3;

// On step 0 only the even-numbered parameters get a gradient (the others skip it), so one launch mixes
// first and later steps, and AdamW step counts.
bool skips(size_t param, int step) { return step == 0 && param % 2 == 1; }

// An optimizer over the parameters, and what it does to parameter i (group lr scale included). Its state
// tensors are named group<g>.param<p>.<kind> with `kinds` for every parameter (two groups split the list in
// halves when `two_groups`).
struct OptimizerVariant {
  std::string name{};
  uint64_t seed = 0;
  std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)> make{};
  std::function<SgdHyper(size_t i, size_t count)> sgd{};  // empty for AdamW
  AdamWHyper adamw{};
  std::vector<std::string> kinds{};
  bool two_groups = false;
};

std::vector<std::string> state_names(const OptimizerVariant& v, size_t count) {
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i) {
    const size_t group = v.two_groups && i >= count / 2 ? 1 : 0;
    const size_t param = group == 1 ? i - count / 2 : i;
    for (const std::string& kind : v.kinds) names.push_back(cat("group", group, ".param", param, ".", kind));
  }
  return names;
}

// Inputs: the 200 parameters, then each step's 200 gradients (an empty tensor where the parameter skips
// the step). Output: the parameters after three steps, then the state tensors in state_tensors() order.
Tensor optimizer_op(const OptimizerVariant& v, const std::vector<Tensor>& in) {
  const size_t count = in.size() / (kSteps + 1);
  const Device device = in[0].device();
  std::vector<Tensor> params;
  for (size_t i = 0; i < count; ++i) params.push_back(in[i].clone());
  std::unique_ptr<Optimizer> opt = v.make(params);
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < count; ++i) {
      const Tensor& g = in[count * size_t(step + 1) + i];
      params[i].set_grad(g.numel() == 0 ? Tensor() : g);
    }
    opt->step();
  }
  std::vector<Tensor> out = params;
  std::vector<std::string> names;
  for (const auto& [name, t] : opt->state_tensors()) {
    names.push_back(name);
    out.push_back(t);
  }
  CHECK(names == state_names(v, count));
  for (const Tensor& t : out) CHECK(t.device() == device);
  return test::flat_concat(out);
}

Expected optimizer_oracle(const OptimizerVariant& v, const std::vector<Tensor>& in) {
  const size_t count = in.size() / (kSteps + 1);
  std::vector<std::vector<double>> p, a, b;  // parameters; buffer or exp_avg; exp_avg_sq
  for (size_t i = 0; i < count; ++i) {
    p.push_back(in[i].to_vector());
    a.emplace_back(p.back().size(), 0.0);
    b.emplace_back(p.back().size(), 0.0);
  }
  for (size_t i = 0; i < count; ++i) {
    int64_t t = 0;
    for (int step = 0; step < kSteps; ++step) {
      if (skips(i, step)) continue;
      ++t;
      const std::vector<double> g = in[count * size_t(step + 1) + i].to_vector();
      for (size_t e = 0; e < g.size(); ++e) {
        if (v.sgd) sgd_element(v.sgd(i, count), p[i][e], g[e], a[i][e], t == 1);
        else adamw_element(v.adamw, p[i][e], g[e], a[i][e], b[i][e], t);
      }
    }
  }
  Expected e;
  for (const auto& x : p) e.out.insert(e.out.end(), x.begin(), x.end());
  for (size_t i = 0; i < count; ++i)
    for (size_t k = 0; k < v.kinds.size(); ++k) {
      const std::vector<double>& state = k == 0 ? a[i] : b[i];
      e.out.insert(e.out.end(), state.begin(), state.end());
    }
  return e;
}

std::vector<Tensor> first_half(const std::vector<Tensor>& v) { return {v.begin(), v.begin() + v.size() / 2}; }
std::vector<Tensor> second_half(const std::vector<Tensor>& v) { return {v.begin() + v.size() / 2, v.end()}; }

std::vector<OptimizerVariant> optimizer_variants() {
  std::vector<OptimizerVariant> variants;
  const std::vector<std::pair<std::string, SgdOptions>> sgd = {
      {"plain", {}},
      {"weight decay, no momentum", {.weight_decay = 1e-3}},
      {"momentum 0.9 + decay 5e-4", {.momentum = 0.9, .weight_decay = 5e-4}},
      {"nesterov", {.momentum = 0.9, .weight_decay = 1e-4, .nesterov = true}},
      {"dampening", {.momentum = 0.5, .dampening = 0.3, .weight_decay = 1e-2}},
  };
  for (const auto& [name, options] : sgd) {
    const SgdOptions o = options;
    variants.push_back({.name = "SGD " + name,
                        .seed = 7,
                        .make = [o](const std::vector<Tensor>& p) { return std::make_unique<SGD>(p, 0.1, o); },
                        .sgd = [o](size_t, size_t) {
                          return SgdHyper{0.1, o.momentum, o.dampening, o.weight_decay, o.nesterov};
                        },
                        .kinds = o.momentum > 0 ? std::vector<std::string>{"momentum_buffer"}
                                                : std::vector<std::string>{}});
  }
  // The SCPN recipe's two groups (no decay on the second), with a group lr scale.
  variants.push_back({.name = "SGD two groups",
                      .seed = 8,
                      .make = [](const std::vector<Tensor>& p) {
                        return std::make_unique<SGD>(
                            std::vector<SgdGroup>{SgdGroup{first_half(p), {.momentum = 0.9, .weight_decay = 5e-4}, 1.0},
                                                  SgdGroup{second_half(p), {.momentum = 0.9}, 0.5}},
                            0.1);
                      },
                      .sgd = [](size_t i, size_t count) {
                        return i < count / 2 ? SgdHyper{0.1, 0.9, 0, 5e-4, false} : SgdHyper{0.05, 0.9, 0, 0, false};
                      },
                      .kinds = {"momentum_buffer"},
                      .two_groups = true});
  variants.push_back({.name = "AdamW defaults",
                      .seed = 9,
                      .make = [](const std::vector<Tensor>& p) { return std::make_unique<AdamW>(p, 1e-2); },
                      .adamw = {.lr = 1e-2, .weight_decay = 1e-2},
                      .kinds = {"exp_avg", "exp_avg_sq"}});
  variants.push_back({.name = "AdamW no decay",
                      .seed = 10,
                      .make = [](const std::vector<Tensor>& p) {
                        return std::make_unique<AdamW>(
                            p, 3e-3, AdamWOptions{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0});
                      },
                      .adamw = {.lr = 3e-3, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0},
                      .kinds = {"exp_avg", "exp_avg_sq"}});
  return variants;
}

// The same element formula in the same type on every device; only FMA contraction may differ.
constexpr test::Tolerance kF32{1e-6, 1e-5}, kF64{1e-12, 1e-12};

std::vector<OpCase> optimizer_cases() {
  std::vector<OpCase> cases;
  for (const OptimizerVariant& v : optimizer_variants())
    cases.push_back({.name = v.name + ", 3 steps over 200 parameters",
                     .inputs = [seed = v.seed](DType d) {
                       const std::vector<Shape> shapes = parameter_shapes();
                       std::vector<Tensor> in;
                       for (size_t i = 0; i < shapes.size(); ++i) in.push_back(random_tensor(shapes[i], d, seed + i));
                       for (int step = 0; step < kSteps; ++step)
                         for (size_t i = 0; i < shapes.size(); ++i)
                           in.push_back(skips(i, step) ? zeros({0}, d)
                                                       : random_tensor(shapes[i], d, seed + 1000 * uint64_t(step) + i));
                       return in;
                     },
                     .op = [v](const std::vector<Tensor>& in) { return optimizer_op(v, in); },
                     .oracle = [v](const std::vector<Tensor>& in, const Tensor&) { return optimizer_oracle(v, in); },
                     .oracle_f32 = kF32,
                     .oracle_f64 = kF64,
                     .gradcheck = false,  // an update step, not a differentiable op
                     .parity_f32 = kF32,
                     .parity_f64 = kF64});
  return cases;
}

// ---- the kernels called directly -------------------------------------------------------------------
// Five tensors, one of them empty, each with param, grad, momentum buffer / exp_avg and exp_avg_sq: one
// sgd_step (first steps on the even tensors), then one adamw_step at steps 1, 2, 7, 1000, 3 on the same
// param and grad with the SGD buffer as exp_avg. Output: all twenty tensors afterwards (grads unchanged).
const std::vector<int64_t> kKernelSizes = {5, 0, 1, 40000, 333};
const int64_t kAdamWSteps[] = {1, 2, 7, 1000, 3};
const SgdHyper kKernelSgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3};
const AdamWHyper kKernelAdamW{.lr = 1e-3, .weight_decay = 0.1};

Tensor kernels_op(const std::vector<Tensor>& in) {
  const Device d = in[0].device();
  const DType dtype = in[0].dtype();
  std::vector<Tensor> v;
  for (const Tensor& t : in) v.push_back(t.clone());
  std::vector<SgdTensor> sgd;
  std::vector<AdamWTensor> adamw;
  for (size_t i = 0; i < kKernelSizes.size(); ++i) {
    sgd.push_back({kKernelSizes[i], v[4 * i].raw_data(), v[4 * i + 1].raw_data(), v[4 * i + 2].raw_data(), i % 2 == 0});
    adamw.push_back({kKernelSizes[i], v[4 * i].raw_data(), v[4 * i + 1].raw_data(), v[4 * i + 2].raw_data(),
                     v[4 * i + 3].raw_data(), kAdamWSteps[i]});
  }
  SgdStepArgs sa;
  sa.lr = kKernelSgd.lr;
  sa.momentum = kKernelSgd.momentum;
  sa.weight_decay = kKernelSgd.weight_decay;
  sa.tensors = sgd.data();
  sa.count = int64_t(sgd.size());
  kernels().sgd_step.on(d)(exec_context(d), dtype, sa);
  AdamWStepArgs aa;
  aa.lr = kKernelAdamW.lr;
  aa.weight_decay = kKernelAdamW.weight_decay;
  aa.tensors = adamw.data();
  aa.count = int64_t(adamw.size());
  kernels().adamw_step.on(d)(exec_context(d), dtype, aa);
  for (const Tensor& t : v) CHECK(t.device() == d);
  return test::flat_concat(v);
}

Expected kernels_oracle(const std::vector<Tensor>& in, const Tensor&) {
  Expected e;
  for (size_t i = 0; i < kKernelSizes.size(); ++i) {
    std::vector<double> p = in[4 * i].to_vector(), g = in[4 * i + 1].to_vector(), m = in[4 * i + 2].to_vector(),
                        v = in[4 * i + 3].to_vector();
    for (size_t k = 0; k < p.size(); ++k) {
      sgd_element(kKernelSgd, p[k], g[k], m[k], i % 2 == 0);
      adamw_element(kKernelAdamW, p[k], g[k], m[k], v[k], kAdamWSteps[i]);
    }
    for (const std::vector<double>* x : {&p, &g, &m, &v}) e.out.insert(e.out.end(), x->begin(), x->end());
  }
  return e;
}

OpCase kernels_case() {
  return {.name = "sgd_step + adamw_step kernels: an empty tensor in the list, mixed first steps, distant steps",
          .inputs = [](DType d) {
            std::vector<Tensor> in;
            for (size_t i = 0; i < kKernelSizes.size(); ++i)
              for (uint64_t k = 0; k < 4; ++k)  // moments must be >= 0 for exp_avg_sq: draw them in [0, 1)
                in.push_back(random_tensor({kKernelSizes[i]}, d, 100 * i + k, k == 3 ? 0.0 : -1.0, 1.0));
            return in;
          },
          .op = kernels_op,
          .oracle = kernels_oracle,
          .oracle_f32 = kF32,
          .oracle_f64 = kF64,
          .gradcheck = false,
          .parity_f32 = kF32,
          .parity_f64 = kF64};
}

}  // namespace

TEST_CASE("optimizer: op harness") {
  std::vector<OpCase> cases = optimizer_cases();
  cases.push_back(kernels_case());
  test::run_op_cases("optimizer", cases);
}
