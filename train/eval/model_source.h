// What the post-training tools (tools/prune, tools/eval) start from: a trained checkpoint and the
// train_scpn config that names its dataset and image size, given as a run folder or as two files; the
// checks that they belong together; and the per-capacity re-estimation batches they share.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/resnet.h"
#include "train/config.h"
#include "train/experiment_data.h"

namespace scpn::train {

// The metadata key of a pruned checkpoint (save_pruned writes it): such a file is a standalone
// subnetwork, not a prunable parent to cut from.
inline constexpr const char* kPrunedCapacityKey = "pruned_capacity";

struct ModelSource {
  std::string checkpoint;   // a model checkpoint (load_model reads it)
  std::string config_file;  // the run's config.json
  TrainConfig config;
};

// --run DIR | --checkpoint CKPT --config CONFIG.json: a run folder supplies DIR/final.safetensors and
// DIR/config.json, and either file may be given instead. Errors name the option and the path: no source
// given, a missing folder or file, a config parse_config refuses.
ModelSource resolve_model_source(const std::string& run_dir, const std::string& checkpoint, const std::string& config_file);

// The capacity a pruned subnetwork checkpoint (tools/prune's output) was cut at, as written in its
// metadata ("0.25"); empty for a full model.
std::string pruned_capacity(const std::string& checkpoint);

// Loads the checkpoint and checks it against the config: the config's arch, stem, base_width,
// feature_dim, granularity and the dataset's input channels. Errors: "<ckpt> does not match <config>:
// model.base_width is 4 in the checkpoint, 2 in the config". It must be a full prunable model unless
// accept_pruned: a pruned subnetwork (a compact model in channel granularity) is then loaded as the
// standalone network it is, evaluated at capacity 1.
std::unique_ptr<models::ResNet> load_source_model(const ModelSource& source, bool accept_pruned = false);

// The number of classes of the opened dataset must be the model's (its classifier's outputs).
void check_model_classes(const models::ResNet& model, const ModelSource& source, const ExperimentData& data);

// The config's data for a tool: opened, checked against the model's class count, the test set loaded when
// asked. With required = false a dataset that cannot be read (missing, empty, malformed) comes back as
// `error` with no data, so a tool can go on without evaluating; a class-count mismatch is always an error.
// The test set's decoding reports its progress to `console` when given.
struct OpenedData {
  std::unique_ptr<ExperimentData> data;
  std::string error;
};
OpenedData open_data(const ModelSource& source, const models::ResNet& model, bool load_test_set, bool required,
                     ProgressConsole* console = nullptr);

// The capacities whose own BatchNorm statistics the model holds (trained with bn_stats = own).
std::vector<double> capacities_with_own_stats(const models::ResNet& model);
// The capacities the config trained (none for mode = parent).
std::vector<double> trained_capacities(const TrainConfig& config);

// Re-estimation batches for reestimate_bn_stats that restart at the first batch whenever a re-estimation
// starts (index 0): every capacity is re-estimated over the same N training batches, whatever else was
// re-estimated before it, so prune --capacity c and eval's row c agree.
std::function<Tensor(int64_t)> restarting_reestimation_batches(const ExperimentData& data);

// Parses "0.1,0.35,1" into capacities, each in (0, 1]; errors name `option`.
std::vector<double> parse_capacity_list(const std::string& option, const std::string& text);

}  // namespace scpn::train
