// The images a retrieval evaluation embeds, under two protocols: one set (Fashion-MNIST, image folders,
// GLDv2's held-out landmarks) where every item queries all the others, and a query split ranked against
// a separate gallery split (In-shop), where a query's relevant items are the gallery images of its item.
#pragma once
#include <cstdint>
#include <vector>

#include "train/eval/image_set.h"

namespace scpn::train {

struct RetrievalSet {
  ImageSet query_images;  // Nq images
  std::vector<int64_t> query_labels;
  ImageSet gallery_images;  // Ng images; undefined for one set (the queries are the gallery)
  std::vector<int64_t> gallery_labels;
  // The labels are the classifier's classes (Fashion-MNIST, image folders), so accuracy is defined; not for
  // In-shop's evaluation items or GLDv2's held-out landmarks.
  bool labels_are_classes = true;

  bool one_set() const { return !gallery_images.defined(); }
  bool loaded() const { return query_images.defined() && !query_labels.empty(); }
  bool in_memory() const { return query_images.in_memory() && (one_set() || gallery_images.in_memory()); }
  bool has_accuracy() const { return labels_are_classes; }
  const std::vector<int64_t>& gallery_label_list() const { return one_set() ? query_labels : gallery_labels; }
  int64_t queries() const { return int64_t(query_labels.size()); }
  int64_t gallery_size() const { return int64_t(gallery_label_list().size()); }
};

}  // namespace scpn::train
