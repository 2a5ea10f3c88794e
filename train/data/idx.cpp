// IDX reading through zlib's gz* interface, with every header field and length checked.
#include "train/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/error.h"

namespace scpn::data {

namespace {

// One open IDX file; errors name the file.
gzFile open_gz(const std::string& path) {
  errno = 0;  // gzopen leaves errno set only when open() itself failed
  return gzopen(path.c_str(), "rb");
}

class IdxReader {
 public:
  explicit IdxReader(std::string path) : path_(std::move(path)), file_(open_gz(path_), &gzclose) {
    if (!file_) fail(cat("cannot open: ", errno ? std::strerror(errno) : "zlib could not allocate"));
  }

  [[noreturn]] void fail(const std::string& reason) const { throw Error(cat("IDX file ", path_, ": ", reason)); }

  // Reads the magic number and the dimensions; checks the element type (unsigned byte) and rank.
  std::vector<int64_t> header(int expected_rank, const char* kind) {
    unsigned char magic[4];
    read_exact(magic, 4, "header");
    uint32_t value = big_endian(magic);
    uint32_t expected = 0x00000800u | uint32_t(expected_rank);
    if (value != expected)
      fail(cat("magic 0x", hex(value), " is not an IDX ", kind, " file (expected 0x", hex(expected),
               ": unsigned bytes, ", expected_rank, " dimension", expected_rank > 1 ? "s" : "", ")"));
    std::vector<int64_t> dims(static_cast<size_t>(expected_rank));
    for (auto& d : dims) {
      unsigned char b[4];
      read_exact(b, 4, "header");
      d = big_endian(b);
    }
    return dims;
  }

  // Reads `bytes` bytes into `out`, growing it a chunk at a time: memory follows the data actually
  // present, never the length a (possibly corrupt) header claims.
  void read_growing(std::vector<uint8_t>& out, size_t bytes, const char* what) {
    constexpr size_t kChunk = size_t(64) << 20;
    out.clear();
    while (out.size() < bytes) {
      size_t done = out.size(), chunk = std::min(bytes - done, kChunk);
      out.resize(done + chunk);
      int got = gzread(file_.get(), out.data() + done, unsigned(chunk));
      if (got < 0) fail(cat("cannot read ", what, ": ", zlib_error()));
      out.resize(done + size_t(got));
      if (got == 0) fail(cat("truncated: expected ", bytes, " bytes of ", what, ", got ", out.size()));
    }
  }

  void read_exact(void* dst, size_t bytes, const char* what) {
    auto* out = static_cast<unsigned char*>(dst);
    size_t done = 0;
    while (done < bytes) {
      unsigned chunk = unsigned(std::min<size_t>(bytes - done, size_t(1) << 30));
      int got = gzread(file_.get(), out + done, chunk);
      if (got < 0) fail(cat("cannot read ", what, ": ", zlib_error()));
      if (got == 0) fail(cat("truncated: expected ", bytes, " bytes of ", what, ", got ", done));
      done += size_t(got);
    }
  }

  bool at_end() {
    unsigned char extra;
    int got = gzread(file_.get(), &extra, 1);
    if (got < 0) fail(cat("cannot read: ", zlib_error()));
    return got == 0;
  }

 private:
  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;

  static uint32_t big_endian(const unsigned char* b) {
    return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | uint32_t(b[3]);
  }
  static std::string hex(uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08X", v);
    return buf;
  }
  std::string zlib_error() {
    int code = 0;
    const char* msg = gzerror(file_.get(), &code);
    std::string text = msg && *msg ? msg : "unknown zlib error";
    // zlib prefixes the path, which our message already names.
    if (text.rfind(path_ + ": ", 0) == 0) text.erase(0, path_.size() + 2);
    return text;
  }
};

}  // namespace

IdxDataset::IdxDataset(const std::string& images_path, const std::string& labels_path, IdxOptions options)
    : images_path_(images_path), channels_(options.channels) {
  SCPN_CHECK(options.limit == -1 || options.limit > 0, "IDX dataset ", images_path,
             ": limit must be -1 (all) or positive, got ", options.limit);
  SCPN_CHECK(options.channels == 1 || options.channels == 3, "IDX dataset ", images_path,
             ": channels must be 1 or 3, got ", options.channels);
  SCPN_CHECK(options.num_classes >= 0, "IDX dataset ", images_path, ": num_classes must be >= 0, got ",
             options.num_classes);

  IdxReader images(images_path);
  std::vector<int64_t> idims = images.header(3, "images");
  IdxReader labels(labels_path);
  std::vector<int64_t> ldims = labels.header(1, "labels");
  if (idims[1] == 0 || idims[2] == 0) images.fail(cat("image size ", idims[1], "x", idims[2], " is empty"));
  if (idims[0] != ldims[0])
    throw Error(cat("IDX files disagree: ", images_path, " has ", idims[0], " images but ", labels_path,
                    " has ", ldims[0], " labels"));
  if (idims[0] == 0) images.fail("contains no images");

  if (idims[1] > kMaxIdxImageSide || idims[2] > kMaxIdxImageSide)
    images.fail(cat("image size ", idims[1], "x", idims[2], " exceeds the limit of ", kMaxIdxImageSide,
                    " pixels per side"));

  rows_ = idims[1];
  cols_ = idims[2];
  count_ = options.limit < 0 ? idims[0] : std::min(options.limit, idims[0]);
  // count < 2^32 and sides <= 2^14: the product fits in 64 bits.
  const int64_t pixel_bytes = count_ * rows_ * cols_;
  if (pixel_bytes > kMaxIdxPixelBytes)
    images.fail(cat(count_, " images of ", rows_, "x", cols_, " are ", pixel_bytes, " bytes, over the limit of ",
                    kMaxIdxPixelBytes, " bytes (", kMaxIdxPixelBytes >> 30, " GiB)"));
  images.read_growing(pixels_, size_t(pixel_bytes), "pixels");
  labels.read_growing(labels_, size_t(count_), "labels");
  // Only a full read can prove the lengths match the header; a limited read stops early by design.
  if (count_ == idims[0]) {
    if (!images.at_end()) images.fail(cat("has bytes after the ", count_, " images its header declares"));
    if (!labels.at_end()) labels.fail(cat("has bytes after the ", count_, " labels its header declares"));
  }

  int64_t max_label = *std::max_element(labels_.begin(), labels_.end());
  if (options.num_classes == 0) {
    num_classes_ = max_label + 1;
  } else {
    num_classes_ = options.num_classes;
    for (int64_t i = 0; i < count_; ++i)
      if (labels_[size_t(i)] >= num_classes_)
        labels.fail(cat("label ", int(labels_[size_t(i)]), " of sample ", i, " is not below num_classes ",
                        num_classes_));
  }
}

IdxDataset IdxDataset::from_folder(const std::string& dir, bool train, IdxOptions options) {
  std::string prefix = dir + "/" + (train ? "train" : "t10k");
  return IdxDataset(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", options);
}

int64_t IdxDataset::label(int64_t i) const {
  SCPN_CHECK(i >= 0 && i < count_, "IDX dataset ", images_path_, ": index ", i, " out of range [0, ", count_, ")");
  return labels_[size_t(i)];
}

Image IdxDataset::load(int64_t i) const {
  SCPN_CHECK(i >= 0 && i < count_, "IDX dataset ", images_path_, ": index ", i, " out of range [0, ", count_, ")");
  Image img(channels_, rows_, cols_);
  const uint8_t* src = pixels_.data() + i * rows_ * cols_;
  for (int64_t c = 0; c < channels_; ++c) {
    float* dst = img.plane(c);
    for (int64_t p = 0; p < rows_ * cols_; ++p) dst[p] = byte_to_unit(src[p]);
  }
  return img;
}

std::string IdxDataset::describe(int64_t i) const { return cat(images_path_, "[", i, "]"); }

}  // namespace scpn::data
