// Parameter and FLOP counts of a prunable ResNet's subnetwork at any capacity, per layer and in total,
// for one input image of a given size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/resnet.h"

namespace scpn::models {

// Counting rules. FLOPs are multiply-accumulates (MACs), the field's convention ("ResNet-18 at 224 px ≈
// 1.8 GFLOPs" means 1.8 G MACs), for convolutions and linear layers only: BatchNorm folds into the
// preceding convolution at inference; ReLU, pooling and residual additions are O(activations).
//   conv, weight granularity:   MACs = kept weights × P × Q   (kept = Σ M(c); P × Q the output size)
//   conv, channel granularity:  MACs = kept filters × kept input channels × R × S × P × Q, the compact
//                               network's dense count (kept input channels: those of the feeding conv)
//   linear:                     MACs = in × out
// Parameters are what the deployed subnetwork holds: kept conv weights, BatchNorm γ and β (kept channels in
// channel granularity; running statistics are buffers), linear weights and biases; scores are
// training-only and not counted. Weight-granularity counts depend only on each layer's kept fraction (its
// rank k), channel-granularity counts on the kept filter counts.
struct LayerComplexity {
  std::string name;          // parameter prefix: "conv1", "layer1.0.conv2", "layer1.0.bn2", "projector", …
  std::string kind;          // "conv", "batch_norm" or "linear"
  int64_t out_channels = 0;  // kept output channels (features for linear)
  int64_t out_height = 1, out_width = 1;  // output size (1 × 1 for the head)
  int64_t params = 0, dense_params = 0;   // kept at this capacity / the full layer's
  int64_t macs = 0, dense_macs = 0;       // multiply-accumulates for one image
};

struct Complexity {
  double capacity = 1.0;
  Granularity granularity = Granularity::weight;
  int64_t height = 0, width = 0;
  // Convs in forward order, each followed by its BatchNorm, then projector, feature_bn, classifier.
  std::vector<LayerComplexity> layers;
  int64_t params = 0, dense_params = 0, macs = 0, dense_macs = 0;  // sums over layers
  int64_t conv_params = 0, conv_macs = 0;                          // convolutions only
};

// Counts `model` at capacity c ∈ (0, 1] in its own granularity, with masks from its current scores (or
// its prepared masks) and an input of height × width pixels. A compact extracted model (no scores)
// counts as dense at c = 1. Errors name count_complexity: capacity outside (0, 1], size below 1 × 1.
Complexity count_complexity(const ResNet& model, double capacity, int64_t height, int64_t width);

}  // namespace scpn::models
