// ClassSubset, a view of the samples of some classes of a dataset, relabelled 0..k-1, and the fixed
// class-disjoint split it serves (GLDv2's held-out landmarks). Tested by tests/train/test_data_sources.cpp.
#pragma once
#include <memory>
#include <vector>

#include "train/data/dataset.h"

namespace scpn::data {

class ClassSubset : public Dataset {
 public:
  // `classes`: distinct source labels; the view's label k is classes[k]. Sample order is the source's.
  ClassSubset(std::shared_ptr<const Dataset> source, const std::vector<int64_t>& classes);
  int64_t size() const override { return int64_t(indices_.size()); }
  int64_t num_classes() const override { return num_classes_; }
  int64_t label(int64_t i) const override { return new_label_[size_t(source_->label(source_index(i)))]; }
  Image load(int64_t i) const override { return source_->load(source_index(i)); }
  std::string describe(int64_t i) const override { return source_->describe(source_index(i)); }
  int64_t source_index(int64_t i) const;

 private:
  std::shared_ptr<const Dataset> source_;
  std::vector<int64_t> indices_;    // source sample of each view sample
  std::vector<int64_t> new_label_;  // per source class: its view label, or -1
  int64_t num_classes_ = 0;
};

// A class-disjoint split of `num_classes` classes: round(fraction · num_classes) of them (at least one,
// at most all but one) held out, chosen by a fixed pseudo-random order that depends on nothing but the
// class count, so every run and every tool sees the same split. Both lists ascending.
struct ClassSplit {
  std::vector<int64_t> kept, held_out;
};
ClassSplit split_classes(int64_t num_classes, double fraction);

}  // namespace scpn::data
