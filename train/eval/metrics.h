// Retrieval evaluation (SCPN_METHOD.md §6): mAP over the full ranking, Recall@K, mAP@k (GLDv2's mAP@100),
// the compatibility matrix across capacities, and top-1 accuracy. Tested by tests/train/test_metrics.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace scpn::train {

class Progress;

struct RetrievalOptions {
  // Query i and gallery item i are the same item (one set embedded twice, or once): item i is left out of
  // query i's ranking. Needs Nq == Ng.
  bool same_set = false;
  std::vector<int64_t> recall_k = {1, 2, 4, 8};  // each >= 1
  int64_t map_cutoff = 100;                      // k of mAP@k (GLDv2: 100), >= 1
  // Similarities are computed for blocks of queries with rows · Ng <= block_elements (at least one row),
  // so memory stays bounded for large galleries: the default, 2^25, is 128 MiB of f32 similarities.
  int64_t block_elements = int64_t(1) << 25;
  bool keep_per_query = false;  // fill RetrievalResult::per_query_ap
  Progress* progress = nullptr;  // optional: advanced by each block's ranked queries (train/progress.h)
};

// Means are over the evaluated queries: those with at least one relevant gallery item (same label; the
// query itself excluded under same_set). Queries without one are left out of every mean and counted in
// no_relevant. All zero when no query is evaluated.
struct RetrievalResult {
  double map = 0;            // AP over the full ranking: (1/R) Σ over relevant items of precision at their rank
  double map_at_cutoff = 0;  // (1/min(R, k)) Σ over relevant items ranked <= k of precision at their rank
  int64_t map_cutoff = 100;
  std::vector<int64_t> recall_k;
  std::vector<double> recall;  // Recall@K: the fraction of queries with a relevant item in the top K
  int64_t queries = 0;         // Nq
  int64_t evaluated = 0;
  int64_t no_relevant = 0;
  std::vector<double> per_query_ap;  // keep_per_query: AP per query, NaN for one without a relevant item
};

// query [Nq, D] with labels (Nq), gallery [Ng, D] with labels (Ng); f32 or f64, same dtype and device
// (CPU or CUDA: the similarities are computed there and ranked on the CPU). The features must already be
// L2-normalised: similarity = cosine = dot product.
// Ranking: by similarity, descending; equal similarities are ordered by gallery index, ascending (a stable
// sort by gallery index), so every result is deterministic; a NaN similarity ranks last. The ranking is
// never sorted in full: the rank of each relevant item is its position among the relevant items plus the
// number of non-relevant items ordered before it, O(Ng log R) per query.
// Errors name the function and the shapes.
RetrievalResult evaluate_retrieval(const Tensor& query, const std::vector<int64_t>& query_labels, const Tensor& gallery,
                                   const std::vector<int64_t>& gallery_labels, const RetrievalOptions& options = {});

// Retrieval between every pair of capacities: entry [q][g] uses the features of query_capacities[q] for
// the queries and of gallery_capacities[g] for the gallery. query_features[q] are the query set embedded by
// the subnetwork of capacity query_capacities[q] (gallery likewise); for one set used as both, pass the
// same list twice with same_set. The diagonal of a square matrix over the same capacities is the self-test
// of each capacity; the column of the parent (capacity 1) is the cross-test. Recall@1 is always computed.
struct CompatibilityMatrix {
  std::vector<double> query_capacities, gallery_capacities;
  std::vector<std::vector<double>> map;          // [query capacity][gallery capacity]
  std::vector<std::vector<double>> recall_at_1;  // [query capacity][gallery capacity]
  std::vector<std::vector<RetrievalResult>> results;
};
CompatibilityMatrix compatibility_matrix(const std::vector<double>& query_capacities,
                                         const std::vector<Tensor>& query_features,
                                         const std::vector<int64_t>& query_labels,
                                         const std::vector<double>& gallery_capacities,
                                         const std::vector<Tensor>& gallery_features,
                                         const std::vector<int64_t>& gallery_labels,
                                         const RetrievalOptions& options = {});

// Top-1 accuracy of logits [N, C] (f32/f64, any device) against labels (N): the fraction of rows whose
// largest logit (the first one among equal maxima) is at the label's index. N >= 1.
double top1_accuracy(const Tensor& logits, const std::vector<int64_t>& labels);

// A score for the printed tables: four decimals, or "-" for NaN (a figure the evaluation has not got,
// e.g. the accuracy of a query/gallery split).
std::string score_str(double v);

}  // namespace scpn::train
