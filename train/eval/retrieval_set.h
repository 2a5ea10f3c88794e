// The images a retrieval evaluation embeds. Two protocols: one set (Fashion-MNIST, image folders), where
// every item queries all the others; and a query split ranked against a separate gallery split (In-shop),
// where a query's relevant items are the gallery images of the same item. Labels of one set are the
// training classes, so classification accuracy means something there; a query/gallery split's labels are
// item ids unseen in training, so it has no accuracy.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace scpn::train {

struct RetrievalSet {
  Tensor query_images;  // [Nq, C, H, W]
  std::vector<int64_t> query_labels;
  Tensor gallery_images;  // [Ng, C, H, W]; undefined for one set (the queries are the gallery)
  std::vector<int64_t> gallery_labels;

  bool one_set() const { return !gallery_images.defined(); }
  bool loaded() const { return query_images.defined() && !query_labels.empty(); }
  // The labels are the classifier's classes (one set): accuracy is defined.
  bool has_accuracy() const { return one_set(); }
  const Tensor& gallery() const { return one_set() ? query_images : gallery_images; }
  const std::vector<int64_t>& gallery_label_list() const { return one_set() ? query_labels : gallery_labels; }
  int64_t queries() const { return int64_t(query_labels.size()); }
  int64_t gallery_size() const { return int64_t(gallery_label_list().size()); }
};

}  // namespace scpn::train
