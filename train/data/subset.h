// A view of n samples of a dataset spread evenly over it (sample i of the view is sample ⌊i·size/n⌋ of
// the source), for data.train_limit / data.test_limit on image datasets: their samples are sorted by class,
// so an evenly spaced subset keeps every class in proportion where the first n would keep only the first
// classes. Labels and classes are the source's. Tested by tests/train/test_data_sources.cpp.
#pragma once
#include <memory>

#include "train/data/dataset.h"

namespace scpn::data {

class EvenlySpacedSubset : public Dataset {
 public:
  // n in [1, source size]; the source must outlive nothing: the view shares it.
  EvenlySpacedSubset(std::shared_ptr<const Dataset> source, int64_t n);
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return source_->num_classes(); }
  int64_t label(int64_t i) const override { return source_->label(source_index(i)); }
  Image load(int64_t i) const override { return source_->load(source_index(i)); }
  std::string describe(int64_t i) const override { return source_->describe(source_index(i)); }
  int64_t source_index(int64_t i) const;

 private:
  std::shared_ptr<const Dataset> source_;
  int64_t n_;
};

// The source itself when limit is 0 or not below its size, else an EvenlySpacedSubset of `limit` samples.
std::shared_ptr<Dataset> limit_evenly(std::shared_ptr<Dataset> source, int64_t limit);

}  // namespace scpn::data
