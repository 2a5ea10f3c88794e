// AdamW: three updates against plain double arithmetic (bias correction, decoupled decay, eps, groups),
// per-parameter step counts for parameters that skip steps, bit-identical resume from saved state,
// bad state and bad options rejected with their messages.
#include <cmath>

#include <doctest/doctest.h>

#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {

struct RefOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

// AdamW as the paper writes it, per element in doubles; `steps[s]` is false where the parameter has
// no gradient in step s (its step count then does not advance). Returns the parameters after each step.
std::vector<std::vector<double>> reference_adamw(std::vector<double> p, const std::vector<std::vector<double>>& grads,
                                                 const RefOptions& o, std::vector<bool> has_grad = {}) {
  std::vector<double> m(p.size(), 0.0), v(p.size(), 0.0);
  std::vector<std::vector<double>> after;
  int t = 0;
  for (size_t s = 0; s < grads.size(); ++s) {
    if (has_grad.empty() || has_grad[s]) {
      ++t;
      for (size_t i = 0; i < p.size(); ++i) {
        double g = grads[s][i];
        p[i] -= o.lr * o.weight_decay * p[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
        double m_hat = m[i] / (1 - std::pow(o.beta1, t));
        double v_hat = v[i] / (1 - std::pow(o.beta2, t));
        p[i] -= o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
      }
    }
    after.push_back(p);
  }
  return after;
}

std::vector<Tensor> gradients(const Shape& shape, DType dtype, int steps, uint64_t seed) {
  std::vector<Tensor> out;
  for (int s = 0; s < steps; ++s) out.push_back(random_f64(shape, seed + uint64_t(s)).to(dtype));
  return out;
}

std::vector<std::vector<double>> values(const std::vector<Tensor>& ts) {
  std::vector<std::vector<double>> out;
  for (const Tensor& t : ts) out.push_back(t.to_vector());
  return out;
}

NamedTensors copy_state(const NamedTensors& state) {
  NamedTensors out;
  for (const auto& [name, t] : state) out.emplace_back(name, t.clone());
  return out;
}

}  // namespace

TEST_CASE("AdamW: first step by hand") {
  // t = 1: m̂ = g, v̂ = g², so p moves by lr·g/(|g| + eps) after decaying by lr·wd·p.
  Tensor p = from_vector({1.0, -2.0}, {2}, DType::f64);
  AdamW opt({p}, 0.1, {.weight_decay = 0.01});
  p.set_grad(from_vector({0.5, -4.0}, {2}, DType::f64));
  opt.step();
  // 1·(1 − 0.001) − 0.1·0.5/(0.5 + 1e-8);  −2·(1 − 0.001) + 0.1·4/(4 + 1e-8)
  CHECK(p.to_vector()[0] == doctest::Approx(0.999 - 0.1 * 0.5 / 0.50000001).epsilon(1e-14));
  CHECK(p.to_vector()[1] == doctest::Approx(-1.998 + 0.1 * 4 / 4.00000001).epsilon(1e-14));
}

TEST_CASE("AdamW: three steps against double arithmetic, with bias correction") {
  const RefOptions configs[] = {
      {1e-3, 0.9, 0.999, 1e-8, 1e-2},  // PyTorch's defaults
      {0.1, 0.9, 0.999, 1e-8, 0},      // no decay
      {0.05, 0.5, 0.9, 1e-3, 0.1},     // eps large enough to matter
      {0.01, 0, 0.99, 1e-8, 0.5},      // beta1 = 0: no first moment
  };
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const RefOptions& c : configs) {
      for (const Shape& shape : {Shape{1}, Shape{7}, Shape{2, 3, 3, 3}}) {
        Tensor init = random_f64(shape, 3).to(dtype);
        Tensor p = init.clone();
        std::vector<Tensor> grads = gradients(shape, dtype, 3, 60);
        auto expected = reference_adamw(init.to_vector(), values(grads), c);
        AdamW opt({p}, c.lr, {c.beta1, c.beta2, c.eps, c.weight_decay});
        for (int s = 0; s < 3; ++s) {
          p.set_grad(grads[size_t(s)]);
          opt.step();
          INFO(dtype_name(dtype), " ", shape_str(shape), " step ", s, " lr ", c.lr, " betas ", c.beta1, " ", c.beta2,
               " eps ", c.eps, " wd ", c.weight_decay);
          double tol = dtype == DType::f64 ? 1e-13 : 1e-6;
          CHECK_CLOSE(p.to_vector(), expected[size_t(s)], tol, tol);
        }
      }
    }
  }
}

TEST_CASE("AdamW: groups, lr scale, and per-parameter step counts for skipped parameters") {
  Tensor w = random_f64({3, 2}, 8), b = random_f64({3}, 9);
  Tensor w0 = w.clone(), b0 = b.clone();
  AdamW opt({AdamWGroup{{w}, {.weight_decay = 0.1}}, AdamWGroup{{b}, {.weight_decay = 0}, 0.5}}, 0.01);
  auto gw = gradients({3, 2}, DType::f64, 3, 70), gb = gradients({3}, DType::f64, 3, 80);
  for (int s = 0; s < 3; ++s) {
    w.set_grad(gw[size_t(s)]);
    b.set_grad(s == 0 ? Tensor() : gb[size_t(s)]);  // b first steps at s = 1, with t = 1
    opt.step();
  }
  CHECK(opt.param_steps(0, 0) == 3);
  CHECK(opt.param_steps(1, 0) == 2);
  CHECK_CLOSE(w.to_vector(), reference_adamw(w0.to_vector(), values(gw), {0.01, 0.9, 0.999, 1e-8, 0.1})[2], 1e-14, 1e-13);
  CHECK_CLOSE(b.to_vector(),
              reference_adamw(b0.to_vector(), values(gb), {0.005, 0.9, 0.999, 1e-8, 0}, {false, true, true})[2], 1e-14,
              1e-13);
  auto names = opt.state_tensors();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "group0.param0.exp_avg");
  CHECK(names[1].first == "group0.param0.exp_avg_sq");
  CHECK(names[2].first == "group1.param0.exp_avg");
  CHECK(names[3].first == "group1.param0.exp_avg_sq");
}

TEST_CASE("AdamW: state saved after 2 steps and loaded into a fresh optimizer resumes bit-identically") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor w_init = random_f64({4, 3}, 31).to(dtype), b_init = random_f64({4}, 32).to(dtype);
    auto gw = gradients({4, 3}, dtype, 5, 33), gb = gradients({4}, dtype, 5, 43);
    auto make = [](Tensor w, Tensor b) {
      return AdamW({AdamWGroup{{w}, {.weight_decay = 0.05}}, AdamWGroup{{b}, {.beta1 = 0.8, .weight_decay = 0}, 0.1}},
                   0.01);
    };
    auto feed = [&](Tensor w, Tensor b, int s) {
      w.set_grad(gw[size_t(s)]);
      b.set_grad(s == 1 ? Tensor() : gb[size_t(s)]);  // b skips a step: its own step count lags
    };
    Tensor w = w_init.clone(), b = b_init.clone();
    AdamW whole = make(w, b);
    for (int s = 0; s < 5; ++s) {
      feed(w, b, s);
      whole.step();
    }
    Tensor w2 = w_init.clone(), b2 = b_init.clone();
    AdamW first = make(w2, b2);
    for (int s = 0; s < 2; ++s) {
      feed(w2, b2, s);
      first.step();
    }
    NamedTensors saved = copy_state(first.state_tensors());
    nlohmann::json meta = nlohmann::json::parse(first.state_meta().dump());
    CHECK(meta["groups"][1]["param_steps"] == nlohmann::json::array({1}));
    Tensor w3 = w2.clone(), b3 = b2.clone();
    AdamW resumed = make(w3, b3);
    resumed.load_state(meta, saved);
    for (int s = 2; s < 5; ++s) {
      feed(w3, b3, s);
      resumed.step();
    }
    CHECK(w3.to_vector() == w.to_vector());
    CHECK(b3.to_vector() == b.to_vector());
    CHECK(resumed.state_meta() == whole.state_meta());
  }
}

TEST_CASE("AdamW: bad saved state is rejected and leaves the optimizer untouched") {
  Tensor p = random_f64({2, 2}, 1);
  AdamW source({p}, 0.01);
  p.set_grad(ones({2, 2}, DType::f64));
  source.step();
  const nlohmann::json meta = source.state_meta();
  const NamedTensors tensors = copy_state(source.state_tensors());

  Tensor q = random_f64({2, 2}, 2);
  AdamW target({q}, 0.5, {.beta1 = 0.5});
  const nlohmann::json before = target.state_meta();
  auto rejects = [&](const nlohmann::json& m, const NamedTensors& t, const std::string& message) {
    CHECK_THROWS_WITH_AS(target.load_state(m, t), message.c_str(), Error);
    CHECK(target.state_meta() == before);
    CHECK(target.state_tensors().empty());
  };
  rejects(meta, {tensors[0]}, "AdamW.load_state: missing tensor 'group0.param0.exp_avg_sq'");
  NamedTensors extra = tensors;
  extra.emplace_back("group0.param1.exp_avg", zeros({2, 2}, DType::f64));
  rejects(meta, extra, "AdamW.load_state: unexpected tensor 'group0.param1.exp_avg' (the saved optimizer has no such state)");
  NamedTensors bad_shape = tensors;
  bad_shape[1].second = zeros({4}, DType::f64);
  rejects(meta, bad_shape, "AdamW.load_state: tensor 'group0.param0.exp_avg_sq' has shape [4], the parameter has [2, 2]");
  NamedTensors undefined = tensors;
  undefined[0].second = Tensor();
  rejects(meta, undefined, "AdamW.load_state: tensor 'group0.param0.exp_avg' is undefined");
  nlohmann::json m = meta;
  m["groups"][0]["options"]["beta2"] = 1.0;
  rejects(m, tensors, "AdamW.load_state: group 0: option 'beta2' must be in [0, 1), got 1");
  m = meta;
  m["groups"][0]["param_steps"][0] = -1;
  rejects(m, tensors, "AdamW.load_state: group 0: param_steps[0] must be an integer >= 0, got -1");

  // An SGD state cannot be loaded into AdamW.
  Tensor r = random_f64({2, 2}, 3);
  SGD sgd({r}, 0.1, {.momentum = 0.9});
  r.set_grad(ones({2, 2}, DType::f64));
  sgd.step();
  rejects(sgd.state_meta(), sgd.state_tensors(), "AdamW.load_state: the state was saved by optimizer 'SGD', not 'AdamW'");

  target.load_state(meta, tensors);
  CHECK(target.options(0).beta1 == 0.9);
  CHECK(target.param_steps(0, 0) == 1);
}

TEST_CASE("AdamW: bad options are rejected") {
  Tensor p = random_f64({3}, 1);
  CHECK_THROWS_WITH_AS(AdamW({p}, 0.1, {.beta1 = 1.0}), "AdamW group 0: option 'beta1' must be in [0, 1), got 1", Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, 0.1, {.beta2 = -0.1}), "AdamW group 0: option 'beta2' must be in [0, 1), got -0.1",
                       Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, 0.1, {.eps = 0}), "AdamW group 0: option 'eps' must be finite and > 0, got 0", Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, 0.1, {.weight_decay = -0.01}),
                       "AdamW group 0: option 'weight_decay' must be finite and >= 0, got -0.01", Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, -1), "AdamW: option 'lr' must be finite and >= 0, got -1", Error);
}
