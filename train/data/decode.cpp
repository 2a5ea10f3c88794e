// stb_image decoding restricted to JPEG and PNG; the single translation unit that compiles stb_image.
#include "train/data/decode.h"

#include <sys/stat.h>

#include <algorithm>
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

// The whole file, refused from its size (fstat) before anything is read when it exceeds
// kMaxImageFileBytes. Reading stops at the limit too, for files whose size fstat cannot tell (a pipe).
std::vector<unsigned char> read_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw SampleError(path, cat("cannot open: ", std::strerror(errno)));
  auto too_large = [&](int64_t bytes) {
    return SampleError(path, cat("file is ", bytes, " bytes, over the limit of ", kMaxImageFileBytes, " bytes (",
                                 kMaxImageFileBytes >> 20, " MiB) for an image file"));
  };
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > kMaxImageFileBytes)
    throw too_large(int64_t(st.st_size));
  std::vector<unsigned char> bytes;
  unsigned char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) {
    if (int64_t(bytes.size() + n) > kMaxImageFileBytes) throw too_large(int64_t(bytes.size() + n));
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
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
// decoder failed silently the reason left is the PNG probe's "bad png sig", which says nothing. Some
// reasons quote bytes of the file (an unknown PNG chunk's type), so anything but printable ASCII becomes
// '?': the message stays one line of valid text wherever it is printed or stored.
std::string stb_reason(bool jpeg) {
  const char* r = stbi_failure_reason();
  if (!r || !*r || (jpeg && std::strcmp(r, "bad png sig") == 0)) return "corrupt or truncated data";
  std::string text = r;
  for (char& c : text)
    if (c < 0x20 || c > 0x7e) c = '?';
  return text;
}

// stb_image 2.27 (Debian 12's) trusts the code counts of a JPEG Huffman table (DHT segment): counts that
// sum past 256 make it write past the table's arrays, in stbi_info as well as in the decoder. This walks
// the file's marker segments (and the entropy-coded data between them, where progressive files put more
// tables) and returns the reason to refuse the first table with more than 256 codes, or "" when none has.
std::string oversized_huffman_table(const std::vector<unsigned char>& b) {
  size_t i = 2;  // after SOI
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) {  // entropy-coded data: skip to the next marker (0xFF00 is a data byte, RSTn no marker)
      ++i;
      continue;
    }
    const unsigned char marker = b[i + 1];
    if (marker == 0xFF || marker == 0x00 || (marker >= 0xD0 && marker <= 0xD8)) {
      i += marker == 0xFF ? 1 : 2;  // fill byte, stuffed data byte, RSTn or SOI: no length follows
      continue;
    }
    if (marker == 0xD9) break;  // EOI
    const size_t length = size_t(b[i + 2]) << 8 | b[i + 3], end = std::min(b.size(), i + 2 + length);
    if (marker == 0xC4) {
      // Like stb, a table cut off by the end of the file counts its missing bytes as zeros.
      for (size_t t = i + 4; t < end;) {
        size_t codes = 0;
        for (size_t k = 1; k <= 16 && t + k < b.size(); ++k) codes += b[t + k];
        if (codes > 256) return cat("Huffman table with ", codes, " codes (a JPEG table holds at most 256)");
        t += 17 + codes;
      }
    }
    i += 2 + length;
  }
  return "";
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
  static_assert(kMaxImageFileBytes <= INT_MAX, "stb takes the length as an int");
  const int len = int(bytes.size());
  if (jpeg)
    if (std::string reason = oversized_huffman_table(bytes); !reason.empty())
      throw SampleError(path, "cannot decode: " + reason);
  int w = 0, h = 0, file_channels = 0;
  // The header alone gives the size, so the cap is enforced before any pixel memory is allocated. A PNG's
  // IHDR is read here, since stb refuses the largest claims itself with a reason that names no limit.
  auto refuse_dims = [&](int64_t width, int64_t height) {
    if (width > options.max_dim || height > options.max_dim)
      throw SampleError(path, cat(width, "x", height, " exceeds the dimension cap ", options.max_dim));
  };
  if (!jpeg && bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return int64_t(bytes[at]) << 24 | int64_t(bytes[at + 1]) << 16 | int64_t(bytes[at + 2]) << 8 | bytes[at + 3];
    };
    refuse_dims(be32(16), be32(20));
  }
  if (stbi_info_from_memory(bytes.data(), len, &w, &h, &file_channels)) refuse_dims(w, h);
  // An unreadable header makes the decoder below fail at the header too, allocating nothing large, and
  // it says why where stbi_info only reports "unknown image type".
  clear_stb_reason();
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), len, &w, &h, &file_channels, options.channels), &stbi_image_free);
  if (!pixels) throw SampleError(path, cat("cannot decode: ", stb_reason(jpeg)));
  return image_from_hwc_u8(pixels.get(), h, w, options.channels);
}

}  // namespace scpn::data
