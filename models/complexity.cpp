// Parameter and MAC counting: walks the model's convs in forward order to find every layer's output
// size (stem → optional max-pool → blocks, whose downsample reads the block's input), then counts each
// layer from its masks (models/complexity.h states the formulas).
#include "models/complexity.h"

#include <map>

#include "models/extract.h"

namespace scpn::models {

namespace {

struct Size {
  int64_t h, w;
};

// Every conv's padding is at least half its kernel, so any input of at least 1x1 gives an output of at
// least 1x1.
Size conv_output(const PrunableConv2d& conv, Size in) {
  const Conv2dOptions& o = conv.options();
  int64_t k = conv.kernel();
  return {(in.h + 2 * o.padding.h - k) / o.stride.h + 1, (in.w + 2 * o.padding.w - k) / o.stride.w + 1};
}

// "layer1.0.conv2" → "layer1.0."; "" for the stem.
std::string block_prefix(const std::string& name) {
  if (name.rfind("layer", 0) != 0) return "";
  auto first = name.find('.');
  auto second = name.find('.', first + 1);
  return name.substr(0, second + 1);
}

int64_t count_ones(const Tensor& mask) {
  int64_t n = 0;
  for (double v : mask.to_vector()) n += v != 0.0;
  return n;
}

}  // namespace

Complexity count_complexity(const ResNet& model, double capacity, int64_t height, int64_t width) {
  check_capacity("count_complexity", capacity);
  SCPN_CHECK(height >= 1 && width >= 1, "count_complexity: input size ", height, "x", width,
             " must be at least 1x1");
  const ResNetConfig& config = model.config();
  Complexity out;
  out.capacity = capacity;
  out.granularity = config.granularity;
  out.height = height;
  out.width = width;

  const auto kept = kept_filters(model, capacity);
  std::map<std::string, std::pair<std::string, const PrunableBatchNorm*>> bn_of_conv;  // conv → its BN
  for (auto& [name, bn] : model.batch_norms()) bn_of_conv[normalised_conv(name)] = {name, bn};
  auto kept_count = [&](const std::string& conv_name, int64_t dense) {
    auto it = kept.find(conv_name);
    return it == kept.end() ? dense : int64_t(it->second.size());
  };

  Size stream{height, width};  // the residual stream's size between blocks
  Size block_in = stream, inner = stream;
  std::string current_block;
  for (auto& [name, conv] : model.convs()) {
    Size out_size;
    std::string block = block_prefix(name);
    if (block.empty()) {  // the stem
      out_size = conv_output(*conv, stream);
      stream = out_size;
      if (config.stem == Stem::imagenet) {  // max-pool 3x3 / 2, padding 1
        stream = {(stream.h + 2 - 3) / 2 + 1, (stream.w + 2 - 3) / 2 + 1};
      }
    } else {
      if (block != current_block) {
        current_block = block;
        block_in = stream;
        inner = stream;
      }
      if (name.find("downsample") != std::string::npos) {
        out_size = conv_output(*conv, block_in);
      } else {
        out_size = conv_output(*conv, inner);
        inner = out_size;
      }
      stream = inner;
    }

    LayerComplexity c;
    c.name = name;
    c.kind = "conv";
    c.out_height = out_size.h;
    c.out_width = out_size.w;
    const int64_t rk = conv->kernel() * conv->kernel(), spatial = out_size.h * out_size.w;
    c.out_channels = kept_count(name, conv->out_channels());
    c.dense_params = conv->weight().numel();
    if (conv->pruned() && conv->granularity() == Granularity::weight)
      c.params = count_ones(conv->mask(capacity));
    else
      c.params = c.out_channels * kept_count(feeding_conv(name), conv->in_channels()) * rk;
    c.macs = c.params * spatial;
    c.dense_macs = c.dense_params * spatial;
    out.layers.push_back(c);

    auto bn = bn_of_conv.find(name);
    SCPN_CHECK(bn != bn_of_conv.end(), "count_complexity: no BatchNorm follows '", name, "'");
    LayerComplexity b;
    b.name = bn->second.first;
    b.kind = "batch_norm";
    b.out_channels = c.out_channels;
    b.out_height = out_size.h;
    b.out_width = out_size.w;
    b.params = 2 * c.out_channels;
    b.dense_params = 2 * bn->second.second->channels();
    out.layers.push_back(b);
  }

  auto add_linear = [&](const char* name, const nn::Linear& linear) {
    LayerComplexity l;
    l.name = name;
    l.kind = "linear";
    auto params = linear.named_parameters();
    const Tensor& weight = params.at(0).second;
    l.out_channels = weight.size(0);
    for (auto& [n, t] : params) l.params += t.numel();
    l.dense_params = l.params;
    l.macs = l.dense_macs = weight.numel();
    out.layers.push_back(l);
  };
  add_linear("projector", model.projector());
  LayerComplexity fbn;
  fbn.name = "feature_bn";
  fbn.kind = "batch_norm";
  fbn.out_channels = config.feature_dim;
  fbn.params = fbn.dense_params = 2 * config.feature_dim;
  out.layers.push_back(fbn);
  add_linear("classifier", model.classifier());

  for (const LayerComplexity& l : out.layers) {
    out.params += l.params;
    out.dense_params += l.dense_params;
    out.macs += l.macs;
    out.dense_macs += l.dense_macs;
    if (l.kind == "conv") {
      out.conv_params += l.params;
      out.conv_macs += l.macs;
    }
  }
  return out;
}

}  // namespace scpn::models
