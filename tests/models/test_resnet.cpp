// The prunable ResNet's structure and capacity machinery: dense parameter counts equal torchvision's,
// torchvision-style names plus ours (scores, per-capacity statistics), forward shapes for every stem,
// nested masks, prepare_masks ≡ fresh ranking, and per-capacity BatchNorm statistics.
#include <doctest/doctest.h>

#include <map>

#include "engine/ops/conv2d.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/select.h"
#include "models/complexity.h"
#include "models/resnet.h"
#include "tests/support/check.h"

using namespace scpn;
using namespace scpn::models;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::map<std::string, Tensor> state_map(const ResNet& m) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : m.state()) out[name] = t;
  return out;
}

// A small model for the mask and statistics tests: f64, small stem, two blocks in the first stage.
ResNetConfig tiny_config(Granularity g, BlockType block = BlockType::basic) {
  ResNetConfig c;
  c.arch = "custom";
  c.block = block;
  c.layers = {2, 1, 1, 1};
  c.stem = Stem::small;
  c.in_channels = 3;
  c.base_width = 4;
  c.feature_dim = 6;
  c.num_classes = 5;
  c.granularity = g;
  return c;
}

const std::vector<double> kCapacities = {1.0, 0.8, 0.6, 0.4, 0.2};

}  // namespace

TEST_CASE("dense parameter counts equal torchvision's ResNet-18/34/50 with a 1000-class fc head") {
  struct Case {
    const char* arch;
    int64_t torchvision_params;
  };
  for (Case cs : {Case{"resnet18", 11689512}, Case{"resnet34", 21797672}, Case{"resnet50", 25557032}}) {
    for (Granularity g : {Granularity::weight, Granularity::channel}) {
      std::string arch = cs.arch;
      CAPTURE(arch);
      std::string g_name = to_string(g);
      CAPTURE(g_name);
      ResNetConfig config = ResNetConfig::named(cs.arch);
      config.stem = Stem::imagenet;
      config.granularity = g;
      Generator gen(1);
      ResNet model(config, gen);
      // Backbone without scores, projector, feature_bn and classifier; then torchvision's fc 512·e → 1000.
      int64_t backbone = 0, scores = 0;
      for (auto& [name, t] : model.named_parameters()) {
        if (ends_with(name, ".score")) {
          scores += t.numel();
          continue;
        }
        if (starts_with(name, "projector.") || starts_with(name, "feature_bn.") || starts_with(name, "classifier."))
          continue;
        backbone += t.numel();
      }
      const int64_t fc = config.feature_channels() * 1000 + 1000;
      CHECK(backbone + fc == cs.torchvision_params);
      // Our head: projector C_last → 256 (+ bias), feature BN (γ, β), classifier 256 → 1000 (+ bias).
      CHECK(model.parameter_count() == backbone + scores + config.feature_channels() * 256 + 256 + 2 * 256 +
                                           256 * 1000 + 1000);
      // The dense count of models/complexity.h agrees (scores and running statistics are not parameters).
      CHECK(count_complexity(model, 1.0, 64, 64).dense_params == model.parameter_count() - scores);
    }
  }
}

TEST_CASE("parameter names follow torchvision's, with scores and per-capacity statistics added") {
  ResNetConfig config = ResNetConfig::named("resnet18");
  config.base_width = 8;
  config.bn_capacities = {0.8};
  Generator gen(2);
  ResNet weight_model(config, gen);
  auto s = state_map(weight_model);
  const std::map<std::string, Shape> expected = {
      {"conv1.weight", {8, 3, 7, 7}},
      {"conv1.score", {8, 3, 7, 7}},
      {"bn1.weight", {8}},
      {"bn1.running_mean", {8}},
      {"bn1.running_mean@0.80", {8}},
      {"bn1.running_var@0.80", {8}},
      {"layer1.0.conv1.weight", {8, 8, 3, 3}},
      {"layer1.0.conv1.score", {8, 8, 3, 3}},
      {"layer1.1.bn2.running_var", {8}},
      {"layer2.0.downsample.0.weight", {16, 8, 1, 1}},
      {"layer2.0.downsample.0.score", {16, 8, 1, 1}},
      {"layer2.0.downsample.1.running_mean@0.80", {16}},
      {"layer4.1.conv2.weight", {64, 64, 3, 3}},
      {"projector.weight", {256, 64}},
      {"projector.bias", {256}},
      {"feature_bn.running_var@0.80", {256}},
      {"classifier.weight", {1000, 256}},
      {"classifier.bias", {1000}},
  };
  for (auto& [name, shape] : expected) {
    CAPTURE(name);
    REQUIRE(s.count(name) == 1);
    CHECK(s.at(name).shape() == shape);
  }
  CHECK(s.count("layer1.0.downsample.0.weight") == 0);  // 8 → 8 at stride 1: identity shortcut
  CHECK(s.count("fc.weight") == 0);
  int64_t weight_scores = 0;
  for (auto& [name, t] : weight_model.named_parameters()) weight_scores += ends_with(name, ".score");
  CHECK(weight_scores == 20);  // every conv: stem, 16 in blocks, 3 downsamples

  // Channel granularity: one score per filter of the block's inner convs only.
  config.granularity = Granularity::channel;
  ResNet channel_model(config, gen);
  s = state_map(channel_model);
  CHECK(s.at("layer1.0.conv1.score").shape() == Shape{8});
  CHECK(s.at("layer3.1.conv1.score").shape() == Shape{32});
  CHECK(s.count("layer1.0.conv2.score") == 0);
  CHECK(s.count("conv1.score") == 0);
  CHECK(s.count("layer2.0.downsample.0.score") == 0);
  int64_t channel_scores = 0;
  for (auto& [name, t] : channel_model.named_parameters()) channel_scores += ends_with(name, ".score");
  CHECK(channel_scores == 8);

  ResNetConfig bottleneck = ResNetConfig::named("resnet50");
  bottleneck.base_width = 4;
  bottleneck.granularity = Granularity::channel;
  ResNet bottleneck_model(bottleneck, gen);
  s = state_map(bottleneck_model);
  CHECK(s.at("layer1.0.conv1.score").shape() == Shape{4});
  CHECK(s.at("layer1.0.conv2.score").shape() == Shape{4});
  CHECK(s.count("layer1.0.conv3.score") == 0);
  CHECK(s.at("layer1.0.conv3.weight").shape() == Shape{16, 4, 1, 1});
  CHECK(s.at("layer1.0.downsample.0.weight").shape() == Shape{16, 4, 1, 1});  // 4 → 16 channels
  CHECK(s.at("layer4.2.bn3.running_var").shape() == Shape{128});
}

TEST_CASE("forward shapes for every stem, input channel count and odd sizes") {
  struct Case {
    Stem stem;
    int64_t in_channels, size;
    int64_t stem_out, layer4_out;  // spatial size after the stem conv and out of layer4 (by hand)
  };
  // imagenet: 65 → conv 7/2 → 33 → pool 3/2 → 17 → 9 → 5 → 3. imagenet_nopool: 64 → 32 → 32 → 16 → 8 → 4.
  // small: 33 → 33 → 33 → 17 → 9 → 5.
  for (Case cs : {Case{Stem::imagenet, 3, 65, 33, 3}, Case{Stem::imagenet_nopool, 1, 64, 32, 4},
                  Case{Stem::small, 1, 33, 33, 5}}) {
    for (BlockType block : {BlockType::basic, BlockType::bottleneck}) {
      std::string cs_stem_name = to_string(cs.stem);
      CAPTURE(cs_stem_name);
      std::string block_name = to_string(block);
      CAPTURE(block_name);
      ResNetConfig config = tiny_config(Granularity::weight, block);
      config.stem = cs.stem;
      config.in_channels = cs.in_channels;
      Generator gen(3);
      ResNet model(config, gen);
      Tensor x = uniform({2, cs.in_channels, cs.size, cs.size}, -1, 1, gen);
      for (bool training : {true, false}) {
        model.train(training);
        ResNetOutput out = model.forward(x, {.capacity = training ? 0.6 : 1.0});
        CHECK(out.feature.shape() == Shape{2, 6});
        CHECK(out.logits.shape() == Shape{2, 5});
      }
      Complexity cx = count_complexity(model, 1.0, cs.size, cs.size);
      CHECK(cx.layers.front().name == "conv1");
      CHECK(cx.layers.front().out_height == cs.stem_out);
      const LayerComplexity* last_conv = nullptr;
      for (auto& l : cx.layers)
        if (l.kind == "conv") last_conv = &l;
      REQUIRE(last_conv);
      CHECK(starts_with(last_conv->name, "layer4."));
      CHECK(last_conv->out_height == cs.layer4_out);
      CHECK(last_conv->out_width == cs.layer4_out);
      Tensor wrong = zeros({2, 4 - cs.in_channels, 16, 16});
      std::string message = "ResNet::forward: input [2, " + std::to_string(4 - cs.in_channels) +
                            ", 16, 16] must be [N, " + std::to_string(cs.in_channels) + ", H, W]";
      CHECK_THROWS_WITH_AS(model.forward(wrong), message.c_str(), Error);
    }
  }
}

TEST_CASE("masks are nested across capacities 1.0/0.8/0.6/0.4/0.2 and keep n − k + 1 entries") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    for (BlockType block : {BlockType::basic, BlockType::bottleneck}) {
      std::string g_name = to_string(g);
      CAPTURE(g_name);
      std::string block_name = to_string(block);
      CAPTURE(block_name);
      Generator gen(4);
      ResNet model(tiny_config(g, block), gen);
      int64_t scored = 0;
      for (auto& [name, conv] : model.convs()) {
        if (!conv->pruned()) continue;
        ++scored;
        CAPTURE(name);
        std::vector<double> larger;
        for (double c : kCapacities) {
          std::vector<double> m = conv->mask(c).to_vector();
          int64_t n = int64_t(m.size()), kept = 0;
          for (size_t i = 0; i < m.size(); ++i) {
            CHECK((m[i] == 0.0 || m[i] == 1.0));
            kept += m[i] != 0.0;
            if (!larger.empty() && m[i] != 0.0) CHECK(larger[i] != 0.0);  // inside the larger capacity's
          }
          // Random scores have no ties, so exactly n − k + 1 entries are kept.
          CHECK(kept == (c == 1.0 ? n : n - mask_rank(n, 1.0 - c) + 1));
          larger = m;
        }
      }
      CHECK(scored == (g == Granularity::weight ? int64_t(model.convs().size()) : (block == BlockType::basic ? 5 : 10)));
    }
  }
}

TEST_CASE("prepare_masks gives the masks of a fresh ranking and keeps them until clear_masks") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    std::string g_name = to_string(g);
    CAPTURE(g_name);
    Generator gen(5);
    ResNet model(tiny_config(g), gen);
    std::map<std::string, std::vector<Tensor>> fresh;
    for (auto& [name, conv] : model.convs())
      if (conv->pruned()) fresh[name] = capacity_masks(conv->score().detach(), kCapacities);
    model.prepare_masks(kCapacities);
    for (auto& [name, conv] : model.convs()) {
      if (!conv->pruned()) continue;
      CAPTURE(name);
      for (size_t i = 0; i < kCapacities.size(); ++i) CHECK_CLOSE(conv->mask(kCapacities[i]), fresh[name][i], 0, 0);
      // A capacity that was not prepared is ranked on demand.
      CHECK_CLOSE(conv->mask(0.35), capacity_masks(conv->score().detach(), {0.35})[0], 0, 0);
    }
    // New scores: the prepared masks stay until clear_masks(), then the new ranking applies.
    for (auto& [name, conv] : model.convs())
      if (conv->pruned()) conv->score().detach().copy_(uniform(conv->score().shape(), -1, 1, gen));
    for (auto& [name, conv] : model.convs()) {
      if (!conv->pruned()) continue;
      CHECK_CLOSE(conv->mask(0.6), fresh[name][2], 0, 0);
    }
    model.clear_masks();
    bool any_changed = false;
    for (auto& [name, conv] : model.convs()) {
      if (!conv->pruned()) continue;
      Tensor now = capacity_masks(conv->score().detach(), {0.6})[0];
      CHECK_CLOSE(conv->mask(0.6), now, 0, 0);
      any_changed |= !test::compare(now, fresh[name][2], 0, 0).ok;
    }
    CHECK(any_changed);
  }
}

TEST_CASE("per-capacity BatchNorm: training at c moves only c's statistics; eval needs them") {
  ResNetConfig config = tiny_config(Granularity::weight);
  config.bn_capacities = {0.8, 0.6};
  Generator gen(6);
  ResNet model(config, gen, DType::f64);
  auto s = state_map(model);
  Tensor x = uniform({4, 3, 8, 8}, -1, 1, gen, DType::f64);
  auto snapshot = [&] {
    std::map<std::string, Tensor> copy;
    for (auto& [name, t] : model.named_buffers()) copy[name] = t.clone();
    return copy;
  };
  // Which buffers moved since `before`, by suffix kind: "" (the parent's), "@0.80", "@0.60".
  auto moved = [&](const std::map<std::string, Tensor>& before, const std::string& suffix) {
    int64_t moved_count = 0, total = 0;
    for (auto& [name, t] : model.named_buffers()) {
      bool matches = suffix.empty() ? name.find('@') == std::string::npos : ends_with(name, suffix);
      if (!matches) continue;
      ++total;
      moved_count += !test::compare(t, before.at(name), 0, 0).ok;
    }
    return std::pair{moved_count, total};
  };

  model.train();
  auto before = snapshot();
  model.forward(x, {.capacity = 0.8});
  auto [own_moved, own_total] = moved(before, "@0.80");
  CHECK(own_total == 2 * int64_t(model.batch_norms().size()));
  CHECK(own_moved == own_total);
  CHECK(moved(before, "").first == 0);
  CHECK(moved(before, "@0.60").first == 0);
  // The stem BN's new statistics: momentum 0.1 of the batch mean of conv(x, M(0.8) ⊙ W), from zero.
  {
    const PrunableConv2d& stem = *model.convs().front().second;
    Tensor y = conv2d(x, mul(stem.weight().detach(), stem.mask(0.8)), Tensor(), stem.options());
    Tensor expected_mean = mul_scalar(mean(y, {0, 2, 3}), 0.1);
    CHECK_CLOSE(s.at("bn1.running_mean@0.80"), expected_mean, 1e-14, 1e-12);
  }

  before = snapshot();
  model.forward(x, {.capacity = 1.0});
  CHECK(moved(before, "").first == moved(before, "").second);
  CHECK(moved(before, "@0.80").first == 0);
  CHECK(moved(before, "@0.60").first == 0);

  // bn_stats = parent in training moves nothing (the reference's behaviour).
  before = snapshot();
  model.forward(x, {.capacity = 0.8, .bn_stats = BnStatsMode::parent});
  CHECK(moved(before, "").first == 0);
  CHECK(moved(before, "@0.80").first == 0);

  model.eval();
  CHECK_THROWS_WITH_AS(model.forward(x, {.capacity = 0.5}),
                       "BatchNorm: no running statistics for capacity 0.50 (it was not trained); re-estimate them "
                       "for this capacity, or evaluate with bn_stats=parent",
                       Error);
  // bn_stats = parent evaluates with the parent's statistics: at an untrained capacity it runs, and at
  // 0.8 it equals bn_stats = own once 0.8's statistics are overwritten with the parent's.
  CHECK_NOTHROW(model.forward(x, {.capacity = 0.5, .bn_stats = BnStatsMode::parent}));
  Tensor with_parent = model.forward(x, {.capacity = 0.8, .bn_stats = BnStatsMode::parent}).logits;
  Tensor with_own = model.forward(x, {.capacity = 0.8}).logits;
  CHECK_FALSE(test::compare(with_parent, with_own, 1e-9, 0).ok);
  for (auto& [name, t] : model.named_buffers()) {
    auto at = name.find("@0.80");
    if (at != std::string::npos) t.copy_(s.at(name.substr(0, at)));
  }
  CHECK_CLOSE(model.forward(x, {.capacity = 0.8}).logits, with_parent, 0, 0);
}
