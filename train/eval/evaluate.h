// Evaluation of a trained prunable network (SCPN_METHOD.md §5–§6): for the parent and each capacity,
// self-test and cross-test retrieval, classification accuracy, and the compatibility matrix.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/resnet.h"
#include "train/eval/metrics.h"
#include "train/eval/retrieval_set.h"
#include "train/progress.h"

namespace scpn::train {

struct EvalOptions {
  std::vector<double> capacities = {1.0, 0.8, 0.6, 0.4, 0.2};
  std::vector<double> trained_capacities;  // marks rows; these use their own statistics
  int64_t bn_reestimate_batches = 20;
  bool parent_bn_too = true;
  std::vector<int64_t> recall_k = {1, 2, 4, 8};
  int64_t batch_size = 256;
  bool keep_features = false;  // fill EvalReport::features (comparisons against other models need them)
  // Where each capacity's phases (BN re-estimation, features, ranking) and the matrix report their
  // progress, every line starting with progress_label; null: nowhere.
  ProgressConsole* console = nullptr;
  std::string progress_label = "evaluation";
};

struct CapacityReport {
  double capacity = 1;
  bool trained = false;
  std::string bn_source;  // "parent" (c = 1), "own", "re-estimated"
  RetrievalResult self, cross;  // cross: queries at this capacity, gallery by the parent
  double accuracy = 0;          // NaN where the set has no accuracy (a query/gallery split)
  bool has_parent_bn = false;   // evaluated again with the parent's statistics
  RetrievalResult cross_parent_bn;
  double accuracy_parent_bn = 0;
};

struct EvalReport {
  std::vector<CapacityReport> rows;
  CompatibilityMatrix matrix;  // mAP / R@1, query capacity × gallery capacity
  std::vector<Tensor> features;  // keep_features: the queries' features [Nq, D] per capacity, rows' order
  nlohmann::json to_json() const;
  std::string table() const;   // the printed summary
};

// Features [N, D] (L2-normalised) and logits [N, classes] of the images at one capacity, eval mode, on the
// host; the forward passes run on the model's device. progress (optional) advances by each batch's images.
struct Embedding {
  Tensor features, logits;
};
Embedding embed(const models::ResNet& model, const ImageSet& images, const models::ForwardContext& ctx, int64_t batch_size,
                Progress* progress = nullptr);

// Both sides of a retrieval set at one capacity; for one set the gallery side is the query side.
struct SetEmbedding {
  Embedding query, gallery;
};
SetEmbedding embed_set(const models::ResNet& model, const RetrievalSet& set, const models::ForwardContext& ctx,
                       int64_t batch_size, Progress* progress = nullptr);
// The images embed_set embeds: the queries, and the gallery of a query/gallery split.
int64_t set_images(const RetrievalSet& set);
// The queries embedded by `queries` ranked against the gallery embedded by `gallery` (the same embedding
// for self-test, the parent's for cross-test); under one set each query's own item is left out.
// options.progress (optional) advances by the queries ranked.
RetrievalResult retrieve(const RetrievalSet& set, const SetEmbedding& queries, const SetEmbedding& gallery,
                         RetrievalOptions options);
// A retrieval result as JSON: mAP, mAP@k, Recall@K, the number of queries and of those without a relevant
// item (left out of the means). Every report (train_scpn, eval, prune) writes this form.
nlohmann::json retrieval_json(const RetrievalResult& r);
// Top-1 accuracy of the queries' logits, or NaN where the set has none (RetrievalSet::has_accuracy).
double set_accuracy(const RetrievalSet& set, const SetEmbedding& e);

// Re-estimates the BatchNorm running statistics of `capacity` (registering them if needed) as the exact
// average over batches 0..count−1 given by next_batch (training-mode forwards, no gradients). progress
// (optional) advances by one per batch.
void reestimate_bn_stats(models::ResNet& model, double capacity, int64_t count,
                         const std::function<Tensor(int64_t)>& next_batch, Progress* progress = nullptr);

// Untrained capacities get BatchNorm statistics re-estimated first, over the images next_train_batch(i)
// supplies; with parent_bn_too every subnetwork is also evaluated with the parent's statistics, to show
// what that costs. The model is left in eval mode with the re-estimated statistics registered.
EvalReport evaluate_model(models::ResNet& model, const RetrievalSet& test,
                          const EvalOptions& options, const std::function<Tensor(int64_t)>& next_train_batch);

}  // namespace scpn::train
