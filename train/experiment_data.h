// The data of a train_scpn config, shared by the trainer and the evaluation tools: the training and test
// sets with their transforms, loader options, the test set materialised as one tensor, and the training
// batches used to re-estimate BatchNorm statistics of untrained capacities.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "train/config.h"
#include "train/data/dataset.h"
#include "train/data/loader.h"
#include "train/data/transforms.h"
#include "train/eval/retrieval_set.h"
#include "train/progress.h"

namespace scpn::train {

struct ExperimentData {
  // Opens the sources the config names (fashion_mnist or image_folder) and builds the transforms;
  // errors name the file or folder and the key.
  explicit ExperimentData(const TrainConfig& config);

  TrainConfig config;
  std::shared_ptr<data::Dataset> train_set, test_set;
  std::shared_ptr<data::Dataset> gallery_set;  // a query/gallery split's gallery (test_set = the queries); else null
  data::Pipeline train_transforms, test_transforms;
  int64_t channels = 1;

  data::LoaderOptions loader_options(bool shuffle, bool drop_last) const;
  // Decodes and transforms the test set (and the gallery) into `test`: kept in memory up to
  // eval.in_memory_limit_mb, else streamed (decoded again on every evaluation pass). The decoding reports
  // its progress to `console` when given.
  void load_test_set(ProgressConsole* console = nullptr);
  RetrievalSet test;
  // Un-augmented training images in a seeded order, batch i on call i (wrapping to new epochs).
  std::function<Tensor(int64_t)> reestimation_batches() const;
};

}  // namespace scpn::train
