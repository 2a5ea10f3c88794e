// Decoding image files (JPEG and PNG only) into Images with stb_image: a cap on the dimensions, checked
// from the header before any pixel memory is allocated, and conversion to the model's channel count.
// Failures of one file are SampleErrors, which the loader's bad-image policy may skip.
#pragma once
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "train/data/image.h"

namespace scpn::data {

// One sample could not be read: a missing, unreadable, corrupt or oversized file. The message is
// "image <path>: <reason>".
struct SampleError : Error {
  std::string path, reason;
  SampleError(std::string path_, std::string reason_)
      : Error("image " + path_ + ": " + reason_), path(std::move(path_)), reason(std::move(reason_)) {}
};

// The largest image file read at all: checked from the file's size before its bytes are read, so a
// huge or corrupt file never becomes an allocation. A JPEG or PNG within the default dimension cap
// (8192 x 8192) stays far below it.
inline constexpr int64_t kMaxImageFileBytes = int64_t(256) << 20;  // 256 MiB

struct DecodeOptions {
  int channels = 3;         // 1 (grey) or 3 (RGB); other files are converted (stb: luma / replicate)
  int64_t max_dim = 8192;   // width and height above this are rejected (corrupt headers, huge files)
};

// Throws scpn::Error when the options themselves are invalid (named as `where`).
void validate(const DecodeOptions& options, const std::string& where);

// Reads and decodes one file. Throws SampleError naming the path and the reason: "cannot open: <errno
// text>", "file is N bytes, over the limit of 268435456 bytes (256 MiB) for an image file", "not a JPEG or
// PNG file", "cannot decode: <stb's reason>" or "WxH exceeds the dimension cap N".
Image decode_image_file(const std::string& path, const DecodeOptions& options);

// Converts interleaved 8-bit pixels (HWC, as decoders produce) into a CHW float Image in [0, 1].
Image image_from_hwc_u8(const unsigned char* pixels, int64_t height, int64_t width, int64_t channels);

}  // namespace scpn::data
