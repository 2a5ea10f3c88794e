// Retrieval metrics (train/eval/metrics.h): hand-computed rankings (mAP, ties, a query without relevant
// items, self-exclusion, Recall@K, mAP@100 with more than 100 relevant items), a full-sort reference on
// random features with exact ties, block sizes, the compatibility matrix, top-1 accuracy, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/tensor.h"
#include "tests/support/check.h"
#include "train/eval/metrics.h"

using namespace scpn;
using namespace scpn::train;

namespace {

// Gallery items (s, 0) against the query (1, 0): similarity = s exactly.
Tensor column_features(const std::vector<double>& s, DType dtype = DType::f64) {
  std::vector<double> v;
  for (double x : s) {
    v.push_back(x);
    v.push_back(0.0);
  }
  return from_vector(v, {int64_t(s.size()), 2}, dtype);
}

// The plainest reference: full similarity matrix by loops, every ranking fully sorted (stable by gallery
// index), then walked from the top.
struct Reference {
  double map = 0, map_cut = 0;
  std::vector<double> recall;
  int64_t evaluated = 0, no_relevant = 0;
};
Reference full_sort_reference(const std::vector<double>& q, const std::vector<int64_t>& ql,
                              const std::vector<double>& g, const std::vector<int64_t>& gl, int64_t d, bool same_set,
                              int64_t cutoff, const std::vector<int64_t>& ks) {
  const int64_t nq = int64_t(ql.size()), ng = int64_t(gl.size());
  Reference ref;
  ref.recall.assign(ks.size(), 0.0);
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<double> sim(static_cast<size_t>(ng));
    for (int64_t j = 0; j < ng; ++j) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += q[size_t(i * d + c)] * g[size_t(j * d + c)];
      sim[size_t(j)] = s;
    }
    std::vector<int64_t> ranking;
    for (int64_t j = 0; j < ng; ++j)
      if (!(same_set && j == i)) ranking.push_back(j);
    std::stable_sort(ranking.begin(), ranking.end(),
                     [&](int64_t a, int64_t b) { return sim[size_t(a)] > sim[size_t(b)]; });
    int64_t R = 0;
    for (int64_t j : ranking) R += gl[size_t(j)] == ql[size_t(i)] ? 1 : 0;
    if (R == 0) {
      ++ref.no_relevant;
      continue;
    }
    ++ref.evaluated;
    double ap = 0, ap_cut = 0;
    int64_t hits = 0, first = 0;
    for (size_t pos = 0; pos < ranking.size(); ++pos) {
      if (gl[size_t(ranking[pos])] != ql[size_t(i)]) continue;
      ++hits;
      const int64_t rank = int64_t(pos) + 1;
      if (first == 0) first = rank;
      ap += double(hits) / double(rank);
      if (rank <= cutoff) ap_cut += double(hits) / double(rank);
    }
    ref.map += ap / double(R);
    ref.map_cut += ap_cut / double(std::min(R, cutoff));
    for (size_t k = 0; k < ks.size(); ++k) ref.recall[k] += first <= ks[k] ? 1 : 0;
  }
  if (ref.evaluated > 0) {
    ref.map /= double(ref.evaluated);
    ref.map_cut /= double(ref.evaluated);
    for (double& r : ref.recall) r /= double(ref.evaluated);
  }
  return ref;
}

// Features with entries in {−1, −½, 0, ½, 1}: every dot product is exact whatever the summation order,
// and many are equal, so the tie rule is exercised at scale.
std::vector<double> coarse_features(int64_t n, int64_t d, uint64_t seed) {
  std::vector<double> v = test::random_f64({n, d}, seed, 0.0, 5.0).to_vector();
  for (double& x : v) x = std::floor(x) * 0.5 - 1.0;
  return v;
}

std::vector<int64_t> labels_of(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<double> v = test::random_f64({n}, seed, 0.0, double(classes)).to_vector();
  std::vector<int64_t> out;
  for (double x : v) out.push_back(int64_t(x));
  return out;
}

}  // namespace

TEST_CASE("mAP and Recall@K of a known ranking") {
  // Query label A = 0. Gallery similarities and labels (index: sim, label):
  //   0: 0.6 A   1: 0.9 B   2: 0.5 A   3: 0.8 A   4: 0.7 B
  // Ranking: 1 (B), 3 (A), 4 (B), 0 (A), 2 (A) → relevant at ranks 2, 4, 5.
  // AP = (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3 = 0.533333…; R@1 = 0, R@2 = R@4 = R@8 = 1.
  // mAP@3 (cutoff 3): only rank 2 counts, divided by min(R = 3, 3): (1/2) / 3 = 1/6.
  Tensor q = from_vector({1, 0}, {1, 2}, DType::f64);
  Tensor g = column_features({0.6, 0.9, 0.5, 0.8, 0.7});
  RetrievalOptions o;
  o.keep_per_query = true;
  RetrievalResult r = evaluate_retrieval(q, {0}, g, {0, 1, 0, 0, 1}, o);
  CHECK(r.map == doctest::Approx(1.6 / 3).epsilon(1e-14));
  CHECK(r.map_at_cutoff == doctest::Approx(1.6 / 3).epsilon(1e-14));  // all within 100: AP@100 = AP
  CHECK(r.recall == std::vector<double>({0, 1, 1, 1}));
  CHECK(r.evaluated == 1);
  CHECK(r.no_relevant == 0);
  CHECK(r.per_query_ap.size() == 1);
  CHECK(r.per_query_ap[0] == doctest::Approx(1.6 / 3));
  o.map_cutoff = 3;
  CHECK(evaluate_retrieval(q, {0}, g, {0, 1, 0, 0, 1}, o).map_at_cutoff == doctest::Approx(1.0 / 6).epsilon(1e-14));
}

TEST_CASE("ties are ordered by gallery index") {
  // Query label A = 0; sims 0: 0.5 A, 1: 0.5 B, 2: 0.5 A, 3: 1.0 B.
  // Ranking: 3 (B), then the tie at 0.5 by index: 0 (A), 1 (B), 2 (A) → relevant at ranks 2 and 4.
  // AP = (1/2 + 2/4) / 2 = 0.5. (Relevant-first ties would give 0.75, relevant-last 0.41667.)
  Tensor q = from_vector({1, 0}, {1, 2}, DType::f64);
  RetrievalResult r = evaluate_retrieval(q, {0}, column_features({0.5, 0.5, 0.5, 1.0}), {0, 1, 0, 1});
  CHECK(r.map == doctest::Approx(0.5).epsilon(1e-14));
  CHECK(r.recall == std::vector<double>({0, 1, 1, 1}));
  // The same sims with the labels of indices 0 and 1 swapped: 3 (B), 0 (B), 1 (A), 2 (A) → ranks 3, 4:
  // AP = (1/3 + 2/4) / 2 = 0.416666…; R@2 = 0, R@4 = 1.
  r = evaluate_retrieval(q, {0}, column_features({0.5, 0.5, 0.5, 1.0}), {1, 0, 0, 1});
  CHECK(r.map == doctest::Approx((1.0 / 3 + 0.5) / 2).epsilon(1e-14));
  CHECK(r.recall == std::vector<double>({0, 0, 1, 1}));
  // f32 similarities tie the same way.
  r = evaluate_retrieval(q.to(DType::f32), {0}, column_features({0.5, 0.5, 0.5, 1.0}, DType::f32), {0, 1, 0, 1});
  CHECK(r.map == doctest::Approx(0.5).epsilon(1e-14));
}

TEST_CASE("a query with no relevant item is excluded from the means and counted") {
  // Queries 0 (label A = 0) and 1 (label C = 2, absent from the gallery); gallery sims 0.9 B, 0.8 A.
  // Query 0: relevant at rank 2 → AP 0.5, R@1 = 0, R@2 = 1. Query 1: excluded.
  Tensor q = from_vector({1, 0, 1, 0}, {2, 2}, DType::f64);
  RetrievalOptions o;
  o.keep_per_query = true;
  RetrievalResult r = evaluate_retrieval(q, {0, 2}, column_features({0.9, 0.8}), {1, 0}, o);
  CHECK(r.queries == 2);
  CHECK(r.evaluated == 1);
  CHECK(r.no_relevant == 1);
  CHECK(r.map == doctest::Approx(0.5));
  CHECK(r.recall == std::vector<double>({0, 1, 1, 1}));
  CHECK(std::isnan(r.per_query_ap[1]));
  // No query evaluated at all: zeros, all counted.
  RetrievalResult none = evaluate_retrieval(q, {5, 6}, column_features({0.9, 0.8}), {1, 0});
  CHECK(none.evaluated == 0);
  CHECK(none.no_relevant == 2);
  CHECK(none.map == 0);
}

TEST_CASE("self-exclusion when query and gallery are the same set") {
  // x0 = (1, 0) A, x1 = (0.8, 0.6) A, x2 = (0.6, 0.8) B, x3 = (0, 1) B (unit vectors). Cosines:
  //   x0·x1 = 0.8, x0·x2 = 0.6, x0·x3 = 0, x1·x2 = 0.96, x1·x3 = 0.6, x2·x3 = 0.8.
  // Excluding itself:
  //   q0 (A): x1 .8 A, x2 .6, x3 0 → rank 1 → AP 1
  //   q1 (A): x2 .96, x0 .8 A, x3 .6 → rank 2 → AP 0.5
  //   q2 (B): x1 .96, x3 .8 B, x0 .6 → rank 2 → AP 0.5
  //   q3 (B): x2 .8 B, x1 .6, x0 0 → rank 1 → AP 1
  //   mAP = 0.75, R@1 = 0.5, R@2 = 1.
  // Not excluding (same_set = false), each query finds itself first (cosine 1):
  //   q0: ranks 1, 2 → 1;  q1: self 1, x2 .96, x0 .8 → ranks 1, 3 → (1 + 2/3)/2 = 5/6;  q2 likewise 5/6;
  //   q3: ranks 1, 2 → 1;  mAP = (1 + 5/6 + 5/6 + 1)/4 = 11/12.
  Tensor x = from_vector({1, 0, 0.8, 0.6, 0.6, 0.8, 0, 1}, {4, 2}, DType::f64);
  std::vector<int64_t> labels = {0, 0, 1, 1};
  RetrievalOptions same;
  same.same_set = true;
  RetrievalResult r = evaluate_retrieval(x, labels, x, labels, same);
  CHECK(r.map == doctest::Approx(0.75));
  CHECK(r.recall == std::vector<double>({0.5, 1, 1, 1}));
  CHECK(r.evaluated == 4);
  RetrievalResult with_self = evaluate_retrieval(x, labels, x, labels);
  CHECK(with_self.map == doctest::Approx(11.0 / 12));
  CHECK(with_self.recall[0] == 1.0);
  // A class of one item has nothing relevant once the item itself is excluded.
  RetrievalResult lone = evaluate_retrieval(x, {0, 0, 1, 2}, x, {0, 0, 1, 2}, same);
  CHECK(lone.no_relevant == 2);
  CHECK(lone.evaluated == 2);
  // q0: x1 (0.8) is its best → AP 1; q1: x2 (0.96) comes before x0 (0.8) → AP 0.5; mean 0.75.
  CHECK(lone.map == doctest::Approx(0.75));
}

TEST_CASE("mAP@100 with more than 100 relevant items") {
  // 200 gallery items; by rank: 10 non-relevant (ranks 1–10), 150 relevant (ranks 11–160), 40 non-relevant.
  // The relevant item at rank k has k − 10 relevant items up to it: precision (k − 10)/k.
  //   mAP@100 = (1/min(150, 100)) · Σ_{k=11}^{100} (k − 10)/k = 67.4159073633 / 100 = 0.674159073633
  //   mAP     = (1/150) · Σ_{k=11}^{160} (k − 10)/k         = 122.734570290 / 150 = 0.818230468602
  //   Recall@K = 0 for K ≤ 10, 1 from K = 11.
  // Items are stored in a scrambled order (index = 37·rank mod 200) so rank ≠ index.
  std::vector<double> sims(200);
  std::vector<int64_t> labels(200);
  for (int64_t rank = 1; rank <= 200; ++rank) {
    const int64_t index = (37 * rank) % 200;
    sims[size_t(index)] = 1.0 - double(rank) / 256.0;  // exact binary fractions, strictly decreasing
    labels[size_t(index)] = (rank >= 11 && rank <= 160) ? 7 : 1 + rank % 5;
  }
  RetrievalOptions o;
  o.recall_k = {1, 10, 11, 100};
  RetrievalResult r =
      evaluate_retrieval(from_vector({1, 0}, {1, 2}, DType::f64), {7}, column_features(sims), labels, o);
  CHECK(r.map_at_cutoff == doctest::Approx(0.674159073633).epsilon(1e-11));
  CHECK(r.map == doctest::Approx(0.818230468602).epsilon(1e-11));
  CHECK(r.recall == std::vector<double>({0, 0, 1, 1}));
}

TEST_CASE("random features with exact ties: a full-sort reference, any block size, f32 and f64") {
  const int64_t d = 4;
  struct Case {
    int64_t nq, ng;
    bool same_set;
  };
  for (Case c : {Case{37, 53, false}, Case{60, 60, true}, Case{1, 9, false}, Case{12, 1, false}}) {
    std::vector<double> qv = coarse_features(c.nq, d, 1 + uint64_t(c.nq));
    std::vector<double> gv = c.same_set ? qv : coarse_features(c.ng, d, 2 + uint64_t(c.ng));
    std::vector<int64_t> ql = labels_of(c.nq, 6, 3);  // labels 0..5; the gallery lacks class 5
    std::vector<int64_t> gl = c.same_set ? ql : labels_of(c.ng, 5, 4);
    for (int64_t cutoff : {3, 100}) {
      std::vector<int64_t> ks = {1, 2, 4, 8, 16};
      Reference ref = full_sort_reference(qv, ql, gv, gl, d, c.same_set, cutoff, ks);
      for (DType dtype : {DType::f64, DType::f32})
        for (int64_t block : {int64_t(1) << 25, int64_t(1), 7 * c.ng}) {
          RetrievalOptions o;
          o.same_set = c.same_set;
          o.recall_k = ks;
          o.map_cutoff = cutoff;
          o.block_elements = block;
          RetrievalResult r =
              evaluate_retrieval(from_vector(qv, {c.nq, d}, dtype), ql, from_vector(gv, {c.ng, d}, dtype), gl, o);
          INFO("nq=" << c.nq << " ng=" << c.ng << " same_set=" << c.same_set << " cutoff=" << cutoff
                     << " dtype=" << dtype_name(dtype) << " block=" << block);
          CHECK(r.evaluated == ref.evaluated);
          CHECK(r.no_relevant == ref.no_relevant);
          CHECK(r.map == doctest::Approx(ref.map).epsilon(1e-12));
          CHECK(r.map_at_cutoff == doctest::Approx(ref.map_cut).epsilon(1e-12));
          CHECK_CLOSE(r.recall, ref.recall, 1e-12, 0);
        }
    }
  }
}

TEST_CASE("compatibility matrix: the diagonal is the self-test, off-diagonal entries are cross-tests") {
  const int64_t n = 40, d = 6;
  std::vector<int64_t> labels = labels_of(n, 4, 8);
  std::vector<double> capacities = {1.0, 0.6, 0.2};
  std::vector<Tensor> features;
  for (size_t c = 0; c < capacities.size(); ++c) features.push_back(test::random_f64({n, d}, 20 + c));
  RetrievalOptions o;
  o.same_set = true;
  o.recall_k = {2, 4};  // the matrix adds K = 1 itself
  CompatibilityMatrix m = compatibility_matrix(capacities, features, labels, capacities, features, labels, o);
  REQUIRE(m.map.size() == 3);
  REQUIRE(m.map[0].size() == 3);
  CHECK(m.query_capacities == capacities);
  RetrievalOptions o1 = o;
  o1.recall_k = {1};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) {
      RetrievalResult r = evaluate_retrieval(features[i], labels, features[j], labels, o1);
      CHECK(m.map[i][j] == r.map);
      CHECK(m.recall_at_1[i][j] == r.recall[0]);
      CHECK(m.results[i][j].recall_k == std::vector<int64_t>({2, 4, 1}));
    }
  // Different models embed the same items differently: the off-diagonal figures are not the diagonal's.
  CHECK(m.map[0][1] != m.map[1][1]);
  // A rectangular matrix: two query capacities against the parent's gallery only.
  CompatibilityMatrix cross =
      compatibility_matrix({0.6, 0.2}, {features[1], features[2]}, labels, {1.0}, {features[0]}, labels, o);
  CHECK(cross.map.size() == 2);
  CHECK(cross.map[1].size() == 1);
  CHECK(cross.map[1][0] == m.map[2][0]);
  CHECK_THROWS_WITH_AS(compatibility_matrix({1.0, 0.5}, {features[0]}, labels, {1.0}, {features[0]}, labels, o),
                       "compatibility_matrix: 2 query capacities but 1 query feature sets", Error);
}

TEST_CASE("top-1 accuracy from logits") {
  // Row 0: argmax 1 = label ✓; row 1: tie 5, 5 → the first, 0 = label ✓; row 2: argmax 2 ≠ 1 ✗ → 2/3.
  Tensor logits = from_vector({1, 3, 2, 5, 1, 5, 0, 0, 1}, {3, 3});
  CHECK(top1_accuracy(logits, {1, 0, 1}) == doctest::Approx(2.0 / 3));
  CHECK(top1_accuracy(logits.to(DType::f64), {1, 2, 2}) == doctest::Approx(2.0 / 3));
  CHECK_THROWS_WITH_AS(top1_accuracy(logits, {1, 0}), "top1_accuracy: 2 labels for 3 rows of logits", Error);
  CHECK_THROWS_WITH_AS(top1_accuracy(from_vector({1, 2}, {2}), {0}),
                       "top1_accuracy: argument 'logits' must be 2-D, got f32 [2] on cpu", Error);
}

TEST_CASE("retrieval errors name the function and the shapes") {
  Tensor q = zeros({2, 3}), g = zeros({4, 3});
  CHECK_THROWS_WITH_AS(
      evaluate_retrieval(q, {0, 0}, zeros({4, 2}), {0, 0, 0, 0}),
      "evaluate_retrieval: feature sizes differ: query is f32 [2, 3] on cpu, gallery is f32 [4, 2] on cpu", Error);
  CHECK_THROWS_WITH_AS(evaluate_retrieval(q, {0}, g, {0, 0, 0, 0}), "evaluate_retrieval: 1 query labels for 2 queries",
                       Error);
  CHECK_THROWS_WITH_AS(evaluate_retrieval(q, {0, 0}, g, {0}),
                       "evaluate_retrieval: 1 gallery labels for 4 gallery items", Error);
  RetrievalOptions same;
  same.same_set = true;
  CHECK_THROWS_WITH_AS(evaluate_retrieval(q, {0, 0}, g, {0, 0, 0, 0}, same),
                       "evaluate_retrieval: same_set needs as many queries as gallery items, got 2 and 4", Error);
  RetrievalOptions bad_k;
  bad_k.recall_k = {1, 0};
  CHECK_THROWS_WITH_AS(evaluate_retrieval(q, {0, 0}, g, {0, 0, 0, 0}, bad_k),
                       "evaluate_retrieval: recall_k entry 0 must be >= 1", Error);
  CHECK_THROWS_WITH_AS(evaluate_retrieval(q, {0, 0}, g.to(DType::f64), {0, 0, 0, 0}),
                       "evaluate_retrieval: dtype mismatch: query is f32 [2, 3] on cpu, gallery is f64 [4, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(evaluate_retrieval(zeros({2, 3, 1}), {0, 0}, g, {0, 0, 0, 0}),
                       "evaluate_retrieval: argument 'query' must be 2-D, got f32 [2, 3, 1] on cpu", Error);
}
