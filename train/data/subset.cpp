#include "train/data/subset.h"

#include "kernels/common/error.h"

namespace scpn::data {

EvenlySpacedSubset::EvenlySpacedSubset(std::shared_ptr<const Dataset> source, int64_t n)
    : source_(std::move(source)), n_(n) {
  SCPN_CHECK(source_, "EvenlySpacedSubset: no source dataset");
  SCPN_CHECK(n_ >= 1 && n_ <= source_->size(), "EvenlySpacedSubset: ", n_, " samples asked of a dataset of ",
             source_->size());
}

int64_t EvenlySpacedSubset::source_index(int64_t i) const {
  SCPN_CHECK(i >= 0 && i < n_, "EvenlySpacedSubset: index ", i, " out of range [0, ", n_, ")");
  // i·size/n < size for i < n; 128-bit-free because sizes stay far below 2^31 · 2^31.
  return i * source_->size() / n_;
}

std::shared_ptr<Dataset> limit_evenly(std::shared_ptr<Dataset> source, int64_t limit) {
  if (limit <= 0 || limit >= source->size()) return source;
  return std::make_shared<EvenlySpacedSubset>(std::move(source), limit);
}

}  // namespace scpn::data
