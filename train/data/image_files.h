// Datasets of image files on disk, decoded on demand (decode.h): a class-per-folder tree, a list file
// of `path label` lines, DeepFashion In-shop's list_eval_partition.txt and a GLDv2-style train.csv.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/data/dataset.h"
#include "train/data/decode.h"

namespace scpn::data {

// Limits on the list and csv files below, checked before their contents become entries: the size from
// the file system before anything is read, the line count on the bytes read, before any line is split.
// GLDv2's train.csv (4.1 million lines, about 0.5 GB) stays well inside both.
inline constexpr int64_t kMaxListFileBytes = int64_t(2) << 30;  // 2 GiB
inline constexpr int64_t kMaxListLines = 10'000'000;
// A list file's labels are class numbers 0..max: one class name is kept per number, so a label above this
// (a corrupt line) is refused instead of allocating billions of classes.
inline constexpr int64_t kMaxListLabel = 10'000'000;

struct ImageFile {
  std::string path;
  int64_t label = 0;
};

// Every source is parsed up front into (path, label) pairs, so that a bad configuration fails before any
// training starts; a file is only opened by load(), where the bad-image policy applies.
class ImageFileDataset : public Dataset {
 public:
  // class_names[label] names each class; every label must lie in [0, class_names.size()).
  ImageFileDataset(std::vector<ImageFile> files, std::vector<std::string> class_names, DecodeOptions decode);

  int64_t size() const override { return int64_t(files_.size()); }
  int64_t num_classes() const override { return int64_t(class_names_.size()); }
  int64_t label(int64_t i) const override;
  Image load(int64_t i) const override;
  std::string describe(int64_t i) const override { return path(i); }

  const std::string& path(int64_t i) const;
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  std::vector<ImageFile> files_;
  std::vector<std::string> class_names_;
  DecodeOptions decode_;
  const ImageFile& file(int64_t i) const;
};

// root/<class>/**/<file>.{jpg,jpeg,png} (extensions in any case; hidden entries ignored). Classes are
// the folder names in byte order, files in path order, so labels and indices never depend on the
// order the file system lists them in.
ImageFileDataset image_folder_dataset(const std::string& root, DecodeOptions decode = {});

// One sample per non-blank line: `<path> <label>`, the label being the last field (so paths may hold
// spaces) and a non-negative integer; relative paths are under root. Classes: 0 .. max label.
ImageFileDataset list_file_dataset(const std::string& list_path, const std::string& root,
                                   DecodeOptions decode = {});

// DeepFashion In-shop list_eval_partition.txt: a count line, the header line
// `image_name item_id evaluation_status`, then `<image path> <item id> <train|query|gallery>` lines;
// paths are under root. Labels are item ids numbered densely in sorted order: over the train items for
// the train split, and over the query and gallery items together for those two splits, so that a query
// and its matching gallery images share a label.
enum class InShopSplit { train, query, gallery };
ImageFileDataset inshop_dataset(const std::string& partition_path, const std::string& root, InShopSplit split,
                                DecodeOptions decode = {});

// GLDv2 train.csv: a header naming the columns `id` and `landmark_id` (others such as `url` are
// ignored), then one line per image; the image lives at root/<id[0]>/<id[1]>/<id[2]>/<id>.jpg.
// Landmark ids are numbered densely in increasing order.
ImageFileDataset gldv2_dataset(const std::string& csv_path, const std::string& root, DecodeOptions decode = {});

}  // namespace scpn::data
