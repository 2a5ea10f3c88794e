// The SCPN step: `sum` mode equals one backward of the summed losses followed by the same clip and SGD
// update computed here by hand; `parent` mode equals plain training; an `scpn` step with no subnetworks is
// the parent's step; the step is deterministic for a seed and the same bit for bit with its passes side by
// side.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/devices.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/optim/sgd.h"
#include "models/resnet.h"
#include "tests/support/check.h"
#include "train/scpn/step.h"

using namespace scpn;
using namespace scpn::models;
using namespace scpn::train;

namespace {

ResNetConfig tiny_config(Granularity g) {
  ResNetConfig c;
  c.arch = "custom";
  c.layers = {1, 1, 1, 1};
  c.stem = Stem::small;
  c.in_channels = 1;
  c.base_width = 2;
  c.feature_dim = 6;
  c.num_classes = 4;
  c.granularity = g;
  c.bn_capacities = {0.5, 0.25};
  return c;
}

struct Setup {
  std::unique_ptr<ResNet> model;
  std::unique_ptr<SGD> opt;
  Tensor x, y;
  explicit Setup(Granularity g) {
    Generator gen(5);
    model = std::make_unique<ResNet>(tiny_config(g), gen, DType::f64);
    opt = std::make_unique<SGD>(model->parameters(), 0.05, SgdOptions{.momentum = 0.9, .weight_decay = 1e-3});
    x = normal({6, 1, 12, 12}, 0, 1, gen, DType::f64);
    y = from_vector({0, 1, 2, 3, 0, 1}, {6}, DType::i64);
  }
};

std::vector<std::vector<double>> snapshot(const ResNet& m) {
  std::vector<std::vector<double>> out;
  for (auto& [name, t] : m.state()) out.push_back(t.to_vector());
  return out;
}

}  // namespace

TEST_CASE("sum mode = one backward of the summed losses, clipped, then SGD") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    Setup a(g), b(g);
    StepOptions so;
    so.mode = TrainMode::sum;
    so.capacities = {0.5, 0.25};
    so.clip_norm = 0.5;  // small enough to be active
    ScpnStep step(*a.model, *a.opt, so, 1);
    StepResult r = step.run(a.x, a.y, 0);

    // By hand on the twin model: Σ losses at 0.5, 0.25 and 1, one backward, clip, SGD.
    b.model->train();
    Tensor total;
    for (double c : {0.5, 0.25, 1.0}) {
      Tensor l = cross_entropy(b.model->forward(b.x, {c}).logits, b.y);
      total = total.defined() ? add(total, l) : l;
    }
    backward(total);
    double sq = 0;
    for (auto& p : b.model->parameters())
      for (double v : p.grad().to_vector()) sq += v * v;
    double norm = std::sqrt(sq);
    CHECK(r.grad_norm == doctest::Approx(norm).epsilon(1e-12));
    REQUIRE(norm > 0.5);
    for (auto& p : b.model->parameters()) {
      Tensor g2 = mul_scalar(p.grad(), 0.5 / (norm + 1e-6));
      p.set_grad(g2);
    }
    b.opt->step();
    auto sa = snapshot(*a.model), sb = snapshot(*b.model);
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) CHECK_CLOSE(sa[i], sb[i], 1e-13, 1e-11);
  }
}

TEST_CASE("parent mode and an scpn step without subnetworks train the dense network alone") {
  Setup a(Granularity::weight), b(Granularity::weight), c(Granularity::weight);
  StepOptions parent;
  parent.mode = TrainMode::parent;
  parent.capacities = {};
  ScpnStep(*a.model, *a.opt, parent, 1).run(a.x, a.y, 0);
  StepOptions scpn;
  scpn.capacities = {};
  ScpnStep(*b.model, *b.opt, scpn, 1).run(b.x, b.y, 0);
  // By hand: one backward of the parent's loss, SGD (the norm is far below the clip).
  c.model->train();
  backward(cross_entropy(c.model->forward(c.x).logits, c.y));
  c.opt->step();
  auto sa = snapshot(*a.model), sb = snapshot(*b.model), sc = snapshot(*c.model);
  auto names = a.model->state();
  for (size_t i = 0; i < sa.size(); ++i) {
    CAPTURE(names[i].first);
    CHECK_CLOSE(sa[i], sc[i], 1e-14, 1e-12);
    // K = 1 with cosine weights: w = a/(a + 1e-8) ≈ 1 − 1e-8, so the update lr·g of an integrated tensor
    // is smaller by lr·|g|·1e-8 (gradients here are O(1), lr 0.05).
    CHECK_CLOSE(sb[i], sc[i], 5e-9, 0);
  }
}

TEST_CASE("an scpn step moves each capacity's own BN statistics and is deterministic for a seed") {
  Setup a(Granularity::channel), b(Granularity::channel);
  StepOptions so;
  so.capacities = {0.5, 0.25};
  so.extra_random_capacities = 1;
  ScpnStep sa(*a.model, *a.opt, so, 9), sb(*b.model, *b.opt, so, 9);
  auto before = a.model->named_buffers();
  std::vector<std::vector<double>> before_values;
  for (auto& [n, t] : before) before_values.push_back(t.to_vector());
  StepResult ra = sa.run(a.x, a.y, 3), rb = sb.run(b.x, b.y, 3);
  CHECK(ra.capacities.size() == 3);
  CHECK(ra.capacities == rb.capacities);
  CHECK(ra.capacities[2] > 0.1);
  CHECK(ra.capacities[2] < 1.0);
  CHECK(snapshot(*a.model) == snapshot(*b.model));
  auto after = a.model->named_buffers();
  for (size_t i = 0; i < after.size(); ++i) {
    bool moved = after[i].second.to_vector() != before_values[i];
    CAPTURE(after[i].first);
    CHECK(moved);  // parent, @0.50 and @0.25 statistics all moved
  }
  CHECK(ra.task_rows > 0);
}

TEST_CASE("passes side by side (train.concurrent_passes) give the step of passes one after another, bit for bit") {
  const int threads_before = cpu_threads();
  set_cpu_threads(2);  // two threads even on one core: the passes must really overlap
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    CAPTURE(to_string(g));
    Setup a(g), b(g);
    StepOptions one, two;
    one.capacities = two.capacities = {0.5, 0.25};
    one.concurrent_passes = 1;
    two.concurrent_passes = 2;
    ScpnStep sa(*a.model, *a.opt, one, 9), sb(*b.model, *b.opt, two, 9);
    for (int64_t step = 1; step <= 2; ++step) {
      StepResult ra = sa.run(a.x, a.y, step), rb = sb.run(b.x, b.y, step);
      CHECK(ra.timings.concurrent_passes == 1);
      CHECK(rb.timings.concurrent_passes == 2);  // the two subnetworks side by side, then the parent
      CHECK(ra.parent_loss == rb.parent_loss);
      CHECK(ra.subnet_losses == rb.subnet_losses);
      CHECK(ra.grad_norm == rb.grad_norm);
      CHECK(ra.projected_rows == rb.projected_rows);
    }
    // Parameters, optimizer-moved values and every capacity's BatchNorm statistics.
    CHECK(snapshot(*a.model) == snapshot(*b.model));
  }
  set_cpu_threads(threads_before);
}

TEST_CASE("a diverging step stops with a clear error") {
  Setup a(Granularity::weight);
  StepOptions so;
  so.capacities = {0.5};
  ScpnStep step(*a.model, *a.opt, so, 1);
  Tensor bad = a.x.clone();
  bad.data<double>()[0] = NAN;
  // The loss stays finite (ReLU turns the BatchNorm's NaN channel into zeros); the gradients do not.
  CHECK_THROWS_WITH_AS(step.run(bad, a.y, 0),
                       "training diverged: 3 of 54 gradients hold non-finite values, the first 'conv1.weight': 18 of 18 "
                       "values are non-finite, the first nan at index 0; lower train.lr or check the data",
                       Error);
}
