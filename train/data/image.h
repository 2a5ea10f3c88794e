// The image type every data source produces and every transform consumes: float32 in [0, 1] (before
// normalisation), channel-major (CHW) so that a finished sample is copied into an NCHW batch unchanged.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace scpn::data {

struct Image {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> pixels;  // [channels][height][width]

  Image() = default;
  Image(int64_t c, int64_t h, int64_t w, float fill = 0.0f)
      : channels(c), height(h), width(w), pixels(size_t(c * h * w), fill) {}

  float& at(int64_t c, int64_t y, int64_t x) { return pixels[size_t((c * height + y) * width + x)]; }
  float at(int64_t c, int64_t y, int64_t x) const { return pixels[size_t((c * height + y) * width + x)]; }
  float* plane(int64_t c) { return pixels.data() + c * height * width; }
  const float* plane(int64_t c) const { return pixels.data() + c * height * width; }
};

// An 8-bit pixel value as v / 255 exactly (a table: the same result as the division, without it).
inline float byte_to_unit(uint8_t v) {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[size_t(i)] = float(i) / 255.0f;
    return t;
  }();
  return table[v];
}

}  // namespace scpn::data
