// IDX files (MNIST / Fashion-MNIST): an images file (magic 0x00000803, N x rows x cols unsigned bytes)
// and a labels file (magic 0x00000801, N unsigned bytes), each gzip-compressed or plain (zlib reads
// both). Everything is read into memory at construction and validated; load() only converts bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/data/dataset.h"

namespace scpn::data {

// Limits on what an IDX header may claim, checked from the header before any pixel memory is allocated
// (Fashion-MNIST's training set is 47 MB of pixels, 28 x 28 each). The pixels themselves are read in
// chunks, so a header that claims more than the file holds fails as truncated before it is allocated.
inline constexpr int64_t kMaxIdxImageSide = 16384;              // rows and columns of one image
inline constexpr int64_t kMaxIdxPixelBytes = int64_t(8) << 30;  // all images read: 8 GiB

struct IdxOptions {
  int64_t limit = -1;       // read only the first `limit` samples (-1: all of them)
  int channels = 1;         // 1, or 3 to replicate the grey channel for RGB models
  int64_t num_classes = 0;  // 0: max label + 1; otherwise labels must lie below it
};

class IdxDataset : public Dataset {
 public:
  // Throws scpn::Error naming the file and the reason (missing, bad magic, bad dimensions, an image side
  // over kMaxIdxImageSide, pixels over kMaxIdxPixelBytes, truncated, trailing bytes, image and label
  // counts that differ, a label out of range, bad options).
  IdxDataset(const std::string& images_path, const std::string& labels_path, IdxOptions options = {});

  // The standard file names in a folder: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
  static IdxDataset from_folder(const std::string& dir, bool train, IdxOptions options = {});

  int64_t size() const override { return count_; }
  int64_t num_classes() const override { return num_classes_; }
  int64_t label(int64_t i) const override;
  Image load(int64_t i) const override;
  std::string describe(int64_t i) const override;

  int64_t height() const { return rows_; }
  int64_t width() const { return cols_; }

 private:
  std::string images_path_;
  int64_t count_ = 0, rows_ = 0, cols_ = 0, num_classes_ = 0;
  int channels_ = 1;
  std::vector<uint8_t> pixels_;  // count x rows x cols
  std::vector<uint8_t> labels_;
};

}  // namespace scpn::data
