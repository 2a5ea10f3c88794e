// The transforms' arithmetic: separable antialiased bilinear resampling, crops, flips, normalisation,
// and torchvision's RandomResizedCrop parameter sampling.
#include "train/data/transforms.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace scpn::data {

// ---- resampling --------------------------------------------------------------------------------------

namespace {

// torchvision rounds with Python's round(): halves to even, which is nearbyint's default mode.
int64_t round_half_even(double x) { return int64_t(std::nearbyint(x)); }

// For each output index along one axis: the first contributing input index and normalised weights.
struct AxisFilter {
  std::vector<int64_t> first, count;
  std::vector<float> weights;  // `taps` per output index, zero-padded
  int64_t taps = 0;
};

AxisFilter axis_filter(int64_t in, int64_t out) {
  const double scale = double(in) / double(out);
  const double widen = std::max(scale, 1.0);  // > 1 only when shrinking: antialiasing
  const double support = widen;                // the triangle's radius in input pixels
  AxisFilter f;
  f.taps = int64_t(std::ceil(support)) * 2 + 1;
  f.first.resize(size_t(out));
  f.count.resize(size_t(out));
  f.weights.assign(size_t(out * f.taps), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const double center = (double(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, int64_t(std::floor(center - support + 0.5)));
    const int64_t hi = std::min<int64_t>(in, int64_t(std::floor(center + support + 0.5)));
    double total = 0;
    std::vector<double> w;
    for (int64_t j = lo; j < hi; ++j) {
      double x = std::abs((double(j) + 0.5 - center) / widen);
      w.push_back(x < 1.0 ? 1.0 - x : 0.0);
      total += w.back();
    }
    f.first[size_t(i)] = lo;
    f.count[size_t(i)] = int64_t(w.size());
    for (size_t k = 0; k < w.size(); ++k) f.weights[size_t(i * f.taps) + k] = float(w[k] / total);
  }
  return f;
}

}  // namespace

Image resize_bilinear(const Image& img, int64_t height, int64_t width) {
  SCPN_CHECK(height > 0 && width > 0, "resize: target size ", height, "x", width, " must be positive");
  SCPN_CHECK(img.height > 0 && img.width > 0, "resize: empty image");
  if (height == img.height && width == img.width) return img;
  const AxisFilter fx = axis_filter(img.width, width), fy = axis_filter(img.height, height);
  Image wide(img.channels, img.height, width);  // after the horizontal pass
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t y = 0; y < img.height; ++y) {
      const float* src = img.plane(c) + y * img.width;
      float* dst = wide.plane(c) + y * width;
      for (int64_t x = 0; x < width; ++x) {
        const float* w = &fx.weights[size_t(x * fx.taps)];
        const float* s = src + fx.first[size_t(x)];
        float acc = 0;
        for (int64_t k = 0; k < fx.count[size_t(x)]; ++k) acc += w[k] * s[k];
        dst[x] = acc;
      }
    }
  Image out(img.channels, height, width);
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t y = 0; y < height; ++y) {
      float* dst = out.plane(c) + y * width;
      const float* w = &fy.weights[size_t(y * fy.taps)];
      for (int64_t k = 0; k < fy.count[size_t(y)]; ++k) {
        const float* src = wide.plane(c) + (fy.first[size_t(y)] + k) * width;
        for (int64_t x = 0; x < width; ++x) dst[x] += w[k] * src[x];
      }
    }
  return out;
}

Image crop(const Image& img, int64_t top, int64_t left, int64_t height, int64_t width) {
  SCPN_CHECK(height > 0 && width > 0, "crop: size ", height, "x", width, " must be positive");
  Image out(img.channels, height, width, 0.0f);
  // The rows and columns of the window that overlap the image.
  const int64_t y0 = std::max<int64_t>(0, -top), y1 = std::min(height, img.height - top);
  const int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min(width, img.width - left);
  if (y0 >= y1 || x0 >= x1) return out;
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t y = y0; y < y1; ++y)
      std::copy_n(img.plane(c) + (top + y) * img.width + left + x0, x1 - x0, out.plane(c) + y * width + x0);
  return out;
}

Image flip_horizontal(const Image& img) {
  Image out = img;
  for (int64_t c = 0; c < out.channels; ++c)
    for (int64_t y = 0; y < out.height; ++y) {
      float* row = out.plane(c) + y * out.width;
      std::reverse(row, row + out.width);
    }
  return out;
}

CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, SampleRng& rng) {
  const double area = double(height) * double(width);
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale_min, scale_max);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = round_half_even(std::sqrt(target * aspect));
    const int64_t h = round_half_even(std::sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height)
      return {rng.integer(0, height - h), rng.integer(0, width - w), h, w};
  }
  // Fallback: the whole image, cropped to the nearest allowed aspect ratio, centred.
  const double in_ratio = double(width) / double(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio_min) h = round_half_even(double(w) / ratio_min);
  else if (in_ratio > ratio_max) w = round_half_even(double(h) * ratio_max);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// ---- transforms --------------------------------------------------------------------------------------

namespace {

std::string size_str(int64_t h, int64_t w) { return cat(h, "x", w); }

void check_size(const std::string& name, int64_t h, int64_t w) {
  SCPN_CHECK(h > 0 && w > 0, name, ": size must be positive");
}

// torchvision's offset round((image - window) / 2); a window larger than the image is padded,
// the odd pixel going after the image.
int64_t centre_offset(int64_t image, int64_t window) {
  if (window > image) return -((window - image) / 2);
  return round_half_even(double(image - window) / 2.0);
}

class ResizeShorter : public Transform {
 public:
  explicit ResizeShorter(int64_t size) : size_(size) { SCPN_CHECK(size > 0, name(), ": size must be positive"); }
  Image apply(Image img, SampleRng&) const override {
    int64_t h = size_, w = size_;
    if (img.height < img.width) w = size_ * img.width / img.height;
    else if (img.width < img.height) h = size_ * img.height / img.width;
    return resize_bilinear(img, h, w);
  }
  std::string name() const override { return cat("resize_shorter(", size_, ")"); }

 private:
  int64_t size_;
};

class Resize : public Transform {
 public:
  Resize(int64_t h, int64_t w) : h_(h), w_(w) { check_size(name(), h, w); }
  Image apply(Image img, SampleRng&) const override { return resize_bilinear(img, h_, w_); }
  std::string name() const override { return "resize(" + size_str(h_, w_) + ")"; }

 private:
  int64_t h_, w_;
};

class CenterCrop : public Transform {
 public:
  CenterCrop(int64_t h, int64_t w) : h_(h), w_(w) { check_size(name(), h, w); }
  Image apply(Image img, SampleRng&) const override {
    return crop(img, centre_offset(img.height, h_), centre_offset(img.width, w_), h_, w_);
  }
  std::string name() const override { return "center_crop(" + size_str(h_, w_) + ")"; }

 private:
  int64_t h_, w_;
};

class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(int64_t h, int64_t w, double s0, double s1, double r0, double r1)
      : h_(h), w_(w), s0_(s0), s1_(s1), r0_(r0), r1_(r1) {
    check_size(name(), h, w);
    SCPN_CHECK(s0 > 0 && s0 <= s1 && s1 <= 1, name(), ": scale range must satisfy 0 < min <= max <= 1");
    SCPN_CHECK(r0 > 0 && r0 <= r1, name(), ": ratio range must satisfy 0 < min <= max");
  }
  Image apply(Image img, SampleRng& rng) const override {
    CropBox b = random_resized_crop_box(img.height, img.width, s0_, s1_, r0_, r1_, rng);
    return resize_bilinear(crop(img, b.top, b.left, b.height, b.width), h_, w_);
  }
  std::string name() const override {
    return cat("random_resized_crop(", size_str(h_, w_), ", scale ", s0_, "..", s1_, ", ratio ", r0_, "..", r1_, ")");
  }

 private:
  int64_t h_, w_;
  double s0_, s1_, r0_, r1_;
};

class RandomCrop : public Transform {
 public:
  RandomCrop(int64_t h, int64_t w, int64_t padding) : h_(h), w_(w), pad_(padding) {
    check_size(name(), h, w);
    SCPN_CHECK(padding >= 0, name(), ": padding must be >= 0");
  }
  Image apply(Image img, SampleRng& rng) const override {
    const int64_t ph = img.height + 2 * pad_, pw = img.width + 2 * pad_;
    SCPN_CHECK(ph >= h_ && pw >= w_, name(), ": image ", size_str(img.height, img.width),
               " is smaller than the crop after padding");
    const int64_t top = rng.integer(0, ph - h_), left = rng.integer(0, pw - w_);
    return crop(img, top - pad_, left - pad_, h_, w_);
  }
  std::string name() const override { return cat("random_crop(", size_str(h_, w_), ", padding ", pad_, ")"); }

 private:
  int64_t h_, w_, pad_;
};

class HorizontalFlip : public Transform {
 public:
  explicit HorizontalFlip(double p) : p_(p) { SCPN_CHECK(p >= 0 && p <= 1, name(), ": probability must be in [0, 1]"); }
  Image apply(Image img, SampleRng& rng) const override {
    return rng.uniform() < p_ ? flip_horizontal(img) : std::move(img);
  }
  std::string name() const override { return cat("horizontal_flip(", p_, ")"); }

 private:
  double p_;
};

class Normalize : public Transform {
 public:
  Normalize(std::vector<float> mean, std::vector<float> stddev) : mean_(std::move(mean)), std_(std::move(stddev)) {
    SCPN_CHECK(!mean_.empty() && mean_.size() == std_.size(), name(),
               ": mean and std need the same, non-zero number of entries (one per channel)");
    for (float s : std_) SCPN_CHECK(s > 0, name(), ": std entries must be positive");
  }
  Image apply(Image img, SampleRng&) const override {
    SCPN_CHECK(img.channels == int64_t(mean_.size()), name(), ": image has ", img.channels,
               " channels but mean/std have ", mean_.size());
    for (int64_t c = 0; c < img.channels; ++c) {
      float* p = img.plane(c);
      const float m = mean_[size_t(c)], inv = 1.0f / std_[size_t(c)];
      for (int64_t k = 0; k < img.height * img.width; ++k) p[k] = (p[k] - m) * inv;
    }
    return img;
  }
  std::string name() const override {
    std::string s = "normalize(mean";
    for (float m : mean_) s += cat(" ", m);
    s += ", std";
    for (float v : std_) s += cat(" ", v);
    return s + ")";
  }

 private:
  std::vector<float> mean_, std_;
};

}  // namespace

TransformPtr resize_shorter(int64_t size) { return std::make_shared<ResizeShorter>(size); }
TransformPtr resize(int64_t height, int64_t width) { return std::make_shared<Resize>(height, width); }
TransformPtr center_crop(int64_t height, int64_t width) { return std::make_shared<CenterCrop>(height, width); }
TransformPtr random_resized_crop(int64_t height, int64_t width, double scale_min, double scale_max,
                                 double ratio_min, double ratio_max) {
  return std::make_shared<RandomResizedCrop>(height, width, scale_min, scale_max, ratio_min, ratio_max);
}
TransformPtr random_crop(int64_t height, int64_t width, int64_t padding) {
  return std::make_shared<RandomCrop>(height, width, padding);
}
TransformPtr horizontal_flip(double probability) { return std::make_shared<HorizontalFlip>(probability); }
TransformPtr normalize(std::vector<float> mean, std::vector<float> stddev) {
  return std::make_shared<Normalize>(std::move(mean), std::move(stddev));
}

// ---- pipeline ----------------------------------------------------------------------------------------

Pipeline::Pipeline(std::initializer_list<TransformPtr> steps) {
  for (const TransformPtr& s : steps) add(s);
}

Pipeline& Pipeline::add(TransformPtr step) {
  SCPN_CHECK(step != nullptr, "pipeline: null transform");
  steps_.push_back(std::move(step));
  return *this;
}

Image Pipeline::operator()(Image img, SampleRng& rng) const {
  for (const TransformPtr& s : steps_) img = s->apply(std::move(img), rng);
  return img;
}

std::string Pipeline::describe() const {
  std::string s;
  for (const TransformPtr& t : steps_) s += (s.empty() ? "" : " -> ") + t->name();
  return s.empty() ? "identity" : s;
}

}  // namespace scpn::data
