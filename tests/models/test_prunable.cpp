// Gradients of the prunable layers in float64: a BasicBlock-like block and a tiny ResNet against central
// differences, and the straight-through estimator for the scores.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "models/resnet.h"
#include "tests/support/check.h"

using namespace scpn;
using namespace scpn::models;

namespace {

// conv1 (3x3/2, scored) → BN → [channel mask] → relu → conv2 (3x3, scored in weight granularity) → BN,
// plus shortcut 1x1/2 (scored in weight granularity) → BN; relu of the sum. The channel mask after BN1
// is what ResNet's blocks do for a channel-pruned conv.
struct TinyBlock {
  Granularity granularity;
  Generator gen;
  PrunableConv2d conv1, conv2, shortcut;
  PrunableBatchNorm bn1, bn2, bn_shortcut;

  explicit TinyBlock(Granularity g, uint64_t seed)
      : granularity(g),
        gen(seed),
        conv1(3, 4, 3, 2, 1, true, g, gen, DType::f64),
        conv2(4, 5, 3, 1, 1, g == Granularity::weight, g, gen, DType::f64),
        shortcut(3, 5, 1, 2, 0, g == Granularity::weight, g, gen, DType::f64),
        bn1(4, {}, DType::f64),
        bn2(5, {}, DType::f64),
        bn_shortcut(5, {}, DType::f64) {
    // Non-trivial affine parameters, so β does not vanish and γ scales.
    bn1.weight().detach().copy_(uniform({4}, 0.5, 1.5, gen, DType::f64));
    bn1.bias().detach().copy_(uniform({4}, -0.5, 0.5, gen, DType::f64));
    bn2.bias().detach().copy_(uniform({5}, -0.5, 0.5, gen, DType::f64));
  }

  Tensor channel_mask(const Tensor& m) const { return m.reshape({1, m.numel(), 1, 1}); }

  Tensor forward(const Tensor& x, double c) const {
    ForwardContext ctx{.capacity = c};
    Tensor m1 = conv1.mask(c);
    Tensor h = bn1.forward(conv1.forward_with_mask(x, m1), ctx);
    if (granularity == Granularity::channel) h = mul(h, channel_mask(m1));
    h = bn2.forward(conv2.forward(relu(h), c), ctx);
    return relu(add(h, bn_shortcut.forward(shortcut.forward(x, c), ctx)));
  }

  // The same block with the effective weights given (plain convolutions), m1 the channel mask.
  Tensor forward_effective(const Tensor& x, const Tensor& w1, const Tensor& w2, const Tensor& ws,
                           const Tensor& m1) const {
    ForwardContext ctx;
    Tensor h = bn1.forward(conv2d(x, w1, Tensor(), conv1.options()), ctx);
    if (granularity == Granularity::channel) h = mul(h, channel_mask(m1));
    h = bn2.forward(conv2d(relu(h), w2, Tensor(), conv2.options()), ctx);
    return relu(add(h, bn_shortcut.forward(conv2d(x, ws, Tensor(), shortcut.options()), ctx)));
  }
};

// W_eff = M ⊙ W, with a per-filter mask broadcast over the filter.
Tensor effective(const PrunableConv2d& conv, double c) {
  Tensor w = conv.weight().detach();
  if (!conv.pruned()) return w.clone();
  Tensor m = conv.mask(c);
  if (m.dim() == 1) m = m.reshape({m.numel(), 1, 1, 1});
  return mul(w, m);
}

}  // namespace

TEST_CASE("prunable block: gradients w.r.t. input, weights and BN affine match central differences") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    for (double c : {1.0, 0.6, 0.35}) {
      std::string g_name = to_string(g);
      CAPTURE(g_name);
      CAPTURE(c);
      TinyBlock block(g, 11);
      Tensor x = test::random_f64({2, 3, 7, 7}, 12);
      x.requires_grad_(true);
      std::string label = std::string("prunable block ") + to_string(g) + " c=" + capacity_key(c);
      CHECK_GRADCHECK(label, [&](const std::vector<Tensor>&) { return block.forward(x, c); },
                      (std::vector<Tensor>{x, block.conv1.weight(), block.conv2.weight(), block.shortcut.weight(),
                                           block.bn1.weight(), block.bn1.bias(), block.bn2.weight()}));
    }
  }
}

// The loss is piecewise constant in S, so the score gradient is checked against its straight-through
// definition: sign(S) ⊙ W ⊙ ∂L/∂W_eff (summed over the filter for channel scores), with ∂L/∂W_eff from
// central differences of the loss as a function of the effective weights.
TEST_CASE("straight-through estimator: dL/dS = sign(S) ⊙ W ⊙ dL/dW_eff, pruned positions included") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    for (double c : {0.6, 0.35}) {
      std::string g_name = to_string(g);
      CAPTURE(g_name);
      CAPTURE(c);
      TinyBlock block(g, 21);
      Tensor x = test::random_f64({3, 3, 6, 6}, 22);
      Tensor out0 = block.forward(x, c);
      Tensor r = test::random_f64(out0.shape(), 23, 0.5, 1.5);
      GradientSlot slot;
      BackwardOptions opt;
      opt.slot = &slot;
      backward(sum(mul(out0, r)), Tensor(), opt);

      // Numeric ∂L/∂W_eff of every conv, perturbing the effective weights in place.
      const PrunableConv2d* convs[3] = {&block.conv1, &block.conv2, &block.shortcut};
      Tensor eff[3];
      for (int i = 0; i < 3; ++i) eff[i] = effective(*convs[i], c);
      Tensor m1 = block.conv1.mask(c);
      auto loss = [&] {
        NoGradGuard no_grad;
        return sum(mul(block.forward_effective(x, eff[0], eff[1], eff[2], m1), r)).item();
      };
      const double h = 1e-6;
      int64_t pruned_with_gradient = 0;
      for (int i = 0; i < 3; ++i) {
        const PrunableConv2d& conv = *convs[i];
        CAPTURE(i);
        std::vector<double> g_eff(size_t(eff[i].numel()));
        double* p = eff[i].data<double>();
        for (int64_t j = 0; j < eff[i].numel(); ++j) {
          double saved = p[j];
          p[j] = saved + h;
          double up = loss();
          p[j] = saved - h;
          double down = loss();
          p[j] = saved;
          g_eff[size_t(j)] = (up - down) / (2 * h);
        }
        std::vector<double> w = conv.weight().to_vector();
        std::vector<double> mask = conv.pruned() ? conv.mask(c).to_vector() : std::vector<double>(w.size(), 1.0);
        const size_t filter_size = w.size() / size_t(conv.out_channels());
        const bool per_filter = mask.size() != w.size();

        // ∂L/∂W = M ⊙ ∂L/∂W_eff.
        std::vector<double> want_w(w.size());
        for (size_t j = 0; j < w.size(); ++j) want_w[j] = mask[per_filter ? j / filter_size : j] * g_eff[j];
        CHECK_CLOSE(slot.get(conv.weight()).to_vector(), want_w, 1e-7, 1e-5);
        if (!conv.pruned()) continue;

        // ∂L/∂S = sign(S) ⊙ W ⊙ ∂L/∂W_eff (summed over the filter for a per-filter score).
        std::vector<double> s = conv.score().to_vector();
        std::vector<double> want_s(s.size(), 0.0);
        for (size_t j = 0; j < w.size(); ++j) {
          size_t k = per_filter ? j / filter_size : j;
          want_s[k] += w[j] * g_eff[j];
        }
        for (size_t k = 0; k < s.size(); ++k) {
          want_s[k] *= (s[k] > 0) - (s[k] < 0);
          if (mask[k] == 0.0 && std::abs(want_s[k]) > 1e-6) ++pruned_with_gradient;
        }
        Tensor got_s = slot.get(conv.score());
        REQUIRE(got_s.defined());
        CHECK_CLOSE(got_s.to_vector(), want_s, 1e-7, 1e-5);
      }
      // Weight granularity: a pruned weight still moves the loss through W_eff, so its score has a gradient.
      // Channel granularity: a pruned filter's output is masked after BN, so its ∂L/∂W_eff (and score
      // gradient) is zero.
      if (g == Granularity::weight)
        CHECK(pruned_with_gradient > 0);
      else
        CHECK(pruned_with_gradient == 0);
    }
  }
}

TEST_CASE("tiny prunable ResNet: weight gradients match central differences in both granularities") {
  for (Granularity g : {Granularity::weight, Granularity::channel}) {
    for (BlockType block : {BlockType::basic, BlockType::bottleneck}) {
      std::string g_name = to_string(g);
      CAPTURE(g_name);
      std::string block_name = to_string(block);
      CAPTURE(block_name);
      ResNetConfig config;
      config.arch = "custom";
      config.block = block;
      config.layers = {1, 1, 1, 1};
      config.stem = Stem::small;
      config.in_channels = 1;
      config.base_width = 2;
      config.feature_dim = 3;
      config.num_classes = 4;
      config.granularity = g;
      config.bn_capacities = {0.6};
      Generator gen(31);
      ResNet model(config, gen, DType::f64);
      // Seeds chosen so that no ReLU input lies within ~1e-4 of its kink (seed 32 put one at 7e-6).
      Tensor x = test::random_f64({4, 1, 8, 8}, 33);
      std::map<std::string, Tensor> params;
      for (auto& [name, t] : model.named_parameters()) params[name] = t;
      std::vector<Tensor> inputs = {params.at("conv1.weight"), params.at("layer1.0.conv1.weight"),
                                    params.at("layer2.0.conv2.weight"), params.at("layer2.0.downsample.0.weight"),
                                    params.at("layer3.0.bn1.weight"), params.at("projector.weight")};
      std::string label = std::string("tiny resnet ") + to_string(g) + " " + to_string(block) + " c=0.60";
      CHECK_GRADCHECK(label, [&](const std::vector<Tensor>&) { return model.forward(x, {.capacity = 0.6}).logits; },
                      inputs);
    }
  }
}
