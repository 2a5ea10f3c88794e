// Files for the data tests, written by the tests themselves: a temporary folder, PNG/JPEG images
// (stb_image_write, compiled privately into each test that includes this header), raw bytes and
// gzip-compressed IDX files.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#include "kernels/common/error.h"

namespace scpn::test {

namespace fs = std::filesystem;

// A fresh folder under the system temp folder, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() / cat("scpn_test_", tag, "_", ::getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  // The path of `name` inside the folder, creating its parent folders.
  std::string file(const std::string& name) const {
    fs::path p = path / name;
    fs::create_directories(p.parent_path());
    return p.string();
  }
  std::string str() const { return path.string(); }
};

inline void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw Error("cannot write " + path);
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error("cannot write " + path);
}

inline std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Interleaved (HWC) 8-bit pixels with `channels` of 1, 3 or 4.
inline void write_png(const std::string& path, int width, int height, int channels,
                      const std::vector<unsigned char>& pixels) {
  if (!stbi_write_png(path.c_str(), width, height, channels, pixels.data(), width * channels))
    throw Error("cannot write " + path);
}

inline void write_jpeg(const std::string& path, int width, int height, int channels,
                       const std::vector<unsigned char>& pixels, int quality = 100) {
  if (!stbi_write_jpg(path.c_str(), width, height, channels, pixels.data(), quality))
    throw Error("cannot write " + path);
}

// An IDX file: magic (0, 0, 0x08, rank), big-endian dimensions, then `data`; gzip-compressed unless
// `plain`. `magic_rank` may differ from dims.size() to make broken files.
inline void write_idx(const std::string& path, int magic_rank, const std::vector<uint32_t>& dims,
                      const std::vector<unsigned char>& data, bool plain = false) {
  std::vector<unsigned char> bytes = {0, 0, 0x08, static_cast<unsigned char>(magic_rank)};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<unsigned char>(d >> shift));
  bytes.insert(bytes.end(), data.begin(), data.end());
  if (plain) return write_bytes(path, bytes);
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f || gzwrite(f, bytes.data(), unsigned(bytes.size())) != int(bytes.size())) throw Error("cannot write " + path);
  gzclose(f);
}

}  // namespace scpn::test
