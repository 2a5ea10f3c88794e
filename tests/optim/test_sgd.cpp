// SGD: three updates against plain double arithmetic (plain, momentum, Nesterov, dampening, weight
// decay, groups), gradients from .grad() and from a GradientSlot, save/restore (bit-identical resume,
// every kind of bad state rejected), option errors, and a least-squares fit driven to a small loss.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

namespace {

struct RefOptions {
  double lr = 0.1, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

// torch.optim.SGD written out per element in doubles; returns the parameters after each step.
std::vector<std::vector<double>> reference_sgd(std::vector<double> p, const std::vector<std::vector<double>>& grads,
                                               const RefOptions& o) {
  std::vector<double> buf(p.size(), 0.0);
  std::vector<std::vector<double>> after;
  for (size_t s = 0; s < grads.size(); ++s) {
    for (size_t i = 0; i < p.size(); ++i) {
      double d = grads[s][i] + o.weight_decay * p[i];
      if (o.momentum != 0) {
        buf[i] = s == 0 ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      p[i] = p[i] - o.lr * d;
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

// A snapshot of an optimizer's state, as a checkpoint would hold it.
NamedTensors copy_state(const NamedTensors& state) {
  NamedTensors out;
  for (const auto& [name, t] : state) out.emplace_back(name, t.clone());
  return out;
}

}  // namespace

TEST_CASE("SGD: one parameter, momentum 0.9, by hand") {
  // lr 0.1, g = 0.5 each step: buf 0.5, 0.95, 1.355; p 1 -> 0.95 -> 0.855 -> 0.7195.
  Tensor p = from_vector({1.0}, {1}, DType::f64);
  SGD opt({p}, 0.1, {.momentum = 0.9});
  const double expected[3] = {0.95, 0.855, 0.7195};
  for (int s = 0; s < 3; ++s) {
    p.set_grad(from_vector({0.5}, {1}, DType::f64));
    opt.step();
    CHECK(p.item() == doctest::Approx(expected[s]).epsilon(1e-14));
  }
  CHECK(opt.step_count() == 3);
  CHECK(opt.param_steps(0, 0) == 3);
}

TEST_CASE("SGD: three steps against double arithmetic for each option combination") {
  const RefOptions configs[] = {
      {0.1, 0, 0, 0, false},     {0.1, 0.9, 0, 0, false},   {0.05, 0.9, 0, 0, true},  {0.1, 0.9, 0.3, 0, false},
      {0.1, 0, 0, 0.1, false},   {0.2, 0.5, 0.2, 0.05, false}, {0.1, 0.9, 0, 0.01, true},
  };
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const RefOptions& c : configs) {
      for (const Shape& shape : {Shape{1}, Shape{3, 5}, Shape{2, 3, 3, 3}}) {
        Tensor init = random_f64(shape, 11).to(dtype);
        Tensor p = init.clone();
        std::vector<Tensor> grads = gradients(shape, dtype, 3, 40);
        std::vector<std::vector<double>> g;
        for (const Tensor& t : grads) g.push_back(t.to_vector());
        auto expected = reference_sgd(init.to_vector(), g, c);
        SGD opt({p}, c.lr, {c.momentum, c.dampening, c.weight_decay, c.nesterov});
        for (int s = 0; s < 3; ++s) {
          p.set_grad(grads[size_t(s)]);
          opt.step();
          INFO(dtype_name(dtype), " ", shape_str(shape), " step ", s, " lr ", c.lr, " momentum ", c.momentum,
               " dampening ", c.dampening, " wd ", c.weight_decay, " nesterov ", c.nesterov);
          double tol = dtype == DType::f64 ? 1e-14 : 1e-6;
          CHECK_CLOSE(p.to_vector(), expected[size_t(s)], tol, tol);
        }
      }
    }
  }
}

TEST_CASE("SGD: groups with their own options; a group without decay; lr scale") {
  Tensor w = random_f64({4, 3}, 1);
  Tensor b = random_f64({4}, 2);
  Tensor w0 = w.clone(), b0 = b.clone();
  SGD opt({SgdGroup{{w}, {.momentum = 0.9, .weight_decay = 5e-4}},
           SgdGroup{{b}, {.momentum = 0.9, .weight_decay = 0}, 0.5}},
          0.1);
  CHECK(opt.num_groups() == 2);
  CHECK(opt.group_lr(1) == doctest::Approx(0.05));
  auto gw = gradients({4, 3}, DType::f64, 3, 7);
  auto gb = gradients({4}, DType::f64, 3, 17);
  std::vector<std::vector<double>> gwv, gbv;
  for (int s = 0; s < 3; ++s) {
    gwv.push_back(gw[size_t(s)].to_vector());
    gbv.push_back(gb[size_t(s)].to_vector());
    w.set_grad(gw[size_t(s)]);
    b.set_grad(gb[size_t(s)]);
    opt.step();
  }
  CHECK_CLOSE(w.to_vector(), reference_sgd(w0.to_vector(), gwv, {0.1, 0.9, 0, 5e-4, false})[2], 1e-14, 1e-14);
  CHECK_CLOSE(b.to_vector(), reference_sgd(b0.to_vector(), gbv, {0.05, 0.9, 0, 0, false})[2], 1e-14, 1e-14);
  // The same group with decay would have ended elsewhere: the option is really per group.
  CHECK(b.to_vector() != reference_sgd(b0.to_vector(), gbv, {0.05, 0.9, 0, 5e-4, false})[2]);
}

TEST_CASE("SGD: parameters without a gradient are skipped; their buffer starts at their first gradient") {
  Tensor a = from_vector({1.0, 2.0}, {2}, DType::f64);
  Tensor b = from_vector({3.0}, {1}, DType::f64);
  SGD opt({a, b}, 0.1, {.momentum = 0.9});
  a.set_grad(from_vector({1.0, 1.0}, {2}, DType::f64));
  opt.step();  // b has no gradient
  CHECK(b.item() == 3.0);
  CHECK(opt.param_steps(0, 1) == 0);
  CHECK(opt.state_tensors().size() == 1);
  CHECK(opt.state_tensors()[0].first == "group0.param0.momentum_buffer");
  b.set_grad(from_vector({2.0}, {1}, DType::f64));
  opt.step();  // b's first step: buf = g = 2, p = 3 - 0.2
  CHECK(b.item() == doctest::Approx(2.8).epsilon(1e-15));
  // a: buf 1 -> 0.9 + 1 = 1.9; p = 1 - 0.1 - 0.19
  CHECK(a.to_vector()[0] == doctest::Approx(0.71).epsilon(1e-15));
  opt.zero_grad();
  CHECK(!a.grad().defined());
  CHECK(!b.grad().defined());
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(b.item() == doctest::Approx(2.8).epsilon(1e-15));
  b.set_grad(from_vector({5.0}, {1}, DType::f64));
  opt.zero_grad(false);
  CHECK(b.grad().to_vector() == std::vector<double>{0.0});
}

TEST_CASE("SGD: a step from a GradientSlot equals a step from .grad()") {
  Tensor x = random_f64({5, 3}, 3);
  Tensor w1 = random_f64({1, 3}, 4).requires_grad_();
  Tensor w2 = w1.detach().clone().requires_grad_();
  SGD opt1({w1}, 0.1, {.momentum = 0.9, .weight_decay = 1e-3});
  SGD opt2({w2}, 0.1, {.momentum = 0.9, .weight_decay = 1e-3});
  for (int s = 0; s < 3; ++s) {
    backward(sum(square(mul(x, w1))));
    opt1.step();
    opt1.zero_grad();
    GradientSlot slot;
    backward(sum(square(mul(x, w2))), Tensor(), {.slot = &slot});
    CHECK(!w2.grad().defined());
    opt2.step(slot);
    CHECK(w1.to_vector() == w2.to_vector());
  }
}

TEST_CASE("SGD: state saved after 2 steps and loaded into a fresh optimizer resumes bit-identically") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor w_init = random_f64({3, 4}, 21).to(dtype), b_init = random_f64({3}, 22).to(dtype);
    Tensor u_init = random_f64({2}, 23).to(dtype);  // never gets a gradient before the save
    auto gw = gradients({3, 4}, dtype, 5, 30), gb = gradients({3}, dtype, 5, 40), gu = gradients({2}, dtype, 5, 50);
    auto make = [](Tensor w, Tensor b, Tensor u) {
      return SGD({SgdGroup{{w, u}, {.momentum = 0.9, .weight_decay = 5e-4, .nesterov = true}},
                  SgdGroup{{b}, {.momentum = 0.8, .dampening = 0.1}, 2.0}},
                 0.1);
    };
    auto feed = [&](Tensor w, Tensor b, Tensor u, int s) {
      w.set_grad(gw[size_t(s)]);
      b.set_grad(gb[size_t(s)]);
      u.set_grad(s >= 2 ? gu[size_t(s)] : Tensor());
    };
    // Uninterrupted run.
    Tensor w = w_init.clone(), b = b_init.clone(), u = u_init.clone();
    SGD whole = make(w, b, u);
    for (int s = 0; s < 5; ++s) {
      feed(w, b, u, s);
      whole.step();
      if (s == 2) whole.set_lr(0.05);
    }
    // Two steps, save (meta through text, tensors copied), then a fresh optimizer over copies.
    Tensor w2 = w_init.clone(), b2 = b_init.clone(), u2 = u_init.clone();
    NamedTensors saved;
    nlohmann::json meta;
    Tensor w_saved, b_saved, u_saved;
    {
      SGD first = make(w2, b2, u2);
      for (int s = 0; s < 2; ++s) {
        feed(w2, b2, u2, s);
        first.step();
      }
      saved = copy_state(first.state_tensors());
      meta = nlohmann::json::parse(first.state_meta().dump());
      w_saved = w2.clone(), b_saved = b2.clone(), u_saved = u2.clone();
    }
    CHECK(saved.size() == 2);  // u has not stepped: no buffer yet
    CHECK(meta["groups"][0]["param_steps"] == nlohmann::json::array({2, 0}));
    Tensor w3 = w_saved.clone(), b3 = b_saved.clone(), u3 = u_saved.clone();
    SGD resumed = make(w3, b3, u3);
    resumed.load_state(meta, saved);
    CHECK(resumed.step_count() == 2);
    for (int s = 2; s < 5; ++s) {
      feed(w3, b3, u3, s);
      resumed.step();
      if (s == 2) resumed.set_lr(0.05);
    }
    CHECK(w3.to_vector() == w.to_vector());
    CHECK(b3.to_vector() == b.to_vector());
    CHECK(u3.to_vector() == u.to_vector());
    CHECK(resumed.state_meta() == whole.state_meta());
  }
}

TEST_CASE("SGD: bad saved state is rejected with the tensor or key and the reason, leaving it untouched") {
  Tensor w = random_f64({2, 3}, 1), b = random_f64({3}, 2);
  SGD source({SgdGroup{{w, b}, {.momentum = 0.9}}}, 0.1);
  w.set_grad(ones({2, 3}, DType::f64));
  b.set_grad(ones({3}, DType::f64));
  source.step();
  const nlohmann::json meta = source.state_meta();
  const NamedTensors tensors = copy_state(source.state_tensors());

  Tensor tw = random_f64({2, 3}, 5), tb = random_f64({3}, 6);
  SGD target({SgdGroup{{tw, tb}, {.momentum = 0.5}}}, 0.3);
  const nlohmann::json before = target.state_meta();
  auto rejects = [&](const nlohmann::json& m, const NamedTensors& t, const std::string& message) {
    CHECK_THROWS_WITH_AS(target.load_state(m, t), message.c_str(), Error);
    CHECK(target.state_meta() == before);
    CHECK(target.state_tensors().empty());
  };

  NamedTensors missing = {tensors[0]};
  rejects(meta, missing, "SGD.load_state: missing tensor 'group0.param1.momentum_buffer'");
  NamedTensors extra = tensors;
  extra.emplace_back("group0.param1.exp_avg", zeros({3}, DType::f64));
  rejects(meta, extra, "SGD.load_state: unexpected tensor 'group0.param1.exp_avg' (the saved optimizer has no such state)");
  NamedTensors twice = tensors;
  twice.push_back(tensors[0]);
  rejects(meta, twice, "SGD.load_state: tensor 'group0.param0.momentum_buffer' is given twice");
  NamedTensors bad_shape = tensors;
  bad_shape[0].second = zeros({3, 2}, DType::f64);
  rejects(meta, bad_shape,
          "SGD.load_state: tensor 'group0.param0.momentum_buffer' has shape [3, 2], the parameter has [2, 3]");
  NamedTensors bad_dtype = tensors;
  bad_dtype[1].second = zeros({3}, DType::f32);
  rejects(meta, bad_dtype, "SGD.load_state: tensor 'group0.param1.momentum_buffer' has dtype f32, the parameter has f64");

  nlohmann::json m = meta;
  m["groups"].push_back(m["groups"][0]);
  rejects(m, tensors, "SGD.load_state: the state has 2 parameter groups, the optimizer has 1");
  m = meta;
  m["groups"][0]["num_params"] = 3;
  rejects(m, tensors, "SGD.load_state: group 0: the state has 3 parameters, the optimizer's group has 2");
  m = meta;
  m["groups"][0]["param_steps"] = {1};
  rejects(m, tensors, "SGD.load_state: group 0: key 'param_steps' must be an array of 2 step counts");
  m = meta;
  m["groups"][0]["options"]["momentum"] = -1;
  rejects(m, tensors, "SGD.load_state: group 0: option 'momentum' must be finite and >= 0, got -1");
  m = meta;
  m["groups"][0]["options"].erase("nesterov");
  rejects(m, tensors, "SGD.load_state: group 0: missing key 'nesterov'");
  m = meta;
  m.erase("step");
  rejects(m, tensors, "SGD.load_state: missing key 'step'");
  m = meta;
  m["lr"] = "fast";
  rejects(m, tensors, "SGD.load_state: key 'lr' must be a number, got \"fast\"");
  m = meta;
  m["optimizer"] = "AdamW";
  rejects(m, tensors, "SGD.load_state: the state was saved by optimizer 'AdamW', not 'SGD'");
  // Momentum 0 in the saved state means no buffers: the given ones are then unexpected.
  m = meta;
  m["groups"][0]["options"]["momentum"] = 0;
  rejects(m, tensors,
          "SGD.load_state: unexpected tensor 'group0.param0.momentum_buffer' (the saved optimizer has no such state)");

  // After all the failures a good state still loads, and the hyper-parameters come with it.
  target.load_state(meta, tensors);
  CHECK(target.lr() == 0.1);
  CHECK(target.options(0).momentum == 0.9);
  CHECK(target.state_tensors().size() == 2);
  CHECK(target.state_tensors()[0].second.to_vector() == tensors[0].second.to_vector());
  CHECK(!target.state_tensors()[0].second.same(tensors[0].second));  // copied, not aliased
}

TEST_CASE("SGD: bad options, parameters and gradients are rejected") {
  Tensor p = random_f64({3}, 1);
  CHECK_THROWS_WITH_AS(SGD({p}, -0.1), "SGD: option 'lr' must be finite and >= 0, got -0.1", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, {.momentum = -0.5}),
                       "SGD group 0: option 'momentum' must be finite and >= 0, got -0.5", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, {.dampening = 1.5}), "SGD group 0: option 'dampening' must be in [0, 1], got 1.5",
                       Error);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, {.weight_decay = -1}),
                       "SGD group 0: option 'weight_decay' must be finite and >= 0, got -1", Error);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                       "SGD group 0: option 'nesterov' needs momentum > 0 and dampening = 0, got momentum 0.9 and "
                       "dampening 0.1",
                       Error);
  CHECK_THROWS_WITH_AS(SGD({SgdGroup{{p}, {}}, SgdGroup{{p}, {}}}, 0.1),
                       "SGD: parameter group1.param0 is the same tensor as group0.param0", Error);
  CHECK_THROWS_WITH_AS(SGD({SgdGroup{{p}, {}, -1.0}}, 0.1), "SGD group 0: option 'lr_scale' must be finite and >= 0, got -1",
                       Error);
  CHECK_THROWS_WITH_AS(SGD({zeros({2}, DType::i64)}, 0.1),
                       "SGD: parameter group0.param0 must be f32 or f64, got i64 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(SGD(std::vector<SgdGroup>{}, 0.1), "SGD: no parameter groups given", Error);
  SGD opt({p}, 0.1);
  CHECK_THROWS_WITH_AS(opt.set_lr(std::nan("")), "SGD: option 'lr' must be finite and >= 0, got nan", Error);
  p.set_grad(zeros({3}, DType::f32));
  CHECK_THROWS_WITH_AS(opt.step(), "SGD.step: the gradient of group0.param0 is f32 [3] on cpu, the parameter is f64 [3] on cpu",
                       Error);
  CHECK(opt.step_count() == 0);
}

TEST_CASE("SGD with momentum fits a least-squares linear model") {
  // y = X·w* + b* exactly, so the minimum loss is 0; X is [64, 4], the model is w [1, 4] and b [1].
  const int n = 64;
  Tensor x = random_f64({n, 4}, 90);
  Tensor w_true = from_vector({1.5, -2.0, 0.5, 0.25}, {1, 4}, DType::f64);
  Tensor y = add_scalar(sum(mul(x, w_true), {1}), 0.3);
  Tensor w = zeros({1, 4}, DType::f64).requires_grad_();
  Tensor b = zeros({1}, DType::f64).requires_grad_();
  auto loss_of = [&] { return mean(square(sub(add(sum(mul(x, w), {1}), b), y))); };
  SGD opt({w, b}, 0.1, {.momentum = 0.9});
  double first = loss_of().item();
  double loss = first;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    Tensor l = loss_of();
    loss = l.item();
    backward(l);
    opt.step();
  }
  loss = loss_of().item();
  MESSAGE("least squares, SGD momentum 0.9, 300 steps: loss ", first, " -> ", loss);
  CHECK(first > 0.5);
  CHECK(loss < 1e-10);
  CHECK_CLOSE(w.detach(), w_true, 1e-5, 0);
  CHECK(b.item() == doctest::Approx(0.3).epsilon(1e-5));
}
