// Evaluation of a trained network across capacities, behind tools/eval (SCPN_METHOD.md §5–§6): retrieval,
// accuracy, parameters and MACs per capacity, the compatibility matrix, optionally another model's gallery.
// Its report folder: train/report/sweep_report.h. Tested by tests/train/test_prune.cpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/resnet.h"
#include "train/eval/evaluate.h"
#include "train/experiment_data.h"

namespace scpn::train {

struct SweepOptions {
  std::vector<double> capacities = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};  // 1 is always added
  std::vector<double> trained;  // the capacities the run trained: marked in the pictures and the table
  int64_t reestimate_batches = 20;
  bool parent_bn_too = true;  // also every subnetwork with the parent's statistics
  std::vector<int64_t> recall_k = {1, 2, 4, 8};
  int64_t batch_size = 256;
  int64_t image_size = 28;  // for MACs
  ProgressConsole* console = nullptr;  // where the phases report their progress (EvalOptions::console)
  std::string progress_label = "evaluation";
};

// Queries by the evaluated model's subnetworks, gallery by another model's parent: how methods are compared.
struct GalleryComparison {
  std::string name;             // the other checkpoint
  RetrievalResult self;         // the other model's own self-test
  double accuracy = 0;
  std::vector<RetrievalResult> cross;  // per capacity (the report's rows)
};

struct SweepResult {
  EvalReport report;  // rows and matrix in descending capacity order, 1 first
  std::vector<double> trained;
  std::vector<int64_t> params, macs;  // per row
  int64_t parent_params = 0, parent_macs = 0;
  int64_t image_size = 0;
  int64_t gallery_images = 0;  // a query/gallery split's gallery size; 0 for one set
  std::optional<GalleryComparison> gallery;

  bool is_trained(double capacity) const;  // 1 counts as trained
  nlohmann::json to_json() const;
  std::string table() const;
};

// `data` must have its test set loaded. Capacities with statistics of their own in the model use them;
// the others are re-estimated (restarting_reestimation_batches). gallery_model (optional, any checkpoint
// loadable as a model, evaluated at capacity 1) must take the same images and give features of the same
// dimension. Errors name the option: --capacities, --gallery-checkpoint.
SweepResult run_sweep(models::ResNet& model, const ExperimentData& data, const SweepOptions& options,
                      const models::ResNet* gallery_model = nullptr, const std::string& gallery_name = "");

}  // namespace scpn::train
