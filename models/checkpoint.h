// Model checkpoints: a prunable ResNet's parameters and buffers in a safetensors file whose metadata holds
// the model config, so the file alone rebuilds the model (DESIGN.md §7). Also loads torchvision ResNet
// state dicts saved as safetensors, to start from pretrained weights.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/resnet.h"

namespace scpn::models {

// Metadata written by save_model. "format" tells our checkpoints from other safetensors files.
inline constexpr const char* kCheckpointFormat = "scpn-model";
inline constexpr const char* kCheckpointFormatVersion = "1";

// The config a checkpoint of `model` records: model.config() with bn_capacities extended by every capacity
// whose BatchNorm statistics were added after construction (ResNet::add_bn_capacity), in the order they were
// added, so that the rebuilt model has exactly the saved buffers.
ResNetConfig checkpoint_config(const ResNet& model);

// Writes every parameter and buffer of `model` (Module::state(), names as they are: "conv1.weight",
// "layer1.0.conv1.score", "layer1.0.bn1.running_mean@0.80", …; any device, copied to the CPU) to `path`,
// atomically (save_safetensors). __metadata__: "format" = "scpn-model", "format_version" = "1",
// "model_config" = checkpoint_config(model).to_json().dump(), plus `extra` (e.g. "epoch", "source"), whose
// keys must not be one of those three.
void save_model(const std::string& path, const ResNet& model, const SafetensorsMetadata& extra = {});

// Rebuilds the model from the file's config (with the dtype of the file's tensors, on the CPU) and loads
// every tensor strictly. Errors name the file: not one of our checkpoints (metadata missing or another
// format/version), a config ResNetConfig::from_json refuses ("<path>: model.base_width: …"), a config
// describing a model larger than the file's tensors ("<path>: metadata 'model_config' describes a model
// of at least N bytes, but the file's tensors hold M bytes …", checked before anything is allocated), and
// every load_model_into refusal.
std::unique_ptr<ResNet> load_model(const std::string& path);

// Loads a checkpoint into an existing model (any device). Refused, with the live model untouched:
//  - a different architecture: "<path>: model config 'arch' is \"resnet34\" in the file, \"resnet18\"
//    expected" (the first differing key of checkpoint_config, by name);
//  - tensors: "<path>: tensor '<name>': missing from the file" / "in the file but not expected" /
//    "shape [..] in file, [..] expected" / "dtype F64 in file, F32 expected" (no conversion), as
//    load_into (engine/safetensors.h) words them.
void load_model_into(const std::string& path, ResNet& model);

// The outcome of load_torchvision_resnet; names sorted.
struct TorchvisionLoadSummary {
  std::vector<std::string> loaded;              // file tensors copied into the model
  std::vector<std::string> skipped;             // file tensors we have no use for: fc.*, *.num_batches_tracked
  std::vector<std::string> left_initialised;    // our tensors torchvision has no counterpart for: scores,
                                                // projector.*, feature_bn.* (all its buffers), classifier.*
  std::vector<std::string> seeded_capacity_stats;  // per-capacity BN statistics set to the loaded parent's
                                                   // ("layer1.0.bn1.running_mean@0.80")
};

// Loads a torchvision ResNet state dict saved as safetensors (e.g. safetensors.torch.save_file(
// torchvision.models.resnet18(weights=...).state_dict(), path)) into `model`. The stem, residual-block and
// downsample names map one to one ("layer2.0.downsample.1.running_var"); every such tensor of the model must
// be in the file with the same shape and dtype. fc.* and num_batches_tracked are skipped; scores, projector,
// feature_bn and classifier keep their initial values; each trained capacity's BatchNorm statistics
// ("running_mean@0.80") start as the loaded parent's (a better start than zero mean and unit variance).
// Errors name the file and the tensor, and leave the model untouched: missing/shape/dtype as load_into, a
// tensor that is none of these ("<path>: tensor 'layer1.0.conv3.weight': not a tensor of this model (not a
// resnet18 state dict?)"), or one of our own checkpoints ("… is an SCPN checkpoint; use load_model").
TorchvisionLoadSummary load_torchvision_resnet(const std::string& path, ResNet& model);

}  // namespace scpn::models
