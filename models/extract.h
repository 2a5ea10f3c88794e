// Subnetwork extraction (SCPN_METHOD.md §5, DESIGN.md §6): cuts the subnetwork at capacity c out of a
// prunable ResNet as a standalone model whose outputs equal the masked model's at c. Tested by
// tests/models/test_extract.cpp (masked ≡ extracted in eval and training mode, both granularities).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/resnet.h"

namespace scpn::models {

// An extracted subnetwork. Its BatchNorms hold, as their parent ("running_mean") statistics, the
// statistics the source uses at c (see extract_subnetwork), and its config.bn_capacities is empty, so it
// is evaluated with a plain forward at capacity 1.
struct ExtractedModel {
  // Channel granularity: a compact dense ResNet of the same class, config.inner_widths = the kept filter
  // count of every scored conv, no scores; its tensors are physically smaller.
  // Weight granularity: the source's architecture and config (scores copied unchanged: they only matter
  // at capacities below 1) with every scored conv's weight replaced by M(c) ⊙ W.
  std::unique_ptr<ResNet> model;
  // For every scored conv of the source, "<conv>.mask" → its mask at c as u8 0/1 in the score's shape:
  // the weight's shape (weight granularity) or [K], which of the source's filters the compact conv keeps,
  // in order (channel granularity). Same order as ResNet::convs().
  nn::NamedTensors masks;
};

// Extracts the subnetwork of `source` at capacity c ∈ (0, 1], in the source's granularity, with masks
// from the source's current scores (or its prepared masks, as a forward would use).
// BatchNorm statistics: the parent's when c = 1 or bn_stats = parent, otherwise capacity c's own; a
// source without statistics for c is an error (PrunableBatchNorm::running_stats' message): re-estimate
// them first, or pass bn_stats = parent. γ and β are the source's (shared by all capacities).
// The result lives on the source's device and dtype, in the source's training/eval mode.
// Equivalence: extracted.model->forward(x) equals source.forward(x, {c, bn_stats}) to float rounding in
// eval mode, and in training mode too (batch statistics; the running statistics each one moves differ).
ExtractedModel extract_subnetwork(const ResNet& source, double capacity, BnStatsMode bn_stats = BnStatsMode::own);

// The scored conv whose output channels feed `conv_name`'s input channels inside a residual block
// ("layer1.0.conv2" ← "layer1.0.conv1", "layer1.0.conv3" ← "layer1.0.conv2"); empty for a conv that
// reads the residual stream (stem, a block's conv1, its downsample). In channel granularity a pruned
// filter of the feeding conv removes the matching input channel here.
std::string feeding_conv(const std::string& conv_name);

// The conv a BatchNorm normalises: "layer1.0.bn2" → "layer1.0.conv2", "layer2.0.downsample.1" →
// "layer2.0.downsample.0", "bn1" → "conv1"; empty for feature_bn (it follows the projector).
std::string normalised_conv(const std::string& bn_name);

// The kept output filters (ascending indices) of every channel-scored conv of `model` at capacity c,
// by conv name. Empty map for a weight-granularity or compact model.
std::map<std::string, std::vector<int64_t>> kept_filters(const ResNet& model, double capacity);

}  // namespace scpn::models
