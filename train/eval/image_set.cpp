#include "train/eval/image_set.h"

#include <algorithm>

#include "engine/error.h"

namespace scpn::train {

ImageSet ImageSet::in_memory(Tensor images) {
  SCPN_CHECK(images.defined() && images.dim() == 4, "ImageSet: images must be [N, C, H, W]");
  ImageSet s;
  s.images_ = std::move(images);
  return s;
}

ImageSet ImageSet::streamed(std::shared_ptr<const data::Dataset> dataset, data::Pipeline transforms,
                            data::LoaderOptions options) {
  SCPN_CHECK(dataset, "ImageSet: no dataset");
  ImageSet s;
  s.dataset_ = std::move(dataset);
  s.transforms_ = std::move(transforms);
  s.options_ = std::move(options);
  s.options_.shuffle = false;
  s.options_.drop_last = false;
  return s;
}

int64_t ImageSet::size() const {
  if (in_memory()) return images_.size(0);
  return dataset_ ? dataset_->size() : 0;
}

const Tensor& ImageSet::images() const {
  SCPN_CHECK(in_memory(), "ImageSet: the images are streamed from their files, not held in memory");
  return images_;
}

void ImageSet::for_each_batch(int64_t batch_size, const std::function<void(int64_t, const Tensor&)>& f) const {
  SCPN_CHECK(batch_size >= 1, "ImageSet: batch size ", batch_size, " must be >= 1");
  if (in_memory()) {
    const int64_t n = images_.size(0);
    for (int64_t b = 0; b < n; b += batch_size) f(b, images_.slice(b, std::min(n, b + batch_size)));
    return;
  }
  SCPN_CHECK(dataset_, "ImageSet: empty");
  data::LoaderOptions o = options_;
  o.batch_size = batch_size;
  data::Loader loader(dataset_, transforms_, o);
  loader.start_epoch(0);
  int64_t begin = 0;
  while (std::optional<data::Batch> b = loader.next()) {
    f(begin, b->images);
    begin += b->images.size(0);
  }
}

}  // namespace scpn::train
