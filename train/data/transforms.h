// Image transforms for training and evaluation, composed into a Pipeline that maps a decoded sample to
// the tensor the model sees, following torchvision's ImageNet recipes (its crop arithmetic,
// RandomResizedCrop's sampling and fallback, bilinear resizing antialiased like PIL's filter).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/data/image.h"
#include "train/data/random.h"

namespace scpn::data {

// ---- primitives (also used directly by evaluation code and the tests) -------------------------------

// Bilinear resampling to height x width with half-pixel centres (out pixel i samples in coordinate
// (i + 0.5)·in/out - 0.5, edges clamped). When shrinking, the triangle filter is widened by in/out so
// every input pixel contributes (antialiasing, as PIL and torchvision's antialias=True do).
Image resize_bilinear(const Image& img, int64_t height, int64_t width);
// The height x width window whose top-left corner is (top, left); pixels outside the image are 0.
Image crop(const Image& img, int64_t top, int64_t left, int64_t height, int64_t width);
Image flip_horizontal(const Image& img);

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// torchvision's RandomResizedCrop.get_params: up to 10 tries of an area fraction in [scale_min,
// scale_max] and a log-uniform aspect ratio in [ratio_min, ratio_max] that fit the image; otherwise
// the largest centred box whose aspect ratio is clamped into the range.
CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, SampleRng& rng);

// ---- composable transforms --------------------------------------------------------------------------

// Random transforms draw only from the sample's own SampleRng (random.h), so a sample's augmentation is a
// pure function of (seed, epoch, index).
class Transform {
 public:
  virtual ~Transform() = default;
  // Throws scpn::Error (naming the transform) when the image does not suit it, e.g. a channel count
  // that differs from normalize's or an image smaller than a random crop.
  virtual Image apply(Image img, SampleRng& rng) const = 0;
  virtual std::string name() const = 0;  // e.g. "center_crop(224x224)"
};
using TransformPtr = std::shared_ptr<const Transform>;

// Constructors validate their arguments and throw scpn::Error naming the transform.
TransformPtr resize_shorter(int64_t size);  // shorter side to size, longer side floor(size·long/short)
TransformPtr resize(int64_t height, int64_t width);
// Centred window (torchvision's offsets: round half to even); an image smaller than the window is
// padded with zeros around it.
TransformPtr center_crop(int64_t height, int64_t width);
TransformPtr random_resized_crop(int64_t height, int64_t width, double scale_min = 0.08, double scale_max = 1.0,
                                 double ratio_min = 3.0 / 4.0, double ratio_max = 4.0 / 3.0);
// Pads every side with `padding` zero pixels, then takes a uniformly placed height x width window.
TransformPtr random_crop(int64_t height, int64_t width, int64_t padding = 0);
TransformPtr horizontal_flip(double probability = 0.5);
// (x - mean[c]) / std[c]; one entry per channel.
TransformPtr normalize(std::vector<float> mean, std::vector<float> stddev);

class Pipeline {
 public:
  Pipeline() = default;
  Pipeline(std::initializer_list<TransformPtr> steps);
  Pipeline& add(TransformPtr step);
  Image operator()(Image img, SampleRng& rng) const;
  std::string describe() const;  // "resize_shorter(256) -> center_crop(224x224) -> ..."
  bool empty() const { return steps_.empty(); }

 private:
  std::vector<TransformPtr> steps_;
};

}  // namespace scpn::data
