// Our prunable ResNet against an independent PyTorch implementation (tools/golden/prunable_resnet.py): a
// training-mode step's logits, feature, loss, gradients and running statistics must match in float64.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/loss.h"
#include "models/resnet.h"
#include "tests/support/check.h"
#include "tests/support/golden.h"

using namespace scpn;
using namespace scpn::models;

namespace {

ResNetConfig config_from_fixture(const nlohmann::json& c, Granularity g, double capacity) {
  return test::golden_model_config(c, g, capacity < 1.0 ? std::vector<double>{capacity} : std::vector<double>{});
}

void run_fixture(const std::string& path) {
  nlohmann::json fx = test::load_golden(path);
  Tensor input = test::golden_tensor(fx.at("input"));
  std::vector<double> labels_v = fx.at("labels").get<std::vector<double>>();
  Tensor labels = from_vector(labels_v, {int64_t(labels_v.size())}, DType::i64);

  for (const auto& cs : fx.at("cases")) {
    Granularity g = parse_granularity(cs.at("granularity"));
    double capacity = cs.at("capacity");
    std::string label = path + " " + std::string(to_string(g)) + " " + capacity_key(capacity);
    CAPTURE(label);
    Generator gen(0);
    ResNet model(config_from_fixture(fx.at("config"), g, capacity), gen, DType::f64);

    // Load every tensor by name; for channel granularity the scores come from "channel_scores". The
    // capacity's own BN statistics start from the parent's values, as the fixture's single BN did.
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : model.state()) state[name] = t;
    size_t loaded = 0;
    for (auto& [name, j] : fx.at("params").items()) {
      bool is_score = name.size() > 6 && name.substr(name.size() - 6) == ".score";
      if (is_score && g == Granularity::channel) continue;
      REQUIRE_MESSAGE(state.count(name), "model has no tensor '" << name << "'");
      state[name].copy_(test::golden_tensor(j));
      ++loaded;
      if (capacity < 1.0 && name.find("running_") != std::string::npos)
        state[name + "@" + capacity_key(capacity)].copy_(test::golden_tensor(j));
    }
    if (g == Granularity::channel)
      for (auto& [name, j] : fx.at("channel_scores").items()) {
        REQUIRE_MESSAGE(state.count(name), "model has no tensor '" << name << "'");
        state[name].copy_(test::golden_tensor(j));
        ++loaded;
      }
    CHECK(loaded == model.named_parameters().size() + model.named_buffers().size() -
                        (capacity < 1.0 ? model.batch_norms().size() * 2 : 0));

    // Kept counts of every scored layer.
    for (auto& [name, conv] : model.convs()) {
      if (!conv->pruned()) continue;
      double kept = 0;
      for (double v : conv->mask(capacity).to_vector()) kept += v;
      CHECK_MESSAGE(kept == cs.at("kept").at(name + ".score").get<double>(), name);
    }

    model.train();
    ForwardContext ctx;
    ctx.capacity = capacity;
    ResNetOutput out = model.forward(input, ctx);
    Tensor loss = cross_entropy(out.logits, labels);
    backward(loss);

    CHECK_CLOSE(out.logits, test::golden_tensor(cs.at("logits")), 1e-10, 1e-8);
    CHECK_CLOSE(out.feature, test::golden_tensor(cs.at("feature")), 1e-10, 1e-8);
    CHECK(loss.item() == doctest::Approx(cs.at("loss").get<double>()).epsilon(1e-10));

    size_t grads_checked = 0;
    for (auto& [name, p] : model.named_parameters()) {
      REQUIRE_MESSAGE(cs.at("grads").contains(name), "fixture has no gradient for '" << name << "'");
      Tensor want = test::golden_tensor(cs.at("grads").at(name));
      Tensor got = p.grad().defined() ? p.grad() : zeros(p.shape(), DType::f64);
      CAPTURE(name);
      CHECK_CLOSE(got, want, 1e-11, 1e-7);
      ++grads_checked;
    }
    CHECK(grads_checked == cs.at("grads").size());

    // Running statistics: the parent's move at capacity 1; at c < 1 the capacity's own move and the
    // parent's stay put (bn_stats = own, the default).
    for (auto& [name, j] : cs.at("running_after").items()) {
      CAPTURE(name);
      std::string moved = capacity == 1.0 ? name : name + "@" + capacity_key(capacity);
      CHECK_CLOSE(state.at(moved), test::golden_tensor(j), 1e-11, 1e-9);
      if (capacity < 1.0) CHECK_CLOSE(state.at(name), test::golden_tensor(fx.at("params").at(name)), 0, 0);
    }
  }
}

}  // namespace

TEST_CASE("basic-block prunable ResNet matches the PyTorch fixture (weight 1.0 / 0.6, channel 0.5)") {
  run_fixture("tests/golden/prunable_resnet_basic.json");
}

TEST_CASE("bottleneck prunable ResNet with the max-pool stem matches the PyTorch fixture (weight 0.7, channel 0.5)") {
  run_fixture("tests/golden/prunable_resnet_bottleneck.json");
}
