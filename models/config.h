// The configuration of a prunable ResNet: everything needed to rebuild the model from a checkpoint's
// metadata. Validated on construction and on parsing; errors name the key.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace scpn::models {

enum class BlockType { basic, bottleneck };
enum class Stem { imagenet, imagenet_nopool, small };
enum class Granularity { weight, channel };

struct ResNetConfig {
  std::string arch = "resnet18";      // resnet18/34/50, or "custom" with explicit block and layers
  BlockType block = BlockType::basic;
  std::vector<int64_t> layers = {2, 2, 2, 2};  // blocks per stage (4 stages)
  Stem stem = Stem::imagenet_nopool;
  int64_t in_channels = 3;            // 1 or 3
  int64_t base_width = 64;            // stage widths: base, 2·base, 4·base, 8·base
  int64_t feature_dim = 256;          // D, the retrieval feature
  int64_t num_classes = 1000;
  Granularity granularity = Granularity::weight;
  // Capacities whose BatchNorm running statistics are kept besides the parent's (SCPN_METHOD.md §5).
  std::vector<double> bn_capacities = {};
  // Compact (extracted, channel granularity) models only: the width of every pruned inner conv, by its
  // parameter prefix ("layer1.0.conv1" → 37). Empty for a full model.
  std::map<std::string, int64_t> inner_widths = {};

  // Named architectures: resnet18, resnet34 (basic), resnet50 (bottleneck).
  static ResNetConfig named(const std::string& arch);
  void validate() const;  // throws scpn::Error naming the key
  nlohmann::json to_json() const;
  static ResNetConfig from_json(const nlohmann::json& j);  // unknown keys are errors
  int64_t expansion() const { return block == BlockType::bottleneck ? 4 : 1; }
  int64_t feature_channels() const { return base_width * 8 * expansion(); }  // C_last
};

const char* to_string(BlockType);
const char* to_string(Stem);
const char* to_string(Granularity);
Stem parse_stem(const std::string& s);
Granularity parse_granularity(const std::string& s);

// Capacities as names: "0.80", "0.35", "0.125" (at least two decimals, at most six). Used in buffer names
// ("bn1.running_mean@0.80") so checkpoints stay readable.
std::string capacity_key(double capacity);
// Capacity must be in (0, 1]; error names `what`.
void check_capacity(const char* what, double capacity);

}  // namespace scpn::models
