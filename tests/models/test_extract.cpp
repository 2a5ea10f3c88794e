// Subnetwork extraction and complexity counting: the extracted model (compact for channel granularity,
// masked weights for weight granularity) computes what the masked model computes; parameter/MAC counts.
#include <doctest/doctest.h>

#include <map>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "models/complexity.h"
#include "models/extract.h"
#include "tests/support/check.h"

using namespace scpn;
using namespace scpn::models;

namespace {

std::map<std::string, Tensor> state_map(const ResNet& m) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : m.state()) out[name] = t;
  return out;
}

ResNetConfig small_config(Granularity g, BlockType block) {
  ResNetConfig c;
  c.arch = "custom";
  c.block = block;
  c.layers = {2, 1, 1, 1};
  c.stem = Stem::small;
  c.in_channels = 3;
  c.base_width = 8;
  c.feature_dim = 6;
  c.num_classes = 5;
  c.granularity = g;
  c.bn_capacities = {0.8, 0.6, 0.4, 0.2};
  return c;
}

// Gives every capacity's statistics (and the parent's) distinct values: a few training-mode passes at
// each capacity, so using the wrong statistics would show. 0.35 is added and estimated the same way, as
// a never-trained capacity is before it is cut.
void settle_statistics(ResNet& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.add_bn_capacity(0.35);
  model.train();
  for (int step = 0; step < 3; ++step)
    for (double c : {1.0, 0.8, 0.6, 0.4, 0.35, 0.2}) model.forward(x, {.capacity = c});
}

void check_same_outputs(const ResNet& masked, const ResNet& extracted, const Tensor& x, double c, BnStatsMode mode,
                        double atol) {
  NoGradGuard no_grad;
  ResNetOutput want = masked.forward(x, {.capacity = c, .bn_stats = mode, .compact_channels = false});
  ResNetOutput got = extracted.forward(x);
  CHECK_CLOSE(got.feature, want.feature, atol, atol);
  CHECK_CLOSE(got.logits, want.logits, atol, atol);
}

}  // namespace

TEST_CASE("channel granularity: the compact extracted model equals the masked model") {
  for (BlockType block : {BlockType::basic, BlockType::bottleneck}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      std::string block_name = to_string(block);
      CAPTURE(block_name);
      std::string dtype_str = dtype_name(dtype);
      CAPTURE(dtype_str);
      const double atol = dtype == DType::f64 ? 1e-11 : 2e-5;
      Generator gen(41);
      ResNet model(small_config(Granularity::channel, block), gen, dtype);
      Tensor x = uniform({4, 3, 12, 12}, -1, 1, gen, dtype);
      settle_statistics(model, x);
      Tensor x_test = uniform({3, 3, 12, 12}, -1, 1, gen, dtype);

      for (double c : {1.0, 0.8, 0.6, 0.35, 0.2}) {
        CAPTURE(c);
        for (bool training : {false, true}) {
          CAPTURE(training);
          model.train(training);
          ExtractedModel ex = extract_subnetwork(model, c);
          const ResNet& compact = *ex.model;
          CHECK(compact.is_training() == training);
          CHECK(compact.config().bn_capacities.empty());
          CHECK(compact.config().granularity == Granularity::channel);
          for (auto& [name, t] : compact.named_parameters()) CHECK(name.find(".score") == std::string::npos);
          for (auto& [name, t] : compact.named_buffers()) CHECK(name.find('@') == std::string::npos);

          // Physically smaller: each scored conv keeps its kept filters; the next conv the matching inputs.
          auto kept = kept_filters(model, c);
          auto cs = state_map(compact);
          REQUIRE(ex.masks.size() == kept.size());
          std::map<std::string, PrunableConv2d*> source_convs(model.convs().begin(), model.convs().end());
          int64_t smaller = 0;
          for (auto& [name, rows] : kept) {
            CAPTURE(name);
            int64_t width = int64_t(rows.size());
            CHECK(compact.config().inner_widths.at(name) == width);
            CHECK(cs.at(name + ".weight").size(0) == width);
            std::string bn = name.substr(0, name.size() - 5) + "bn" + name.substr(name.size() - 1);
            CHECK(cs.at(bn + ".running_mean").size(0) == width);
            std::string next = name.substr(0, name.size() - 1) + std::to_string(name.back() - '0' + 1);
            CHECK(cs.at(next + ".weight").size(1) == width);
            smaller += width < source_convs.at(name)->out_channels();
          }
          if (c < 1.0) CHECK(smaller > 0);
          for (auto& [name, m] : ex.masks) {
            CHECK(m.dtype() == DType::u8);
            std::string conv = name.substr(0, name.size() - 5);
            int64_t ones = 0;
            for (double v : m.to_vector()) ones += v != 0.0;
            CHECK(ones == int64_t(kept.at(conv).size()));
          }

          check_same_outputs(model, compact, x_test, c, BnStatsMode::own, atol);
          // The compact model's own dense count is the masked model's channel count at c.
          Complexity masked_count = count_complexity(model, c, 12, 12);
          Complexity compact_count = count_complexity(compact, 1.0, 12, 12);
          CHECK(compact_count.macs == masked_count.macs);
          CHECK(compact_count.params == masked_count.params);
          CHECK(compact_count.params == compact.parameter_count());
          if (c < 1.0) CHECK(masked_count.macs < masked_count.dense_macs);
        }
      }
      // The reference's statistics: any capacity, cut with the parent's statistics.
      model.eval();
      for (double c : {0.5, 0.8}) {
        ExtractedModel ex = extract_subnetwork(model, c, BnStatsMode::parent);
        check_same_outputs(model, *ex.model, x_test, c, BnStatsMode::parent, atol);
      }
    }
  }
}

TEST_CASE("weight granularity: the extracted model holds M ⊙ W and the masks, and equals the masked model") {
  for (BlockType block : {BlockType::basic, BlockType::bottleneck}) {
    std::string block_name = to_string(block);
    CAPTURE(block_name);
    Generator gen(51);
    ResNet model(small_config(Granularity::weight, block), gen, DType::f64);
    Tensor x = uniform({4, 3, 10, 10}, -1, 1, gen, DType::f64);
    settle_statistics(model, x);
    Tensor x_test = uniform({3, 3, 10, 10}, -1, 1, gen, DType::f64);
    for (double c : {1.0, 0.6, 0.35}) {
      for (bool training : {false, true}) {
        CAPTURE(c);
        CAPTURE(training);
        model.train(training);
        ExtractedModel ex = extract_subnetwork(model, c);
        CHECK(ex.model->config().bn_capacities.empty());
        auto es = state_map(*ex.model);
        auto ss = state_map(model);
        REQUIRE(ex.masks.size() == model.convs().size());
        for (size_t i = 0; i < ex.masks.size(); ++i) {
          const auto& [conv_name, conv] = model.convs()[i];
          CAPTURE(conv_name);
          CHECK(ex.masks[i].first == conv_name + ".mask");
          CHECK(ex.masks[i].second.dtype() == DType::u8);
          Tensor m = conv->mask(c);
          CHECK_CLOSE(ex.masks[i].second.to(DType::f64), m, 0, 0);
          CHECK_CLOSE(es.at(conv_name + ".weight"), mul(conv->weight().detach(), m), 0, 0);
        }
        // Statistics: capacity c's own become the extracted model's parent statistics.
        const std::string suffix = c == 1.0 ? "" : "@" + capacity_key(c);
        CHECK_CLOSE(es.at("layer1.0.bn1.running_mean"), ss.at("layer1.0.bn1.running_mean" + suffix), 0, 0);
        CHECK_CLOSE(es.at("feature_bn.running_var"), ss.at("feature_bn.running_var" + suffix), 0, 0);
        check_same_outputs(model, *ex.model, x_test, c, BnStatsMode::own, 1e-12);
        // Weight-granularity counts: kept weights of the masks.
        int64_t kept = 0;
        for (auto& [name, m] : ex.masks)
          for (double v : m.to_vector()) kept += v != 0.0;
        CHECK(count_complexity(model, c, 10, 10).conv_params == kept);
      }
    }
  }
}

TEST_CASE("complexity: a tiny ResNet's counts by hand, dense and at capacity 0.5 in both granularities") {
  // Basic blocks, layers {1,1,1,1}, widths 2/4/8/16, small stem, 1 input channel, D = 3, 5 classes, 8x8
  // input: spatial sizes 8 (stem, layer1), 4, 2, 1.
  ResNetConfig config;
  config.arch = "custom";
  config.layers = {1, 1, 1, 1};
  config.stem = Stem::small;
  config.in_channels = 1;
  config.base_width = 2;
  config.feature_dim = 3;
  config.num_classes = 5;
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    std::string g_name = to_string(g);
    CAPTURE(g_name);
    config.granularity = g;
    Generator gen(61);
    ResNet model(config, gen);
    // Dense: conv weights 18 + 36 + 36 + (72 + 144 + 8) + (288 + 576 + 32) + (1152 + 2304 + 128) = 4794;
    // conv MACs 18·64 + 2·36·64 + (72 + 144 + 8)·16 + (288 + 576 + 32)·4 + (1152 + 2304 + 128)·1
    //          = 1152 + 4608 + 3584 + 3584 + 3584 = 16512;
    // BN γβ 2·(2 + 2 + 2 + 4·3 + 8·3 + 16·3) = 180; projector 16·3 + 3 = 51 (48 MACs); feature_bn 6;
    // classifier 3·5 + 5 = 20 (15 MACs).
    Complexity dense = count_complexity(model, 1.0, 8, 8);
    CHECK(dense.conv_params == 4794);
    CHECK(dense.conv_macs == 16512);
    CHECK(dense.params == 4794 + 180 + 51 + 6 + 20);
    CHECK(dense.macs == 16512 + 48 + 15);
    CHECK(dense.dense_params == dense.params);
    CHECK(dense.dense_macs == dense.macs);
    CHECK(dense.layers.size() == 2 * model.convs().size() + 3);

    Complexity half = count_complexity(model, 0.5, 8, 8);
    CHECK(half.dense_macs == dense.macs);
    if (g == Granularity::weight) {
      // Kept = n − k + 1, k = 1 + round_half_even((n − 1)/2): n = 18 → 10 (8.5 rounds to 8), 36 → 18,
      // 72 → 36, 144 → 72, 8 → 4, 288 → 144, 576 → 288, 32 → 16, 1152 → 576, 2304 → 1152, 128 → 64.
      // Conv weights 10 + 36 + 112 + 448 + 1792 = 2398; MACs 10·64 + 36·64 + 112·16 + 448·4 + 1792 = 8320.
      CHECK(half.conv_params == 2398);
      CHECK(half.conv_macs == 8320);
      CHECK(half.params == 2398 + 180 + 51 + 6 + 20);
      CHECK(half.macs == 8320 + 63);
      CHECK(half.layers[0].params == 10);
      CHECK(half.layers[0].macs == 640);
    } else {
      // Inner convs keep 2 of 2, 2 of 4, 4 of 8, 8 of 16 filters (k = 1 + round_half_even((n − 1)/2)).
      // Conv weights 18 + (36 + 36) + (2·2·9 + 4·2·9 + 8) + (4·4·9 + 8·4·9 + 32) + (8·8·9 + 16·8·9 + 128)
      //            = 18 + 72 + 116 + 464 + 1856 = 2526;
      // MACs 1152 + 4608 + (36 + 72 + 8)·16 + (144 + 288 + 32)·4 + 1856 = 11328;
      // BN γβ 2·(2 + 2 + 2 + (2 + 4 + 4) + (4 + 8 + 8) + (8 + 16 + 16)) = 152.
      CHECK(half.conv_params == 2526);
      CHECK(half.conv_macs == 11328);
      CHECK(half.params == 2526 + 152 + 51 + 6 + 20);
      CHECK(half.macs == 11328 + 63);
      ExtractedModel ex = extract_subnetwork(model, 0.5, BnStatsMode::parent);
      CHECK(count_complexity(*ex.model, 1.0, 8, 8).macs == half.macs);
      CHECK(ex.model->parameter_count() == half.params);
    }
  }
}

TEST_CASE("complexity: dense MACs equal torchvision's ResNet-18/34/50 at 224 px (1.81/3.66/4.09 G)") {
  struct Case {
    const char* arch;
    int64_t macs;  // conv + fc(512·e → 1000) multiply-accumulates
  };
  for (Case cs : {Case{"resnet18", 1814073344}, Case{"resnet34", 3663761408}, Case{"resnet50", 4089184256}}) {
    std::string arch = cs.arch;
    CAPTURE(arch);
    ResNetConfig config = ResNetConfig::named(cs.arch);
    config.stem = Stem::imagenet;
    config.granularity = Granularity::channel;
    Generator gen(71);
    ResNet model(config, gen);
    Complexity cx = count_complexity(model, 1.0, 224, 224);
    CHECK(cx.conv_macs + config.feature_channels() * 1000 == cs.macs);
    CHECK(cx.layers.front().out_height == 112);
  }
}

TEST_CASE("extraction and counting refuse bad input with their message") {
  ResNetConfig config = small_config(Granularity::channel, BlockType::basic);
  config.bn_capacities = {0.8};
  Generator gen(81);
  ResNet model(config, gen);
  CHECK_THROWS_WITH_AS(extract_subnetwork(model, 0.0), "extract_subnetwork: capacity 0 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(extract_subnetwork(model, 1.5), "extract_subnetwork: capacity 1.5 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(count_complexity(model, 0.0, 8, 8), "count_complexity: capacity 0 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(count_complexity(model, 1.5, 8, 8), "count_complexity: capacity 1.5 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(count_complexity(model, 1.0, 0, 8), "count_complexity: input size 0x8 must be at least 1x1",
                       Error);
  CHECK_THROWS_WITH_AS(extract_subnetwork(model, 0.35),
                       "BatchNorm: no running statistics for capacity 0.35 (it was not trained); re-estimate them "
                       "for this capacity, or evaluate with bn_stats=parent",
                       Error);
  ExtractedModel ex = extract_subnetwork(model, 0.8);
  CHECK_THROWS_WITH_AS(extract_subnetwork(*ex.model, 1.0),
                       "extract_subnetwork: the model is already a compact subnetwork (config.inner_widths is set); "
                       "extract from the full model it was cut from",
                       Error);
}
