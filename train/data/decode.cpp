// stb_image decoding restricted to JPEG and PNG; the single translation unit that compiles stb_image.
#include "train/data/decode.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO  // we read files ourselves, to report errno text for missing files
#include <stb/stb_image.h>

namespace scpn::data {

void validate(const DecodeOptions& options, const std::string& where) {
  SCPN_CHECK(options.channels == 1 || options.channels == 3, where, ": decode channels must be 1 or 3, got ",
             options.channels);
  SCPN_CHECK(options.max_dim > 0, where, ": decode max_dim must be positive, got ", options.max_dim);
}

namespace {

std::vector<unsigned char> read_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw SampleError(path, cat("cannot open: ", std::strerror(errno)));
  std::vector<unsigned char> bytes;
  unsigned char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  if (std::ferror(f.get())) throw SampleError(path, cat("cannot read: ", std::strerror(errno)));
  return bytes;
}

bool is_jpeg(const std::vector<unsigned char>& b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}
bool is_png(const std::vector<unsigned char>& b) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return b.size() >= 8 && std::memcmp(b.data(), sig, 8) == 0;
}

// stb keeps its last failure reason in a thread-local that it never clears, and some decoder paths
// fail without setting one, so a stale reason would otherwise be reported. This translation unit
// holds stb's implementation, which is what makes its internal variable reachable here.
void clear_stb_reason() { stbi__g_failure_reason = nullptr; }

// The reason of the failed decode, where stb gave one. stb probes PNG before JPEG, so for a JPEG whose
// decoder failed silently the reason left is the PNG probe's "bad png sig", which says nothing.
std::string stb_reason(bool jpeg) {
  const char* r = stbi_failure_reason();
  if (!r || !*r || (jpeg && std::strcmp(r, "bad png sig") == 0)) return "corrupt or truncated data";
  return r;
}

}  // namespace

Image image_from_hwc_u8(const unsigned char* pixels, int64_t height, int64_t width, int64_t channels) {
  Image img(channels, height, width);
  for (int64_t c = 0; c < channels; ++c) {
    float* out = img.plane(c);
    for (int64_t p = 0; p < height * width; ++p) out[p] = byte_to_unit(pixels[p * channels + c]);
  }
  return img;
}

Image decode_image_file(const std::string& path, const DecodeOptions& options) {
  std::vector<unsigned char> bytes = read_file(path);
  const bool jpeg = is_jpeg(bytes);
  if (!jpeg && !is_png(bytes)) throw SampleError(path, "not a JPEG or PNG file");
  // stb takes an int length; a >2 GiB "image" is corrupt for our purposes.
  if (bytes.size() > size_t(INT_MAX)) throw SampleError(path, cat("file too large (", bytes.size(), " bytes)"));
  const int len = int(bytes.size());
  int w = 0, h = 0, file_channels = 0;
  // The header alone gives the size, so the cap is enforced before any pixel memory is allocated.
  if (stbi_info_from_memory(bytes.data(), len, &w, &h, &file_channels)) {
    if (w > options.max_dim || h > options.max_dim)
      throw SampleError(path, cat(w, "x", h, " exceeds the dimension cap ", options.max_dim));
  }
  // An unreadable header makes the decoder below fail at the header too, allocating nothing large, and
  // it says why where stbi_info only reports "unknown image type".
  clear_stb_reason();
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), len, &w, &h, &file_channels, options.channels), &stbi_image_free);
  if (!pixels) throw SampleError(path, cat("cannot decode: ", stb_reason(jpeg)));
  return image_from_hwc_u8(pixels.get(), h, w, options.channels);
}

}  // namespace scpn::data
