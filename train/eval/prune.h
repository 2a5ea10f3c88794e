// Post-training pruning at any capacity (SCPN_METHOD.md §5), the library behind tools/prune: cut out the
// subnetwork at c with the chosen BatchNorm statistics, count and evaluate it against the parent, and save
// it as a standalone checkpoint. Tested by tests/train/test_prune.cpp.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/complexity.h"
#include "models/extract.h"
#include "train/eval/metrics.h"
#include "train/experiment_data.h"
#include "train/progress.h"

namespace scpn::train {

// automatic: the capacity's own statistics when the checkpoint has them (a trained capacity, and the
// parent's at c = 1), otherwise re-estimated.
enum class PruneBnStats { automatic, own, reestimate, parent };
// "own", "reestimate" or "parent"; anything else is an error naming --bn-stats.
PruneBnStats parse_prune_bn_stats(const std::string& text);

struct PruneOptions {
  double capacity = 1.0;  // (0, 1]
  PruneBnStats bn_stats = PruneBnStats::automatic;
  int64_t reestimate_batches = 20;  // training batches averaged (exactly) by a re-estimation, >= 1
  int64_t image_size = 224;         // input height = width for counting MACs (the config's data.image_size)
  bool evaluate = true;             // when data is given
  std::vector<int64_t> recall_k = {1, 2, 4, 8};
  int64_t batch_size = 256;         // images per forward pass in evaluation
  std::string source_name = "the checkpoint";  // for messages
  ProgressConsole* console = nullptr;  // where the phases (features, re-estimation, ranking, cutting) report
};

// One way of treating the subnetwork's BatchNorm statistics, evaluated on the test set against the parent.
struct PruneVariant {
  std::string bn_stats;   // "own", "re-estimated", "parent"
  bool exported = false;  // the statistics the written subnetwork holds (measured on the extracted model)
  RetrievalResult self, cross;  // cross: the subnetwork's queries against the parent's gallery
  double accuracy = 0;
};

struct PruneResult {
  double capacity = 1;
  models::Granularity granularity = models::Granularity::weight;
  std::string bn_stats;  // the exported statistics: "own", "re-estimated" or "parent"
  int64_t reestimate_batches = 0;  // when re-estimated
  models::ExtractedModel subnet;
  models::Complexity complexity, parent_complexity;  // at c and at 1, for one image of the config's size
  bool evaluated = false;
  int64_t test_images = 0;     // the queries (one set: every test image)
  int64_t gallery_images = 0;  // a query/gallery split's gallery; 0 for one set
  RetrievalResult parent_self;
  double parent_accuracy = 0;
  std::vector<PruneVariant> variants;  // own (when the checkpoint has it), re-estimated, parent; one at c = 1

  std::string summary() const;  // the text tools/prune prints
  nlohmann::json to_json() const;
};

// Cuts `model` at options.capacity. `data`: the experiment's data with the test set loaded, or null when it
// is not available (then `data_error` says why): re-estimation needs it, evaluation is skipped without it.
// The model is left in eval mode; re-estimation overwrites its statistics for c in memory (the checkpoint
// file is untouched). Errors: a capacity outside (0, 1] ("--capacity: capacity 0 is outside (0, 1]"),
// --bn-stats own for a capacity without statistics, reestimate at c = 1 or without data, reestimate_batches < 1.
PruneResult prune_model(models::ResNet& model, const PruneOptions& options, const ExperimentData* data,
                        const std::string& data_error = "");

// Writes the subnetwork as a model checkpoint (save_model: load_model, extract_features and train_scpn
// --init read it as a standalone model, evaluated at capacity 1), with metadata pruned_capacity,
// granularity, bn_stats, source, params and MACs; and its masks (ExtractedModel::masks, u8) to
// masks_path(path). The output folder must exist.
void save_pruned(const std::string& path, const PruneResult& result, const std::string& source_checkpoint);
// "out.safetensors" → "out.masks.safetensors" (".masks.safetensors" appended to any other name).
std::string masks_path(const std::string& path);

}  // namespace scpn::train
