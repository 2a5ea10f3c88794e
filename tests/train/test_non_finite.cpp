// NaN and Inf in training: a non-finite step updates nothing (parameters, optimizer state, and under `skip`
// the BatchNorm statistics), `stop` and `skip` end or skip it with messages naming the step, the debug mode
// names the first op that produced one, and no checkpoint is written holding one.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "engine/non_finite.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/optim/sgd.h"
#include "engine/safetensors.h"
#include "models/resnet.h"
#include "tests/support/skip.h"
#include "train/scpn/step.h"
#include "train/step_guard.h"
#include "train/trainer.h"

using namespace scpn;
using namespace scpn::models;
using namespace scpn::train;
namespace fs = std::filesystem;

namespace {

struct Setup {
  std::unique_ptr<ResNet> model;
  std::unique_ptr<SGD> opt;
  Tensor x, y;
  Setup() {
    ResNetConfig c;
    c.arch = "custom";
    c.layers = {1, 1, 1, 1};
    c.in_channels = 1;
    c.base_width = 2;
    c.feature_dim = 6;
    c.num_classes = 4;
    c.bn_capacities = {0.5};
    Generator gen(5);
    model = std::make_unique<ResNet>(c, gen, DType::f64);
    opt = std::make_unique<SGD>(model->parameters(), 0.05, SgdOptions{.momentum = 0.9});
    x = normal({6, 1, 12, 12}, 0, 1, gen, DType::f64);
    y = from_vector({0, 1, 2, 3, 0, 1}, {6}, DType::i64);
  }
  Tensor x_with(double bad) const {
    Tensor t = x.clone();
    t.data<double>()[0] = bad;
    return t;
  }
};

// Parameters, buffers and optimizer state, as exact values.
std::vector<std::vector<double>> everything(const ResNet& m, const Optimizer& opt) {
  std::vector<std::vector<double>> out;
  for (auto& [name, t] : m.state()) out.push_back(t.to_vector());
  for (auto& [name, t] : opt.state_tensors()) out.push_back(t.to_vector());
  return out;
}

StepOptions reporting() {
  StepOptions so;
  so.capacities = {0.5};
  so.throw_on_non_finite = false;
  return so;
}

}  // namespace

TEST_CASE("non_finite_tensors and find_non_finite locate NaN and Inf") {
  Tensor a = from_vector({1, 2, 3}, {3}), b = from_vector({1, NAN, -INFINITY, 4}, {4}), c = from_vector({1e300, 2}, {2}, DType::f64);
  CHECK(non_finite_tensors({a, Tensor(), b, c, from_vector({7}, {1}, DType::i64)}) == std::vector<size_t>{2});
  auto v = find_non_finite(b);
  REQUIRE(v);
  CHECK(describe_non_finite(b, *v) == "2 of 4 values are non-finite, the first nan at index 1");
  CHECK_FALSE(find_non_finite(c));  // its squares overflow; its values do not
  CHECK(non_finite_name(-NAN) == "nan");
  CHECK(non_finite_name(-INFINITY) == "-inf");
}

TEST_CASE("a non-finite step updates nothing and says what was non-finite") {
  Setup a;
  ScpnStep step(*a.model, *a.opt, reporting(), 1);
  step.run(a.x, a.y, 0);  // the optimizer has state (momentum) to keep
  const auto before = everything(*a.model, *a.opt);
  StepResult r = step.run(a.x_with(NAN), a.y, 1);
  CHECK(r.non_finite ==
        "3 of 54 gradients hold non-finite values, the first 'conv1.weight': 98 of 98 values are non-finite, the first "
        "nan at index 0");
  // The BatchNorm statistics moved in the forward passes (a guard puts them back); the rest did not change.
  const auto after = everything(*a.model, *a.opt);
  size_t moved = 0;
  auto state = a.model->state();
  for (size_t i = 0; i < before.size(); ++i) {
    const bool is_buffer = i < state.size() && state[i].first.find("running_") != std::string::npos;
    if (is_buffer) moved += before[i] != after[i];
    else CHECK_MESSAGE(before[i] == after[i], (i < state.size() ? state[i].first : "optimizer state"));
  }
  CHECK(moved > 0);
  CHECK(a.opt->step_count() == 1);

  // An infinite loss is named as such; by default the step throws.
  Setup b;
  StepOptions throwing = reporting();
  throwing.throw_on_non_finite = true;
  throwing.mode = TrainMode::parent;
  throwing.capacities = {};
  ScpnStep parent(*b.model, *b.opt, throwing, 1);
  for (auto& [name, t] : b.model->named_parameters())
    if (name == "classifier.bias") fill_(t, INFINITY);
  CHECK_THROWS_WITH_AS(parent.run(b.x, b.y, 0),
                       "training diverged: the parent loss is nan; 54 of 54 gradients hold non-finite values, the first "
                       "'conv1.weight': 98 of 98 values are non-finite, the first nan at index 0; lower train.lr or check "
                       "the data",
                       Error);
}

TEST_CASE("StepGuard: stop names the step; skip restores the BatchNorm statistics, counts, and stops past the bound") {
  Setup a;
  ScpnStep step(*a.model, *a.opt, reporting(), 1);
  TrainPosition pos;
  pos.step = 6;
  pos.epoch = 1;
  pos.batch = 2;
  StepGuard stop(*a.model, step, {NonFinitePolicy::stop, 5, 0});
  CHECK_THROWS_WITH_AS(stop.run(a.x_with(NAN), a.y, pos),
                       "step 7 (epoch 1, batch 2): non-finite values (3 of 54 gradients hold non-finite values, the first "
                       "'conv1.weight': 98 of 98 values are non-finite, the first nan at index 0); stopping as "
                       "train.non_finite = stop; this step updated nothing",
                       Error);

  Setup b;
  ScpnStep skip_step(*b.model, *b.opt, reporting(), 1);
  StepGuard skip(*b.model, skip_step, {NonFinitePolicy::skip, 1, 8});  // and a NaN injected at step 8
  skip.run(b.x, b.y, pos);  // step 7, finite
  const auto before = everything(*b.model, *b.opt);
  pos.step = 7;
  StepResult r = skip.run(b.x, b.y, pos);  // step 8: NaN pixel
  CHECK(r.non_finite.rfind("3 of 54 gradients hold non-finite values", 0) == 0);
  CHECK(pos.skipped_steps == 1);
  CHECK(everything(*b.model, *b.opt) == before);  // parameters, BN statistics and optimizer state
  pos.step = 8;
  CHECK_THROWS_WITH_AS(skip.run(b.x_with(INFINITY), b.y, pos),
                       "step 9 (epoch 1, batch 2): non-finite values (3 of 54 gradients hold non-finite values, the first "
                       "'conv1.weight': 98 of 98 values are non-finite, the first nan at index 0); stopping: 2 steps "
                       "skipped, more than train.max_skipped_steps = 1",
                       Error);
}

TEST_CASE("debug.detect_non_finite names the first op whose output is non-finite, forward or backward") {
  Setup a;
  ScpnStep step(*a.model, *a.opt, reporting(), 1);
  StepGuard guard(*a.model, step, {NonFinitePolicy::stop, 0, 0});
  TrainPosition pos;
  set_check_op_outputs(true);
  CHECK_THROWS_WITH_AS(guard.run(a.x_with(NAN), a.y, pos),
                       "step 1 (epoch 0, batch 0): debug.detect_non_finite: op 'conv2d' (forward) produced a non-finite "
                       "output of shape [6, 2, 6, 6]: 8 of 432 values are non-finite, the first nan at index 0",
                       Error);
  // sqrt is finite at 0, its derivative is not.
  Tensor z = from_vector({0.0, 4.0}, {2}, DType::f64);
  z.requires_grad_();
  Tensor s = sum(scpn::sqrt(z));
  CHECK_THROWS_WITH_AS(backward(s),
                       "op 'sqrt' (backward) produced a non-finite gradient for its input 0 (shape [2]): 1 of 2 values "
                       "is non-finite, the first inf at index 0",
                       NonFiniteOpError);
  set_check_op_outputs(false);
  backward(sum(scpn::sqrt(z)));  // off again: no check
}

TEST_CASE("train.non_finite=skip: a run with a NaN batch equals the run that stopped before it") {
  if (test::skip_without_fashion_mnist()) return;
  const std::string root = (fs::temp_directory_path() / "scpn_test_non_finite").string();
  fs::remove_all(root);
  auto config = [&](const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> o = {"model.base_width=2", "model.feature_dim=8", "data.train_limit=64", "data.test_limit=20",
                                  "train.batch_size=16", "train.epochs=1", "train.capacities=[0.5]",
                                  "output.dir=" + root + "/" + dir, "device=cpu"};
    o.insert(o.end(), extra.begin(), extra.end());
    return parse_config("", o);
  };
  TrainerOptions quiet{.quiet = true, .evaluate = false};
  Trainer(config("two", {"train.steps=2"}), quiet).run();
  TrainSummary skipped =
      Trainer(config("skip", {"train.steps=3", "train.non_finite=skip", "debug.inject_nan_step=3"}), quiet).run();
  CHECK(skipped.steps == 3);
  CHECK(skipped.skipped_steps == 1);
  // Same parameters, BatchNorm statistics and optimizer state, bit for bit.
  const SafetensorsFile two = read_safetensors(root + "/two/last.safetensors");
  const SafetensorsFile skip = read_safetensors(root + "/skip/last.safetensors");
  REQUIRE(two.tensors.size() == skip.tensors.size());
  for (size_t i = 0; i < two.tensors.size(); ++i) {
    CAPTURE(two.tensors[i].name);
    CHECK(two.tensors[i].tensor.to_vector() == skip.at(two.tensors[i].name).to_vector());
  }
  CHECK(nlohmann::json::parse(skip.metadata.at("position")).at("skipped_steps") == 1);

  // stop: the error names the step, and the last checkpoint is the one before it.
  CHECK_THROWS_WITH_AS(
      Trainer(config("stop", {"debug.inject_nan_step=3", "output.checkpoint_every=1"}), quiet).run(),
      "step 3 (epoch 0, batch 2): non-finite values (3 of 86 gradients hold non-finite values, the first "
      "'conv1.weight': 18 of 18 values are non-finite, the first nan at index 0); stopping as train.non_finite = stop; "
      "this step updated nothing",
      Error);
  CHECK(nlohmann::json::parse(read_safetensors_header(root + "/stop/last.safetensors").metadata.at("position")).at("step") == 2);
}
