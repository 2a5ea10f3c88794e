// Model checkpoints (see checkpoint.h): our format = every tensor of Module::state() + the model config in
// the safetensors metadata; and torchvision state dicts, whose names ours follow (DESIGN.md §6).
#include "models/checkpoint.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

namespace scpn::models {

namespace {

const char* const kFormatKey = "format";
const char* const kVersionKey = "format_version";
const char* const kConfigKey = "model_config";

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::map<std::string, Tensor> state_map(const ResNet& model) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : model.state()) out[name] = t;
  return out;
}

// The config recorded in a checkpoint header, checked to be ours; errors name the file.
ResNetConfig config_from_header(const SafetensorsHeader& h) {
  const SafetensorsMetadata& m = h.metadata;
  auto format = m.find(kFormatKey);
  if (format == m.end()) throw Error(cat(h.path, ": not an SCPN model checkpoint: metadata 'format' is missing"));
  if (format->second != kCheckpointFormat)
    throw Error(cat(h.path, ": not an SCPN model checkpoint: metadata 'format' is '", format->second, "', '",
                    kCheckpointFormat, "' expected"));
  auto version = m.find(kVersionKey);
  if (version == m.end()) throw Error(cat(h.path, ": metadata 'format_version' is missing"));
  if (version->second != kCheckpointFormatVersion)
    throw Error(cat(h.path, ": checkpoint format_version '", version->second, "' is not supported (this build reads '",
                    kCheckpointFormatVersion, "')"));
  auto config = m.find(kConfigKey);
  if (config == m.end()) throw Error(cat(h.path, ": metadata 'model_config' is missing"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config->second);
  } catch (const nlohmann::json::exception&) {  // parse_error, or out_of_range for a number like 1e999
    throw Error(cat(h.path, ": metadata 'model_config' is not valid JSON"));
  }
  try {
    return ResNetConfig::from_json(j);
  } catch (const Error& e) {
    throw Error(cat(h.path, ": ", e.what()));
  }
}

// A lower bound on the element count of the model `c` describes: its convolution weights (in a compact
// model only the residual stream's, whose widths extraction keeps, plus one element per listed inner
// width), the projector and the classifier. In doubles, so that no claim overflows. load_model compares it
// with the file before building anything: a model config that claims more than the file's tensors could
// hold would otherwise be allocated in full before the first tensor is compared.
double min_model_elements(const ResNetConfig& c) {
  const bool compact = !c.inner_widths.empty();
  const double stem_kernel = c.stem == Stem::small ? 3 : 7;
  double n = double(c.base_width) * double(c.in_channels) * stem_kernel * stem_kernel;
  double in = double(c.base_width);
  for (int s = 0; s < 4; ++s) {
    const double planes = double(c.base_width) * double(int64_t(1) << s), out = planes * double(c.expansion());
    for (int64_t b = 0; b < c.layers[size_t(s)]; ++b) {
      if (c.block == BlockType::basic) n += compact ? out * 9 : in * planes * 9 + planes * out * 9;
      else n += compact ? out : in * planes + planes * planes * 9 + planes * out;
      if (b == 0 && (s > 0 || in != out)) n += in * out;  // the downsample convolution
      in = out;
    }
  }
  for (const auto& [name, width] : c.inner_widths) n += double(width);
  return n + double(c.feature_dim) * double(c.feature_channels()) + double(c.num_classes) * double(c.feature_dim);
}

// First key (by name) whose value differs between the file's config and the model's, as an error.
void check_same_config(const std::string& path, const ResNetConfig& in_file, const ResNetConfig& expected) {
  nlohmann::json f = in_file.to_json(), e = expected.to_json();
  for (auto& [key, value] : e.items()) {
    const nlohmann::json& other = f.contains(key) ? f.at(key) : nlohmann::json();
    if (other != value)
      throw Error(cat(path, ": model config '", key, "' is ", other.dump(), " in the file, ", value.dump(), " expected"));
  }
}

// Every tensor, strictly; load_into checks them all before copying any.
void load_state(const std::string& path, ResNet& model) { load_into(path, state_map(model)); }

// Our tensors that a torchvision state dict has no counterpart for.
bool scpn_only(const std::string& name) {
  return ends_with(name, ".score") || name.find('@') != std::string::npos || starts_with(name, "projector.") ||
         starts_with(name, "feature_bn.") || starts_with(name, "classifier.");
}

bool torchvision_only(const std::string& name) {
  return starts_with(name, "fc.") || ends_with(name, ".num_batches_tracked") || name == "num_batches_tracked";
}

}  // namespace

ResNetConfig checkpoint_config(const ResNet& model) {
  ResNetConfig config = model.config();
  if (model.batch_norms().empty()) return config;
  std::set<std::string> listed;
  for (double c : config.bn_capacities) listed.insert(capacity_key(c));
  // Every BatchNorm gets the same capacities (ResNet::add_bn_capacity); the first one's buffers tell which.
  const std::string prefix = "running_mean@";
  for (auto& [name, t] : model.batch_norms().front().second->named_buffers()) {
    if (!starts_with(name, prefix)) continue;
    std::string key = name.substr(prefix.size());
    if (listed.insert(key).second) config.bn_capacities.push_back(std::stod(key));
  }
  return config;
}

void save_model(const std::string& path, const ResNet& model, const SafetensorsMetadata& extra) {
  SafetensorsMetadata metadata;
  metadata[kFormatKey] = kCheckpointFormat;
  metadata[kVersionKey] = kCheckpointFormatVersion;
  metadata[kConfigKey] = checkpoint_config(model).to_json().dump();
  for (const auto& [key, value] : extra) {
    SCPN_CHECK(!metadata.count(key), "save_model: ", path, ": metadata key '", key,
               "' is reserved for the checkpoint format");
    metadata[key] = value;
  }
  std::vector<NamedTensor> tensors;
  for (auto& [name, t] : model.state()) tensors.push_back({name, t.detach()});
  save_safetensors(path, tensors, metadata);
}

std::unique_ptr<ResNet> load_model(const std::string& path) {
  SafetensorsHeader h = read_safetensors_header(path);
  ResNetConfig config = config_from_header(h);
  // The model takes the dtype of its tensors in the file; the strict load then refuses any other dtype.
  DType dtype = DType::f32;
  for (const SafetensorsEntry& e : h.entries)
    if (e.name == "conv1.weight") dtype = e.dtype;
  const double claimed_bytes = min_model_elements(config) * double(dtype_size(dtype));
  if (claimed_bytes > double(h.data_bytes))
    throw Error(cat(path, ": metadata 'model_config' describes a model of at least ", uint64_t(std::min(claimed_bytes, 1e19)),
                    " bytes, but the file's tensors hold ", h.data_bytes, " bytes (corrupt model config?)"));
  Generator gen(0);  // initial values are overwritten by the load
  std::unique_ptr<ResNet> model;
  try {
    model = std::make_unique<ResNet>(config, gen, dtype);
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()));
  }
  load_state(path, *model);
  return model;
}

void load_model_into(const std::string& path, ResNet& model) {
  SafetensorsHeader h = read_safetensors_header(path);
  check_same_config(path, config_from_header(h), checkpoint_config(model));
  load_state(path, model);
}

TorchvisionLoadSummary load_torchvision_resnet(const std::string& path, ResNet& model) {
  SafetensorsHeader h = read_safetensors_header(path);
  auto format = h.metadata.find(kFormatKey);
  if (format != h.metadata.end() && format->second == kCheckpointFormat)
    throw Error(cat(path, ": is an SCPN checkpoint, not a torchvision state dict; use load_model"));

  TorchvisionLoadSummary summary;
  std::map<std::string, Tensor> targets;
  for (auto& [name, t] : model.state())
    if (!scpn_only(name)) targets[name] = t;
  std::vector<std::string> unknown;
  for (const SafetensorsEntry& e : h.entries) {
    if (torchvision_only(e.name))
      summary.skipped.push_back(e.name);
    else if (!targets.count(e.name))
      unknown.push_back(e.name);
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    std::string more = unknown.size() > 1 ? cat(" (and ", unknown.size() - 1, " more)") : "";
    throw Error(cat(path, ": tensor '", unknown.front(), "': not a tensor of this model (a state dict of another "
                    "architecture than ", model.config().arch, "?)", more));
  }
  LoadIntoOptions options;
  options.allow_extra = true;  // exactly the skipped tensors: every other one has a target
  summary.loaded = load_into(path, targets, options).loaded;

  // Each trained capacity's statistics start as the pretrained parent's (in the BatchNorms loaded: not in
  // feature_bn, which torchvision has not).
  std::set<std::string> loaded(summary.loaded.begin(), summary.loaded.end());
  for (auto& [prefix, bn] : model.batch_norms()) {
    if (!loaded.count(prefix + ".running_mean")) continue;
    std::map<std::string, Tensor> buffers;
    for (auto& [name, t] : bn->named_buffers()) buffers[name] = t;
    for (auto& [name, t] : buffers) {
      size_t at = name.find('@');
      if (at == std::string::npos) continue;
      t.copy_(buffers.at(name.substr(0, at)));
      summary.seeded_capacity_stats.push_back(prefix + "." + name);
    }
  }
  std::sort(summary.skipped.begin(), summary.skipped.end());
  std::sort(summary.seeded_capacity_stats.begin(), summary.seeded_capacity_stats.end());
  std::set<std::string> seeded(summary.seeded_capacity_stats.begin(), summary.seeded_capacity_stats.end());
  for (auto& [name, t] : model.state())
    if (!loaded.count(name) && !seeded.count(name)) summary.left_initialised.push_back(name);
  std::sort(summary.left_initialised.begin(), summary.left_initialised.end());
  return summary;
}

}  // namespace scpn::models
