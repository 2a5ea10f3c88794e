// Transforms against hand-computed results on tiny images (bilinear weights, crop offsets, padding,
// flips, normalisation), torchvision's RandomResizedCrop sampling and fallback, the per-sample random
// streams and epoch orders, and every bad argument refused with its message.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "kernels/common/error.h"
#include "train/data/random.h"
#include "train/data/transforms.h"

using namespace scpn;
using namespace scpn::data;

namespace {

Image make_image(int64_t c, int64_t h, int64_t w, const std::vector<float>& values) {
  Image img(c, h, w);
  REQUIRE(values.size() == img.pixels.size());
  img.pixels = values;
  return img;
}

// 0, 1, 2, ... in CHW order.
Image ramp(int64_t c, int64_t h, int64_t w) {
  Image img(c, h, w);
  std::iota(img.pixels.begin(), img.pixels.end(), 0.0f);
  return img;
}

void check_pixels(const Image& img, const std::vector<float>& expected, double eps = 1e-6) {
  REQUIRE(img.pixels.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("pixel " << i);
    CHECK(img.pixels[i] == doctest::Approx(expected[i]).epsilon(eps));
  }
}

}  // namespace

TEST_CASE("resize_bilinear: half-pixel bilinear when enlarging, widened triangle when shrinking") {
  // 1-D, 2 -> 4: out i samples (i + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped at the edges).
  Image up = resize_bilinear(make_image(1, 1, 2, {1, 5}), 1, 4);
  check_pixels(up, {1, 0.75f * 1 + 0.25f * 5, 0.25f * 1 + 0.75f * 5, 5});
  // 4 -> 2: scale 2, triangle of radius 2 around input coordinate 1 and 3 (pixel centres at j + 0.5):
  // out 0 = (0.75 a + 0.75 b + 0.25 c) / 1.75, out 1 = (0.25 b + 0.75 c + 0.75 d) / 1.75.
  Image down = resize_bilinear(make_image(1, 1, 4, {1, 2, 4, 8}), 1, 2);
  check_pixels(down, {(0.75f * 1 + 0.75f * 2 + 0.25f * 4) / 1.75f, (0.25f * 2 + 0.75f * 4 + 0.75f * 8) / 1.75f});
  // 2-D, 2x2 -> 3x3 on two channels: the centre row/column averages neighbours.
  Image two = make_image(2, 2, 2, {0, 1, 2, 3, 10, 20, 30, 40});
  Image big = resize_bilinear(two, 3, 3);
  CHECK(big.channels == 2);
  check_pixels(big, {0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3, 10, 15, 20, 20, 25, 30, 30, 35, 40});
  // Same size is the identity; a constant stays constant at any size.
  Image r = ramp(1, 3, 5);
  check_pixels(resize_bilinear(r, 3, 5), r.pixels);
  Image flat(3, 7, 9, 0.25f);
  for (float v : resize_bilinear(flat, 4, 13).pixels) CHECK(v == doctest::Approx(0.25f));
  CHECK_THROWS_WITH_AS(resize_bilinear(r, 0, 2), "resize: target size 0x2 must be positive", Error);
}

TEST_CASE("resize transforms: exact size and shorter side") {
  SampleRng rng(0, 0, 0);
  auto shape = [](const Image& img) { return std::vector<int64_t>{img.channels, img.height, img.width}; };
  CHECK(shape(resize_shorter(2)->apply(ramp(1, 4, 6), rng)) == std::vector<int64_t>{1, 2, 3});
  CHECK(shape(resize_shorter(2)->apply(ramp(1, 6, 4), rng)) == std::vector<int64_t>{1, 3, 2});
  CHECK(shape(resize_shorter(3)->apply(ramp(3, 5, 7), rng)) == std::vector<int64_t>{3, 3, 4});  // floor(3·7/5)
  CHECK(shape(resize_shorter(4)->apply(ramp(1, 2, 2), rng)) == std::vector<int64_t>{1, 4, 4});
  CHECK(shape(resize(3, 5)->apply(ramp(1, 8, 8), rng)) == std::vector<int64_t>{1, 3, 5});
  // 2x4 -> 1x2 halves both axes: equal rows average to themselves, columns take the 4 -> 2 weights.
  Image half = resize_shorter(1)->apply(make_image(1, 2, 4, {1, 2, 4, 8, 1, 2, 4, 8}), rng);
  check_pixels(half, {(0.75f * 1 + 0.75f * 2 + 0.25f * 4) / 1.75f, (0.25f * 2 + 0.75f * 4 + 0.75f * 8) / 1.75f});
  CHECK(resize_shorter(2)->name() == "resize_shorter(2)");
  CHECK(resize(3, 5)->name() == "resize(3x5)");
  CHECK_THROWS_WITH_AS(resize_shorter(0), "resize_shorter(0): size must be positive", Error);
  CHECK_THROWS_WITH_AS(resize(3, -1), "resize(3x-1): size must be positive", Error);
}

TEST_CASE("crop, centre crop (torchvision offsets and padding) and horizontal flip") {
  Image r = ramp(1, 4, 4);  // rows 0-3, 4-7, 8-11, 12-15
  check_pixels(crop(r, 1, 2, 2, 2), {6, 7, 10, 11});
  check_pixels(crop(r, -1, 3, 2, 2), {0, 0, 3, 0});  // outside the image is 0
  check_pixels(crop(r, 5, 0, 1, 2), {0, 0});
  SampleRng rng(0, 0, 0);
  // Offsets round((size - window) / 2) with halves to even: 4-3 -> 0.5 -> 0, 4-1 -> 1.5 -> 2.
  check_pixels(center_crop(3, 3)->apply(r, rng), {0, 1, 2, 4, 5, 6, 8, 9, 10});
  check_pixels(center_crop(1, 1)->apply(r, rng), {10});
  check_pixels(center_crop(1, 1)->apply(ramp(1, 6, 6), rng), {14});  // 2.5 -> 2
  check_pixels(center_crop(2, 4)->apply(r, rng), {4, 5, 6, 7, 8, 9, 10, 11});
  // A larger window pads: floor(extra / 2) before, the rest after.
  check_pixels(center_crop(3, 3)->apply(make_image(1, 2, 2, {1, 2, 3, 4}), rng), {1, 2, 0, 3, 4, 0, 0, 0, 0});
  check_pixels(center_crop(4, 4)->apply(make_image(1, 2, 2, {1, 2, 3, 4}), rng),
               {0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0});
  check_pixels(flip_horizontal(make_image(2, 1, 3, {1, 2, 3, 4, 5, 6})), {3, 2, 1, 6, 5, 4});
  CHECK(center_crop(3, 2)->name() == "center_crop(3x2)");
  CHECK_THROWS_WITH_AS(center_crop(0, 2), "center_crop(0x2): size must be positive", Error);
  CHECK_THROWS_WITH_AS(crop(r, 0, 0, 1, 0), "crop: size 1x0 must be positive", Error);
}

TEST_CASE("normalize: per-channel mean and std") {
  SampleRng rng(0, 0, 0);
  Image img = make_image(2, 1, 2, {0.5f, 1.0f, 0.0f, 0.25f});
  check_pixels(normalize({0.5f, 0.25f}, {0.5f, 0.25f})->apply(img, rng), {0, 1, -1, 0});
  CHECK(normalize({0.5f}, {0.25f})->name() == "normalize(mean 0.5, std 0.25)");
  CHECK_THROWS_WITH_AS(normalize({0.5f}, {0.25f})->apply(img, rng),
                       "normalize(mean 0.5, std 0.25): image has 2 channels but mean/std have 1", Error);
  CHECK_THROWS_WITH_AS(normalize({0.5f, 0.5f}, {0.25f}),
                       "normalize(mean 0.5 0.5, std 0.25): mean and std need the same, non-zero number of entries "
                       "(one per channel)",
                       Error);
  CHECK_THROWS_WITH_AS(normalize({0.5f}, {0.0f}), "normalize(mean 0.5, std 0): std entries must be positive", Error);
}

TEST_CASE("random_crop with padding: every window position occurs, each a padded view of the image") {
  Image img = make_image(1, 2, 2, {1, 2, 3, 4});
  std::set<std::vector<float>> seen;
  auto t = random_crop(2, 2, 1);
  for (uint64_t index = 0; index < 400; ++index) {
    SampleRng rng(7, 0, index);
    Image out = t->apply(img, rng);
    bool is_window = false;
    for (int64_t top = -1; top <= 1; ++top)
      for (int64_t left = -1; left <= 1; ++left) is_window |= out.pixels == crop(img, top, left, 2, 2).pixels;
    CHECK(is_window);
    seen.insert(out.pixels);
  }
  CHECK(seen.size() == 9);  // all 3 x 3 positions of the window over the 4x4 padded image
  SampleRng rng(0, 0, 0);
  check_pixels(random_crop(2, 2, 0)->apply(img, rng), {1, 2, 3, 4});  // no room to move
  CHECK(random_crop(2, 3, 4)->name() == "random_crop(2x3, padding 4)");
  CHECK_THROWS_WITH_AS(random_crop(5, 5, 1)->apply(img, rng),
                       "random_crop(5x5, padding 1): image 2x2 is smaller than the crop after padding", Error);
  CHECK_THROWS_WITH_AS(random_crop(2, 2, -1), "random_crop(2x2, padding -1): padding must be >= 0", Error);
}

TEST_CASE("horizontal_flip: never, always, and sometimes") {
  Image img = make_image(1, 1, 2, {1, 2});
  int flipped = 0;
  for (uint64_t index = 0; index < 200; ++index) {
    SampleRng a(1, 0, index), b(1, 0, index), c(1, 0, index);
    CHECK(horizontal_flip(0.0)->apply(img, a).pixels == img.pixels);
    CHECK(horizontal_flip(1.0)->apply(img, b).pixels == std::vector<float>{2, 1});
    flipped += horizontal_flip(0.5)->apply(img, c).pixels[0] == 2;
  }
  CHECK(flipped > 70);
  CHECK(flipped < 130);
  CHECK_THROWS_WITH_AS(horizontal_flip(1.5), "horizontal_flip(1.5): probability must be in [0, 1]", Error);
}

TEST_CASE("random_resized_crop: boxes inside the image with the requested area and aspect, and the fallback") {
  for (uint64_t index = 0; index < 300; ++index) {
    SampleRng rng(3, 1, index);
    CropBox b = random_resized_crop_box(60, 80, 0.25, 0.5, 0.5, 2.0, rng);
    CHECK(b.top >= 0);
    CHECK(b.left >= 0);
    CHECK(b.top + b.height <= 60);
    CHECK(b.left + b.width <= 80);
    // Rounding each side to whole pixels moves area and aspect by at most about one pixel's worth.
    double area = double(b.height * b.width) / (60.0 * 80.0);
    CHECK(area >= 0.25 * 0.9);
    CHECK(area <= 0.5 * 1.1);
    double aspect = double(b.width) / double(b.height);
    CHECK(aspect >= 0.5 * 0.9);
    CHECK(aspect <= 2.0 * 1.1);
  }
  // No box of 90 %+ of a 10x100 image has an aspect ratio within [3/4, 4/3]: the fallback clamps the
  // whole image's ratio to 4/3 and centres it: h = 10, w = round(13.33) = 13, left = (100 - 13) / 2.
  SampleRng rng(0, 0, 0);
  CropBox wide = random_resized_crop_box(10, 100, 0.9, 1.0, 3.0 / 4.0, 4.0 / 3.0, rng);
  CHECK(wide.top == 0);
  CHECK(wide.left == 43);
  CHECK(wide.height == 10);
  CHECK(wide.width == 13);
  CropBox tall = random_resized_crop_box(100, 10, 0.9, 1.0, 3.0 / 4.0, 4.0 / 3.0, rng);
  CHECK(tall.top == 43);
  CHECK(tall.left == 0);
  CHECK(tall.height == 13);
  CHECK(tall.width == 10);
  // Scale and ratio fixed at 1 on a square image: the whole image, resized.
  Image r = ramp(2, 4, 4);
  check_pixels(random_resized_crop(3, 3, 1.0, 1.0, 1.0, 1.0)->apply(r, rng), resize_bilinear(r, 3, 3).pixels);
  CHECK(random_resized_crop(224, 224)->name() == "random_resized_crop(224x224, scale 0.08..1, ratio 0.75..1.33333)");
  CHECK_THROWS_WITH_AS(random_resized_crop(8, 8, 0.5, 0.2),
                       "random_resized_crop(8x8, scale 0.5..0.2, ratio 0.75..1.33333): scale range must satisfy "
                       "0 < min <= max <= 1",
                       Error);
  CHECK_THROWS_WITH_AS(random_resized_crop(8, 8, 0.5, 1.0, 0.0, 1.0),
                       "random_resized_crop(8x8, scale 0.5..1, ratio 0..1): ratio range must satisfy 0 < min <= max",
                       Error);
}

TEST_CASE("pipeline: steps in order, pure in (seed, epoch, index)") {
  Pipeline p{random_crop(3, 3, 1), horizontal_flip(), normalize({0.5f}, {0.5f})};
  CHECK(p.describe() == "random_crop(3x3, padding 1) -> horizontal_flip(0.5) -> normalize(mean 0.5, std 0.5)");
  CHECK(Pipeline().describe() == "identity");
  Image img = ramp(1, 3, 3);
  for (float& v : img.pixels) v /= 8.0f;
  std::set<std::vector<float>> outputs;
  for (uint64_t index = 0; index < 50; ++index) {
    SampleRng a(11, 2, index), b(11, 2, index);
    std::vector<float> first = p(img, a).pixels;
    CHECK(first == p(img, b).pixels);
    outputs.insert(first);
  }
  CHECK(outputs.size() > 10);  // different indices draw different augmentations
  SampleRng e2(11, 2, 5), e3(11, 3, 5);
  std::vector<double> d2, d3;
  for (int k = 0; k < 8; ++k) d2.push_back(e2.uniform()), d3.push_back(e3.uniform());
  CHECK(d2 != d3);  // another epoch, another stream
}

TEST_CASE("SampleRng and epoch_order") {
  SampleRng rng(1, 2, 3);
  std::set<int64_t> values;
  for (int k = 0; k < 400; ++k) {
    int64_t v = rng.integer(-2, 2);
    CHECK(v >= -2);
    CHECK(v <= 2);
    values.insert(v);
    double u = rng.uniform(3.0, 4.0);
    CHECK(u >= 3.0);
    CHECK(u < 4.0);
  }
  CHECK(values.size() == 5);
  CHECK_THROWS_WITH_AS(rng.integer(2, 1), "SampleRng::integer: bad range [2, 1]", Error);

  std::vector<int64_t> a = epoch_order(1000, 42, 0, true), b = epoch_order(1000, 42, 0, true);
  std::vector<int64_t> c = epoch_order(1000, 42, 1, true), d = epoch_order(1000, 43, 0, true);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), int64_t(0));
  CHECK(sorted == identity);
  CHECK(a != identity);
  CHECK(epoch_order(1000, 42, 0, false) == identity);
  CHECK(epoch_order(1, 42, 0, true) == std::vector<int64_t>{0});
  // Each of 3 elements lands first about a third of the time over many epochs.
  std::vector<int> first(3, 0);
  for (uint64_t e = 0; e < 3000; ++e) first[size_t(epoch_order(3, 9, e, true)[0])]++;
  for (int f : first) CHECK(std::abs(f - 1000) < 120);
}
