#include "models/config.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "engine/error.h"

namespace scpn::models {

const char* to_string(BlockType b) { return b == BlockType::basic ? "basic" : "bottleneck"; }
const char* to_string(Stem s) {
  switch (s) {
    case Stem::imagenet: return "imagenet";
    case Stem::imagenet_nopool: return "imagenet_nopool";
    case Stem::small: return "small";
  }
  return "?";
}
const char* to_string(Granularity g) { return g == Granularity::weight ? "weight" : "channel"; }

Stem parse_stem(const std::string& s) {
  if (s == "imagenet") return Stem::imagenet;
  if (s == "imagenet_nopool") return Stem::imagenet_nopool;
  if (s == "small") return Stem::small;
  throw Error(cat("model.stem: '", s, "' is not one of imagenet, imagenet_nopool, small"));
}

Granularity parse_granularity(const std::string& s) {
  if (s == "weight") return Granularity::weight;
  if (s == "channel") return Granularity::channel;
  throw Error(cat("model.granularity: '", s, "' is not one of weight, channel"));
}

static BlockType parse_block(const std::string& s) {
  if (s == "basic") return BlockType::basic;
  if (s == "bottleneck") return BlockType::bottleneck;
  throw Error(cat("model.block: '", s, "' is not one of basic, bottleneck"));
}

std::string capacity_key(double c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", c);
  std::string s = buf;
  while (s.size() > 4 && s.back() == '0') s.pop_back();  // keep "0.80", trim "0.125000" to "0.125"
  return s;
}

void check_capacity(const char* what, double c) {
  SCPN_CHECK(std::isfinite(c) && c > 0.0 && c <= 1.0, what, ": capacity ", c, " is outside (0, 1]");
}

ResNetConfig ResNetConfig::named(const std::string& arch) {
  ResNetConfig c;
  c.arch = arch;
  if (arch == "resnet18") {
    c.block = BlockType::basic, c.layers = {2, 2, 2, 2};
  } else if (arch == "resnet34") {
    c.block = BlockType::basic, c.layers = {3, 4, 6, 3};
  } else if (arch == "resnet50") {
    c.block = BlockType::bottleneck, c.layers = {3, 4, 6, 3};
  } else {
    throw Error(cat("model.arch: '", arch, "' is not one of resnet18, resnet34, resnet50, custom"));
  }
  return c;
}

void ResNetConfig::validate() const {
  if (arch != "custom") {
    ResNetConfig ref = named(arch);
    SCPN_CHECK(ref.block == block && ref.layers == layers, "model.arch: '", arch,
               "' fixes block and layers; use arch 'custom' to change them");
  }
  SCPN_CHECK(layers.size() == 4, "model.layers: needs 4 stages, got ", layers.size());
  for (int64_t n : layers) SCPN_CHECK(n >= 1 && n <= 64, "model.layers: ", n, " blocks in a stage is outside [1, 64]");
  SCPN_CHECK(in_channels == 1 || in_channels == 3, "model.in_channels: ", in_channels, " is not 1 or 3");
  SCPN_CHECK(base_width >= 1 && base_width <= 1024, "model.base_width: ", base_width, " is outside [1, 1024]");
  SCPN_CHECK(feature_dim >= 1, "model.feature_dim: ", feature_dim, " must be >= 1");
  SCPN_CHECK(num_classes >= 1, "model.num_classes: ", num_classes, " must be >= 1");
  std::set<std::string> keys;
  for (double c : bn_capacities) {
    check_capacity("model.bn_capacities", c);
    SCPN_CHECK(c < 1.0, "model.bn_capacities: 1.0 is the parent's own statistics; list only capacities below 1");
    SCPN_CHECK(keys.insert(capacity_key(c)).second, "model.bn_capacities: capacity ", capacity_key(c), " listed twice");
  }
  for (auto& [name, w] : inner_widths) SCPN_CHECK(w >= 1, "model.inner_widths: '", name, "' has width ", w, " < 1");
}

nlohmann::json ResNetConfig::to_json() const {
  nlohmann::json j;
  j["arch"] = arch;
  j["block"] = to_string(block);
  j["layers"] = layers;
  j["stem"] = to_string(stem);
  j["in_channels"] = in_channels;
  j["base_width"] = base_width;
  j["feature_dim"] = feature_dim;
  j["num_classes"] = num_classes;
  j["granularity"] = to_string(granularity);
  j["bn_capacities"] = bn_capacities;
  j["inner_widths"] = inner_widths;
  return j;
}

ResNetConfig ResNetConfig::from_json(const nlohmann::json& j) {
  SCPN_CHECK(j.is_object(), "model: the model config must be a JSON object");
  static const std::set<std::string> known = {"arch", "block", "layers", "stem", "in_channels", "base_width",
                                              "feature_dim", "num_classes", "granularity", "bn_capacities",
                                              "inner_widths"};
  for (auto& [k, v] : j.items()) SCPN_CHECK(known.count(k), "model.", k, ": unknown key");
  ResNetConfig c;
  auto get = [&](const char* key, auto& out) {
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(out);
    } catch (const nlohmann::json::exception&) {
      throw Error(cat("model.", key, ": wrong type (", j.at(key).dump(), ")"));
    }
  };
  std::string arch = c.arch, block = to_string(c.block), stem = to_string(c.stem), gran = to_string(c.granularity);
  get("arch", arch);
  if (arch != "custom") c = named(arch);
  c.arch = arch;
  block = to_string(c.block);
  get("block", block);
  c.block = parse_block(block);
  get("layers", c.layers);
  get("stem", stem);
  c.stem = parse_stem(stem);
  get("in_channels", c.in_channels);
  get("base_width", c.base_width);
  get("feature_dim", c.feature_dim);
  get("num_classes", c.num_classes);
  get("granularity", gran);
  c.granularity = parse_granularity(gran);
  get("bn_capacities", c.bn_capacities);
  get("inner_widths", c.inner_widths);
  c.validate();
  return c;
}

}  // namespace scpn::models
