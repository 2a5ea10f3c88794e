#include "models/resnet.h"

#include "engine/ops/elementwise.h"
#include "engine/ops/pool.h"

namespace scpn::models {

namespace {

// What a block needs to build its layers and to register them in the model's flat lists.
struct BlockBuilder {
  const ResNetConfig& config;
  Generator& gen;
  DType dtype;
  std::vector<std::pair<std::string, PrunableConv2d*>>& convs;
  std::vector<std::pair<std::string, PrunableBatchNorm*>>& bns;

  bool compact() const { return !config.inner_widths.empty(); }
  // Width of an inner conv: from inner_widths in a compact model, else the dense width.
  int64_t inner_width(const std::string& name, int64_t dense) const {
    if (!compact()) return dense;
    auto it = config.inner_widths.find(name);
    SCPN_CHECK(it != config.inner_widths.end(), "model.inner_widths: no width for '", name, "'");
    return it->second;
  }
  bool weight_scores() const { return config.granularity == Granularity::weight; }
  bool channel_scores() const { return config.granularity == Granularity::channel && !compact(); }
};

// Registers a conv/BN into the module tree and the flat lists.
template <class Parent>
std::shared_ptr<PrunableConv2d> add_conv(Parent& parent_register, BlockBuilder& b, const std::string& prefix,
                                         const std::string& name, int64_t in, int64_t out, int64_t k, int64_t stride,
                                         int64_t pad, bool scored) {
  auto conv = std::make_shared<PrunableConv2d>(in, out, k, stride, pad, scored, b.config.granularity, b.gen, b.dtype);
  parent_register(name, conv);
  b.convs.emplace_back(prefix + name, conv.get());
  return conv;
}

template <class Parent>
std::shared_ptr<PrunableBatchNorm> add_bn(Parent& parent_register, BlockBuilder& b, const std::string& prefix,
                                          const std::string& name, int64_t channels) {
  auto bn = std::make_shared<PrunableBatchNorm>(channels, b.config.bn_capacities, b.dtype);
  parent_register(name, bn);
  b.bns.emplace_back(prefix + name, bn.get());
  return bn;
}

// torchvision's "downsample" Sequential: "0" the 1x1 conv, "1" its BatchNorm.
class Downsample : public nn::Module {
 public:
  Downsample(BlockBuilder& b, const std::string& prefix, int64_t in, int64_t out, int64_t stride) {
    auto reg = [this](const std::string& n, auto m) { register_module(n, m); };
    conv = add_conv(reg, b, prefix, "0", in, out, 1, stride, 0, b.weight_scores());
    bn = add_bn(reg, b, prefix, "1", out);
  }
  Tensor forward(const Tensor& x, const ForwardContext& ctx) const { return bn->forward(conv->forward(x, ctx.capacity), ctx); }
  std::shared_ptr<PrunableConv2d> conv;
  std::shared_ptr<PrunableBatchNorm> bn;
};

// The filters a channel-scored conv keeps when this pass computes compact; undefined when the conv's
// output is whole or the pass is masked.
Tensor compact_kept(const PrunableConv2d& conv, const ForwardContext& ctx) {
  if (!ctx.compact_channels || !conv.pruned() || conv.granularity() != Granularity::channel || ctx.capacity == 1.0)
    return Tensor();
  return conv.kept_filters(ctx.capacity);
}

// conv → BN (→ ReLU, fused into the BN: `relu`). Masked: for a channel-pruned conv the same mask zeroes the
// BN's output channels, so a pruned filter is exactly absent downstream (BN's β would otherwise revive it;
// the ReLU commutes with a 0/1 mask). Compact: x holds only the input channels `kept_inputs` lists
// (undefined: all) and the output only the kept filters, listed in *kept_out.
Tensor conv_bn(const PrunableConv2d& conv, const PrunableBatchNorm& bn, const Tensor& x, const ForwardContext& ctx,
               bool relu, const Tensor& kept_inputs = Tensor(), Tensor* kept_out = nullptr) {
  Tensor kept = compact_kept(conv, ctx);
  if (kept_out) *kept_out = kept;
  if (kept.defined() || kept_inputs.defined())
    return bn.forward_compact(conv.forward_compact(x, kept_inputs, kept), kept, ctx, relu);
  if (!conv.pruned() || conv.granularity() == Granularity::weight || ctx.capacity == 1.0)
    return bn.forward(conv.forward(x, ctx.capacity), ctx, relu);
  Tensor m = conv.mask(ctx.capacity);
  Tensor y = bn.forward(conv.forward_with_mask(x, m), ctx, relu);
  return mul(y, m.reshape({1, conv.out_channels(), 1, 1}));
}

class BasicBlock : public ResidualBlock {
 public:
  BasicBlock(BlockBuilder& b, const std::string& prefix, int64_t in, int64_t planes, int64_t stride) {
    auto reg = [this](const std::string& n, auto m) { register_module(n, m); };
    int64_t w1 = b.inner_width(prefix + "conv1", planes);
    conv1_ = add_conv(reg, b, prefix, "conv1", in, w1, 3, stride, 1, b.weight_scores() || b.channel_scores());
    bn1_ = add_bn(reg, b, prefix, "bn1", w1);
    conv2_ = add_conv(reg, b, prefix, "conv2", w1, planes, 3, 1, 1, b.weight_scores());
    bn2_ = add_bn(reg, b, prefix, "bn2", planes);
    if (stride != 1 || in != planes)
      downsample_ = register_module("downsample", std::make_shared<Downsample>(b, prefix + "downsample.", in, planes, stride));
  }
  Tensor forward(const Tensor& x, const ForwardContext& ctx) const override {
    Tensor kept;  // conv1's kept filters in a compact pass: conv2 reads only those channels
    Tensor h = conv_bn(*conv1_, *bn1_, x, ctx, true, Tensor(), &kept);
    h = conv_bn(*conv2_, *bn2_, h, ctx, false, kept);
    Tensor shortcut = downsample_ ? downsample_->forward(x, ctx) : x;
    return relu(add(h, shortcut));
  }

 private:
  std::shared_ptr<PrunableConv2d> conv1_, conv2_;
  std::shared_ptr<PrunableBatchNorm> bn1_, bn2_;
  std::shared_ptr<Downsample> downsample_;
};

// ResNet v1.5 bottleneck: the stride sits on the 3x3 conv, as torchvision's.
class Bottleneck : public ResidualBlock {
 public:
  Bottleneck(BlockBuilder& b, const std::string& prefix, int64_t in, int64_t planes, int64_t stride) {
    auto reg = [this](const std::string& n, auto m) { register_module(n, m); };
    bool inner_scored = b.weight_scores() || b.channel_scores();
    int64_t w1 = b.inner_width(prefix + "conv1", planes);
    int64_t w2 = b.inner_width(prefix + "conv2", planes);
    conv1_ = add_conv(reg, b, prefix, "conv1", in, w1, 1, 1, 0, inner_scored);
    bn1_ = add_bn(reg, b, prefix, "bn1", w1);
    conv2_ = add_conv(reg, b, prefix, "conv2", w1, w2, 3, stride, 1, inner_scored);
    bn2_ = add_bn(reg, b, prefix, "bn2", w2);
    conv3_ = add_conv(reg, b, prefix, "conv3", w2, planes * 4, 1, 1, 0, b.weight_scores());
    bn3_ = add_bn(reg, b, prefix, "bn3", planes * 4);
    if (stride != 1 || in != planes * 4)
      downsample_ =
          register_module("downsample", std::make_shared<Downsample>(b, prefix + "downsample.", in, planes * 4, stride));
  }
  Tensor forward(const Tensor& x, const ForwardContext& ctx) const override {
    Tensor kept1, kept2;  // kept filters of conv1 and conv2 in a compact pass
    Tensor h = conv_bn(*conv1_, *bn1_, x, ctx, true, Tensor(), &kept1);
    h = conv_bn(*conv2_, *bn2_, h, ctx, true, kept1, &kept2);
    h = conv_bn(*conv3_, *bn3_, h, ctx, false, kept2);
    Tensor shortcut = downsample_ ? downsample_->forward(x, ctx) : x;
    return relu(add(h, shortcut));
  }

 private:
  std::shared_ptr<PrunableConv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<PrunableBatchNorm> bn1_, bn2_, bn3_;
  std::shared_ptr<Downsample> downsample_;
};

// torchvision's layerN Sequential of blocks named "0", "1", ...
class Stage : public nn::Module {
 public:
  void add(const std::string& name, std::shared_ptr<ResidualBlock> block) { register_module(name, block); }
};

}  // namespace

ResNet::ResNet(const ResNetConfig& config, Generator& gen, DType dtype) : config_(config) {
  config_.validate();
  BlockBuilder b{config_, gen, dtype, convs_, bns_};
  auto reg = [this](const std::string& n, auto m) { register_module(n, m); };
  bool big_stem = config_.stem != Stem::small;
  stem_conv_ = add_conv(reg, b, "", "conv1", config_.in_channels, config_.base_width, big_stem ? 7 : 3, big_stem ? 2 : 1,
                        big_stem ? 3 : 1, b.weight_scores());
  stem_bn_ = add_bn(reg, b, "", "bn1", config_.base_width);
  int64_t in = config_.base_width;
  for (int s = 0; s < 4; ++s) {
    auto stage = std::make_shared<Stage>();
    std::string stage_name = "layer" + std::to_string(s + 1);
    register_module(stage_name, stage);
    int64_t planes = config_.base_width << s;
    for (int64_t i = 0; i < config_.layers[size_t(s)]; ++i) {
      int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      std::string prefix = stage_name + "." + std::to_string(i) + ".";
      std::shared_ptr<ResidualBlock> block;
      if (config_.block == BlockType::basic)
        block = std::make_shared<BasicBlock>(b, prefix, in, planes, stride);
      else
        block = std::make_shared<Bottleneck>(b, prefix, in, planes, stride);
      stage->add(std::to_string(i), block);
      blocks_.push_back(block);
      in = planes * config_.expansion();
    }
  }
  projector_ = register_module("projector", std::make_shared<nn::Linear>(in, config_.feature_dim, true, gen, dtype));
  feature_bn_ = add_bn(reg, b, "", "feature_bn", config_.feature_dim);
  classifier_ = register_module("classifier",
                                std::make_shared<nn::Linear>(config_.feature_dim, config_.num_classes, true, gen, dtype));
}

ResNetOutput ResNet::forward(const Tensor& x, const ForwardContext& ctx) const {
  check_capacity("ResNet::forward", ctx.capacity);
  SCPN_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels, "ResNet::forward: input ", shape_str(x.shape()),
             " must be [N, ", config_.in_channels, ", H, W]");
  Tensor h = conv_bn(*stem_conv_, *stem_bn_, x, ctx, true);
  if (config_.stem == Stem::imagenet) h = max_pool2d(h, 3, 2, 1);
  for (auto& block : blocks_) h = block->forward(h, ctx);
  Tensor pooled = global_avg_pool(h);
  ResNetOutput out;
  out.feature = feature_bn_->forward(projector_->forward(pooled), ctx);
  out.logits = classifier_->forward(out.feature);
  return out;
}

void ResNet::prepare_masks(const std::vector<double>& capacities) {
  for (auto& [name, conv] : convs_) conv->prepare_masks(capacities);
}
void ResNet::clear_masks() {
  for (auto& [name, conv] : convs_) conv->clear_masks();
}
void ResNet::add_bn_capacity(double capacity) {
  for (auto& [name, bn] : bns_) bn->add_capacity(capacity);
  // The config lists every capacity with statistics, so a checkpoint of this model rebuilds it exactly.
  if (capacity < 1.0) {
    for (double c : config_.bn_capacities)
      if (capacity_key(c) == capacity_key(capacity)) return;
    config_.bn_capacities.push_back(capacity);
  }
}

std::vector<Tensor> ResNet::no_decay_parameters() const {
  return {projector_->named_parameters()[1].second, classifier_->named_parameters()[1].second};
}

std::vector<Tensor> ResNet::decay_parameters() const {
  std::vector<Tensor> out;
  std::vector<Tensor> skip = no_decay_parameters();
  for (auto& [name, t] : named_parameters()) {
    bool excluded = false;
    for (auto& s : skip) excluded |= s.same(t);
    if (!excluded) out.push_back(t);
  }
  return out;
}

}  // namespace scpn::models
