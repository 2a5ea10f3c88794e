// The images of one side of a retrieval evaluation, in order: held in host memory as one tensor when they
// fit the budget (eval.in_memory_limit_mb), otherwise decoded again by a loader on every pass over them.
// Tested by tests/train/test_retrieval_datasets.cpp.
#pragma once
#include <functional>
#include <memory>

#include "engine/tensor.h"
#include "train/data/dataset.h"
#include "train/data/loader.h"
#include "train/data/transforms.h"

namespace scpn::train {

class ImageSet {
 public:
  ImageSet() = default;
  static ImageSet in_memory(Tensor images);  // [N, C, H, W]
  // `options` as for a test loader (no shuffle, no drop_last); its batch size is replaced on each pass.
  static ImageSet streamed(std::shared_ptr<const data::Dataset> dataset, data::Pipeline transforms,
                           data::LoaderOptions options);

  bool defined() const { return images_.defined() || dataset_ != nullptr; }
  bool in_memory() const { return images_.defined(); }
  int64_t size() const;
  // The tensor of an in-memory set; an error for a streamed one.
  const Tensor& images() const;
  // f(begin, batch) for consecutive batches of at most batch_size images, in order. A streamed batch is
  // the loader's buffer: valid during the call only. Both kinds hand out the same batches, so an
  // evaluation does not depend on which kind it got.
  void for_each_batch(int64_t batch_size, const std::function<void(int64_t begin, const Tensor& batch)>& f) const;

 private:
  Tensor images_;
  std::shared_ptr<const data::Dataset> dataset_;
  data::Pipeline transforms_;
  data::LoaderOptions options_;
};

}  // namespace scpn::train
