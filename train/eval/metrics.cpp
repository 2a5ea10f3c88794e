// Retrieval metrics: query blocks × whole gallery through the linear op (one GEMM), then, per query, the
// ranks of the relevant items found without sorting the whole gallery (see metrics.h). Per-query results
// are summed in query order, so the figures do not depend on the thread count or the block size.
#include "train/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/linear.h"
#include "train/progress.h"

namespace scpn::train {

namespace {

constexpr const char* kOp = "evaluate_retrieval";

// Per-query outcome: AP, AP@k, the rank (1-based) of the best-ranked relevant item; R = 0 means no
// relevant item.
struct QueryOutcome {
  int64_t relevant = 0;
  double ap = 0, ap_at_cutoff = 0;
  int64_t first_rank = 0;
};

// sims [rows, Ng] = query[q0 : q0 + rows] · galleryᵀ (linear without a bias), on the features' device,
// returned on the CPU.
Tensor similarity_block(const Tensor& query, const Tensor& gallery, int64_t q0, int64_t rows) {
  NoGradGuard no_grad;
  Tensor sims = linear(query.slice(q0, q0 + rows), gallery);
  return sims.device().is_cpu() ? sims : sims.to(kCPU);
}

// A gallery item's place in the ranking: higher similarity first, then lower gallery index. A NaN
// similarity (a diverged model) counts as −∞, which keeps the order a strict weak ordering.
struct RankKey {
  double value;
  int64_t index;
  bool before(double v, int64_t i) const { return value > v || (value == v && index < i); }
};
template <class T>
double rank_value(T s) {
  return s == s ? double(s) : -std::numeric_limits<double>::infinity();
}

// Ranks the relevant items of one query. `sims` is the query's row (Ng values); `relevant` lists the
// relevant gallery indices (self excluded); `skip` flags them and the query itself (under same_set).
// Scratch vectors are reused across queries.
template <class T>
QueryOutcome rank_query(const T* sims, int64_t ng, const std::vector<int64_t>& relevant,
                        const std::vector<uint8_t>& skip, int64_t cutoff, std::vector<RankKey>& sorted_relevant,
                        std::vector<int64_t>& preceding) {
  QueryOutcome out;
  const int64_t R = int64_t(relevant.size());
  out.relevant = R;
  if (R == 0) return out;
  sorted_relevant.clear();
  for (int64_t j : relevant) sorted_relevant.push_back({rank_value(sims[j]), j});
  std::sort(sorted_relevant.begin(), sorted_relevant.end(),
            [](const RankKey& a, const RankKey& b) { return a.before(b.value, b.index); });
  // preceding[p] = number of non-relevant items that have exactly p relevant items ranked before them.
  preceding.assign(size_t(R) + 1, 0);
  const RankKey& best = sorted_relevant.front();
  const RankKey& worst = sorted_relevant.back();
  for (int64_t n = 0; n < ng; ++n) {
    if (skip[size_t(n)]) continue;
    const double v = rank_value(sims[n]);
    int64_t p;
    if (worst.before(v, n)) {
      p = R;  // after every relevant item: the common case for a good model, no search needed
    } else if (!best.before(v, n)) {
      p = 0;
    } else {
      p = std::partition_point(sorted_relevant.begin(), sorted_relevant.end(),
                               [&](const RankKey& r) { return r.before(v, n); }) -
          sorted_relevant.begin();
    }
    ++preceding[size_t(p)];
  }
  // The p-th relevant item (0-based) is preceded by p relevant items and by the non-relevant items with
  // at most p relevant items before them.
  int64_t non_relevant_before = 0;
  double sum = 0, sum_cut = 0;
  for (int64_t p = 0; p < R; ++p) {
    non_relevant_before += preceding[size_t(p)];
    const int64_t rank = p + 1 + non_relevant_before;
    if (p == 0) out.first_rank = rank;
    const double precision = double(p + 1) / double(rank);
    sum += precision;
    if (rank <= cutoff) sum_cut += precision;
  }
  out.ap = sum / double(R);
  out.ap_at_cutoff = sum_cut / double(std::min(R, cutoff));
  return out;
}

}  // namespace

RetrievalResult evaluate_retrieval(const Tensor& query, const std::vector<int64_t>& query_labels, const Tensor& gallery,
                                   const std::vector<int64_t>& gallery_labels, const RetrievalOptions& options) {
  check_dim(kOp, "query", query, 2);
  check_dim(kOp, "gallery", gallery, 2);
  check_float(kOp, "query", query);
  check_same(kOp, "query", query, "gallery", gallery);
  const int64_t nq = query.size(0), ng = gallery.size(0);
  SCPN_CHECK(query.size(1) == gallery.size(1), kOp, ": feature sizes differ: query is ", describe(query),
             ", gallery is ", describe(gallery));
  SCPN_CHECK(int64_t(query_labels.size()) == nq, kOp, ": ", query_labels.size(), " query labels for ", nq, " queries");
  SCPN_CHECK(int64_t(gallery_labels.size()) == ng, kOp, ": ", gallery_labels.size(), " gallery labels for ", ng,
             " gallery items");
  SCPN_CHECK(!options.same_set || nq == ng, kOp, ": same_set needs as many queries as gallery items, got ", nq, " and ",
             ng);
  for (int64_t k : options.recall_k) SCPN_CHECK(k >= 1, kOp, ": recall_k entry ", k, " must be >= 1");
  SCPN_CHECK(options.map_cutoff >= 1, kOp, ": map_cutoff ", options.map_cutoff, " must be >= 1");
  SCPN_CHECK(options.block_elements >= 1, kOp, ": block_elements ", options.block_elements, " must be >= 1");

  // Relevant gallery items per label, ascending.
  std::unordered_map<int64_t, std::vector<int64_t>> by_label;
  for (int64_t j = 0; j < ng; ++j) by_label[gallery_labels[size_t(j)]].push_back(j);
  static const std::vector<int64_t> kNone;

  std::vector<QueryOutcome> outcomes(static_cast<size_t>(nq));
  const int64_t block_rows = std::max<int64_t>(1, std::min(nq, options.block_elements / std::max<int64_t>(ng, 1)));
  for (int64_t q0 = 0; q0 < nq && ng > 0; q0 += block_rows) {
    const int64_t rows = std::min(block_rows, nq - q0);
    const Tensor sims = similarity_block(query, gallery, q0, rows);
#pragma omp parallel
    {
      std::vector<uint8_t> skip(size_t(ng), 0);
      std::vector<int64_t> relevant, preceding;
      std::vector<RankKey> sorted_relevant;
#pragma omp for schedule(dynamic, 4)
      for (int64_t b = 0; b < rows; ++b) {
        const int64_t q = q0 + b;
        const int64_t self = options.same_set ? q : -1;
        const auto found = by_label.find(query_labels[size_t(q)]);
        const std::vector<int64_t>& all = found == by_label.end() ? kNone : found->second;
        relevant.clear();
        for (int64_t j : all)
          if (j != self) relevant.push_back(j);
        for (int64_t j : relevant) skip[size_t(j)] = 1;
        if (self >= 0) skip[size_t(self)] = 1;
        if (sims.dtype() == DType::f32)
          outcomes[size_t(q)] = rank_query(sims.data<float>() + b * ng, ng, relevant, skip, options.map_cutoff,
                                           sorted_relevant, preceding);
        else
          outcomes[size_t(q)] = rank_query(sims.data<double>() + b * ng, ng, relevant, skip, options.map_cutoff,
                                           sorted_relevant, preceding);
        for (int64_t j : relevant) skip[size_t(j)] = 0;
        if (self >= 0) skip[size_t(self)] = 0;
      }
    }
    if (options.progress) options.progress->advance(rows);
  }
  if (ng == 0 && options.progress) options.progress->advance(nq);  // nothing to rank against: done at once

  RetrievalResult result;
  result.queries = nq;
  result.map_cutoff = options.map_cutoff;
  result.recall_k = options.recall_k;
  result.recall.assign(options.recall_k.size(), 0.0);
  if (options.keep_per_query) result.per_query_ap.assign(size_t(nq), std::numeric_limits<double>::quiet_NaN());
  for (int64_t q = 0; q < nq; ++q) {
    const QueryOutcome& o = outcomes[size_t(q)];
    if (o.relevant == 0) {
      ++result.no_relevant;
      continue;
    }
    ++result.evaluated;
    result.map += o.ap;
    result.map_at_cutoff += o.ap_at_cutoff;
    for (size_t k = 0; k < options.recall_k.size(); ++k)
      if (o.first_rank <= options.recall_k[k]) result.recall[k] += 1;
    if (options.keep_per_query) result.per_query_ap[size_t(q)] = o.ap;
  }
  if (result.evaluated > 0) {
    const double n = double(result.evaluated);
    result.map /= n;
    result.map_at_cutoff /= n;
    for (double& r : result.recall) r /= n;
  }
  return result;
}

CompatibilityMatrix compatibility_matrix(const std::vector<double>& query_capacities,
                                         const std::vector<Tensor>& query_features,
                                         const std::vector<int64_t>& query_labels,
                                         const std::vector<double>& gallery_capacities,
                                         const std::vector<Tensor>& gallery_features,
                                         const std::vector<int64_t>& gallery_labels, const RetrievalOptions& options) {
  SCPN_CHECK(query_capacities.size() == query_features.size(), "compatibility_matrix: ", query_capacities.size(),
             " query capacities but ", query_features.size(), " query feature sets");
  SCPN_CHECK(gallery_capacities.size() == gallery_features.size(), "compatibility_matrix: ", gallery_capacities.size(),
             " gallery capacities but ", gallery_features.size(), " gallery feature sets");
  RetrievalOptions opts = options;
  auto one = std::find(opts.recall_k.begin(), opts.recall_k.end(), int64_t(1));
  size_t r1 = size_t(one - opts.recall_k.begin());
  if (one == opts.recall_k.end()) opts.recall_k.push_back(1);

  CompatibilityMatrix m;
  m.query_capacities = query_capacities;
  m.gallery_capacities = gallery_capacities;
  const size_t nq = query_capacities.size(), ng = gallery_capacities.size();
  m.map.assign(nq, std::vector<double>(ng, 0.0));
  m.recall_at_1.assign(nq, std::vector<double>(ng, 0.0));
  m.results.assign(nq, std::vector<RetrievalResult>(ng));
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < ng; ++j) {
      RetrievalResult r =
          evaluate_retrieval(query_features[i], query_labels, gallery_features[j], gallery_labels, opts);
      m.map[i][j] = r.map;
      m.recall_at_1[i][j] = r.recall[r1];
      m.results[i][j] = std::move(r);
    }
  return m;
}

double top1_accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  check_dim("top1_accuracy", "logits", logits, 2);
  check_float("top1_accuracy", "logits", logits);
  const int64_t n = logits.size(0), c = logits.size(1);
  SCPN_CHECK(n >= 1 && c >= 1, "top1_accuracy: logits must be non-empty, got ", describe(logits));
  SCPN_CHECK(int64_t(labels.size()) == n, "top1_accuracy: ", labels.size(), " labels for ", n, " rows of logits");
  const std::vector<double> v = logits.to_vector();
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* row = v.data() + i * c;
    const int64_t best = std::max_element(row, row + c) - row;  // the first of equal maxima
    correct += best == labels[size_t(i)] ? 1 : 0;
  }
  return double(correct) / double(n);
}

std::string score_str(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

}  // namespace scpn::train
