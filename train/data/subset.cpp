#include "train/data/subset.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/random.h"

namespace scpn::data {

ClassSubset::ClassSubset(std::shared_ptr<const Dataset> source, const std::vector<int64_t>& classes)
    : source_(std::move(source)) {
  SCPN_CHECK(source_, "ClassSubset: no source dataset");
  new_label_.assign(size_t(source_->num_classes()), -1);
  for (int64_t c : classes) {
    SCPN_CHECK(c >= 0 && c < source_->num_classes(), "ClassSubset: class ", c, " out of range [0, ",
               source_->num_classes(), ")");
    SCPN_CHECK(new_label_[size_t(c)] < 0, "ClassSubset: class ", c, " listed twice");
    new_label_[size_t(c)] = num_classes_++;
  }
  for (int64_t i = 0; i < source_->size(); ++i)
    if (new_label_[size_t(source_->label(i))] >= 0) indices_.push_back(i);
}

int64_t ClassSubset::source_index(int64_t i) const {
  SCPN_CHECK(i >= 0 && i < size(), "ClassSubset: index ", i, " out of range [0, ", size(), ")");
  return indices_[size_t(i)];
}

ClassSplit split_classes(int64_t num_classes, double fraction) {
  SCPN_CHECK(num_classes >= 2, "split_classes: ", num_classes, " classes cannot be split in two");
  SCPN_CHECK(fraction > 0 && fraction < 1, "split_classes: fraction ", fraction, " must be in (0, 1)");
  const int64_t held = std::clamp<int64_t>(std::llround(fraction * double(num_classes)), 1, num_classes - 1);
  // A fixed key: the split is a property of the dataset, not of a run's seed.
  constexpr uint64_t kSplitKey = 0x5C9E'5917'0000'0001ull;
  std::vector<std::pair<double, int64_t>> order;
  for (int64_t c = 0; c < num_classes; ++c) order.emplace_back(philox_uniform(kSplitKey, 0, uint64_t(c)), c);
  std::sort(order.begin(), order.end());
  ClassSplit split;
  for (int64_t k = 0; k < num_classes; ++k) (k < held ? split.held_out : split.kept).push_back(order[size_t(k)].second);
  std::sort(split.kept.begin(), split.kept.end());
  std::sort(split.held_out.begin(), split.held_out.end());
  return split;
}

}  // namespace scpn::data
