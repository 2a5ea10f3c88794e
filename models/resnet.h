// Prunable ResNet-18/34/50 (basic and bottleneck blocks) with the SCPN head. One set of parameters serves
// every capacity: forward(x, {capacity}) computes that subnetwork.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/layers.h"
#include "models/prunable.h"

namespace scpn::models {

struct ResNetOutput {
  Tensor feature;  // [N, D], the projector BatchNorm's output (L2-normalise it for retrieval)
  Tensor logits;   // [N, classes]
};

// A residual block (basic or bottleneck); its convolutions and BatchNorms are reachable for masks,
// counting and extraction through the model's flat lists.
class ResidualBlock : public nn::Module {
 public:
  virtual Tensor forward(const Tensor& x, const ForwardContext& ctx) const = 0;
};

// Head: global average pool → projector Linear(C_last → D, bias) → BatchNorm1d(D) = the retrieval feature
// → classifier Linear(D → classes, bias) on the un-normalised feature. Parameter names follow torchvision
// ("layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var"); ours
// add "<conv>.score", "<bn>.running_mean@0.80", "projector.weight/bias", "feature_bn.*",
// "classifier.weight/bias".
class ResNet : public nn::Module {
 public:
  ResNet(const ResNetConfig& config, Generator& gen, DType dtype = DType::f32);

  ResNetOutput forward(const Tensor& x, const ForwardContext& ctx = {}) const;

  const ResNetConfig& config() const { return config_; }
  // Every convolution and BatchNorm with its full parameter prefix ("layer1.0.conv1"), in forward order.
  const std::vector<std::pair<std::string, PrunableConv2d*>>& convs() const { return convs_; }
  const std::vector<std::pair<std::string, PrunableBatchNorm*>>& batch_norms() const { return bns_; }
  nn::Linear& projector() const { return *projector_; }
  nn::Linear& classifier() const { return *classifier_; }

  // Ranks every pruned layer's scores once for all these capacities (see PrunableConv2d::prepare_masks).
  void prepare_masks(const std::vector<double>& capacities);
  void clear_masks();
  // Adds BatchNorm statistics buffers for a capacity in every BatchNorm (before re-estimating them).
  void add_bn_capacity(double capacity);

  // Parameters grouped as the method's optimizer wants them (SCPN_METHOD.md §4): the projector's and
  // classifier's biases (no weight decay) and everything else.
  std::vector<Tensor> no_decay_parameters() const;
  std::vector<Tensor> decay_parameters() const;

 private:
  ResNetConfig config_;
  std::shared_ptr<PrunableConv2d> stem_conv_;
  std::shared_ptr<PrunableBatchNorm> stem_bn_;
  std::vector<std::shared_ptr<ResidualBlock>> blocks_;
  std::shared_ptr<nn::Linear> projector_, classifier_;
  std::shared_ptr<PrunableBatchNorm> feature_bn_;
  std::vector<std::pair<std::string, PrunableConv2d*>> convs_;
  std::vector<std::pair<std::string, PrunableBatchNorm*>> bns_;
};

// The masks (and kept-filter indices) of these capacities, prepared in every layer for as long as this
// lives: a loop of forwards at a fixed capacity (evaluation, re-estimation, extraction) then ranks the
// scores once rather than once per batch and, on a GPU, reads no mask back to the host per batch. Guards
// do not nest: the inner one's end clears every prepared mask (forwards stay correct, only slower).
class PreparedMasks {
 public:
  PreparedMasks(ResNet& model, const std::vector<double>& capacities) : model_(model) {
    model_.prepare_masks(capacities);
  }
  ~PreparedMasks() { model_.clear_masks(); }
  PreparedMasks(const PreparedMasks&) = delete;
  PreparedMasks& operator=(const PreparedMasks&) = delete;

 private:
  ResNet& model_;
};

}  // namespace scpn::models
