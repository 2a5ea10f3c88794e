// sparse_channel: gathers of kept channels (plain and with the filter score's straight-through gradient)
// and the in-place scatter, as op-harness cases against loops written here; gather_filters against the
// masked path it replaces (gather of masked_weight); hand numbers for the scatter; the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/masked_weight.h"
#include "engine/ops/reduce.h"
#include "engine/ops/select.h"
#include "engine/ops/sparse_channel.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;
using test::Expected;
using test::OpCase;
using test::random_tensor;

namespace {

double sgn(double v) { return double((v > 0) - (v < 0)); }

Tensor index_tensor(const std::vector<int>& kept) {
  std::vector<double> v(kept.begin(), kept.end());
  return from_vector(v, {int64_t(v.size())}, DType::i32);
}

struct View {
  int64_t outer = 1, channels = 0, inner = 1;
};
View view_of(const Shape& shape, int64_t dim) {
  View v;
  for (int64_t d = 0; d < dim; ++d) v.outer *= shape[size_t(d)];
  v.channels = shape[size_t(dim)];
  for (size_t d = size_t(dim) + 1; d < shape.size(); ++d) v.inner *= shape[d];
  return v;
}

// gather_channels by its definition: out[o, j, i] = t[o, kept[j], i]; the gradient lands on the kept channels.
test::Oracle gather_oracle(int64_t dim, std::vector<int> kept) {
  return [dim, kept](const std::vector<Tensor>& in, const Tensor& g) {
    const std::vector<double> t = in[0].to_vector(), gv = g.to_vector();
    const View v = view_of(in[0].shape(), dim);
    Expected e{{}, {std::vector<double>(t.size(), 0.0), {}}};
    const int64_t k = int64_t(kept.size());
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < v.inner; ++i) {
          const size_t dense = size_t((o * v.channels + kept[size_t(j)]) * v.inner + i);
          e.out.push_back(t[dense]);
          e.grads[0][dense] = gv[size_t((o * k + j) * v.inner + i)];
        }
    return e;
  };
}

// gather_filters by the STE's definition on the kept rows: ∂W = g on kept rows, ∂S_f = sign(S_f)·Σ W_f·g_j.
Expected gather_filters_oracle(const std::vector<Tensor>& in, const Tensor& g) {
  const std::vector<double> w = in[0].to_vector(), s = in[1].to_vector(), gv = g.to_vector();
  std::vector<double> kept = in[2].to_vector();
  const size_t len = w.size() / s.size();
  Expected e{{}, {std::vector<double>(w.size(), 0.0), std::vector<double>(s.size(), 0.0), {}}};
  for (size_t j = 0; j < kept.size(); ++j) {
    const size_t f = size_t(kept[j]);
    for (size_t i = 0; i < len; ++i) {
      e.out.push_back(w[f * len + i]);
      e.grads[0][f * len + i] = gv[j * len + i];
      e.grads[1][f] += w[f * len + i] * gv[j * len + i];
    }
    e.grads[1][f] *= sgn(s[f]);
  }
  for (size_t i = 0; i < 2; ++i)
    if (!in[i].requires_grad()) e.grads[i].clear();
  return e;
}

struct GatherConfig {
  Shape shape;
  int64_t dim;
  std::vector<int> kept;
};

std::vector<OpCase> sparse_channel_cases() {
  std::vector<OpCase> cases;
  const std::vector<GatherConfig> gathers = {
      {{6, 5, 3, 3}, 0, {0, 2, 5}},          // a conv weight's filters
      {{6, 5, 3, 3}, 1, {1, 4}},             // its input channels
      {{7}, 0, {3}},                         // a BatchNorm vector, one channel left
      {{7}, 0, {0, 1, 2, 3, 4, 5, 6}},       // nothing pruned
      {{2, 3, 4, 5}, 3, {0, 4}},             // the last axis
      {{64, 300, 3, 3}, 1, {}},              // filled below: every third channel of 300
      {{513, 64, 1, 1}, 0, {}},              // filled below: 257 of 513 filters (more than a block's worth)
  };
  uint64_t seed = 1;
  for (GatherConfig g : gathers) {
    if (g.kept.empty()) {
      const int step = g.dim == 1 ? 3 : 2;
      for (int c = 0; c < int(g.shape[size_t(g.dim)]); c += step) g.kept.push_back(c);
    }
    const Shape shape = g.shape;
    const std::vector<int> kept = g.kept;
    const uint64_t s = seed++;
    const int64_t numel = [&] { int64_t n = 1; for (int64_t d : shape) n *= d; return n; }();
    cases.push_back({.name = cat("gather_channels ", shape_str(shape), " dim ", g.dim, " keeps ", kept.size()),
                     .inputs = [shape, kept, s](DType d) {
                       return std::vector<Tensor>{random_tensor(shape, d, s).requires_grad_(), index_tensor(kept)};
                     },
                     .op = [dim = g.dim](const std::vector<Tensor>& x) { return gather_channels(x[0], dim, x[1]); },
                     .oracle = gather_oracle(g.dim, kept),
                     .oracle_f32 = {0, 0},
                     .oracle_f64 = {0, 0},
                     .gradcheck = numel <= 4096,  // linear, so exact differences; the big ones only by oracle
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
  }

  struct FilterConfig {
    Shape shape;
    double capacity;
    bool weight_grad, score_grad;
  };
  const std::vector<FilterConfig> filters = {
      {{5, 2, 3, 3}, 0.6, true, true}, {{8, 3, 1, 1}, 0.25, true, true}, {{1, 4, 3, 3}, 1.0, true, true},
      {{9, 3, 3, 3}, 0.5, true, false}, {{9, 3, 3, 3}, 0.5, false, true}, {{300, 64, 3, 3}, 0.35, true, true},
      {{3, 333337}, 0.7, true, true},  // filters far longer than a block
  };
  for (const FilterConfig& f : filters) {
    const uint64_t s = seed++;
    const FilterConfig c = f;
    const auto inputs = [c, s](DType d) {
      Tensor w = random_tensor(c.shape, d, s).requires_grad_(c.weight_grad);
      Tensor score = random_tensor({c.shape[0]}, d, s + 100).requires_grad_(c.score_grad);
      Tensor kept = kept_index_from_mask(capacity_masks(score.detach(), {c.capacity})[0]);
      return std::vector<Tensor>{w, score, kept};
    };
    const char* which = f.weight_grad && f.score_grad ? "" : f.weight_grad ? " weight only" : " score only";
    cases.push_back({.name = cat("gather_filters ", shape_str(f.shape), " capacity ", f.capacity, which),
                     .inputs = inputs,
                     .op = [](const std::vector<Tensor>& x) { return gather_filters(x[0], x[1], x[2]); },
                     .oracle = gather_filters_oracle,
                     .oracle_f32 = {1e-6, 1e-6},
                     .oracle_f64 = {1e-13, 1e-13},
                     // The score gradient is the STE's definition, not a derivative: only the weight's meets
                     // central differences.
                     .gradcheck = !f.score_grad,
                     .parity_f32 = {1e-6, 1e-5},
                     .parity_f64 = {1e-12, 1e-12}});
  }

  // scatter_channels_ as an op: a copy of `dense` scattered into (no gradient; outputs exact on every device).
  struct ScatterConfig {
    Shape dense;
    int64_t dim;
    std::vector<int> kept;
    double others_scale;
  };
  const std::vector<ScatterConfig> scatters = {
      {{9}, 0, {1, 4, 8}, 0.9}, {{9}, 0, {2}, 0.0}, {{4, 6, 3, 3}, 1, {0, 5}, 0.0}, {{6, 4, 3}, 0, {0, 1, 2, 3, 4, 5}, 0.0},
      {{1000, 7}, 0, {}, 0.5},  // filled below: every other row
  };
  for (ScatterConfig sc : scatters) {
    if (sc.kept.empty())
      for (int c = 0; c < int(sc.dense[size_t(sc.dim)]); c += 2) sc.kept.push_back(c);
    const uint64_t s = seed++;
    Shape compact = sc.dense;
    compact[size_t(sc.dim)] = int64_t(sc.kept.size());
    const ScatterConfig c = sc;
    cases.push_back({.name = cat("scatter_channels_ ", shape_str(sc.dense), " dim ", sc.dim, " keeps ", sc.kept.size(),
                                 " others ×", sc.others_scale),
                     .inputs = [c, compact, s](DType d) {
                       return std::vector<Tensor>{random_tensor(c.dense, d, s), random_tensor(compact, d, s + 1),
                                                  index_tensor(c.kept)};
                     },
                     .op = [c](const std::vector<Tensor>& x) {
                       Tensor dense = x[0].clone();
                       scatter_channels_(dense, c.dim, x[2], x[1], c.others_scale);
                       return dense;
                     },
                     .oracle = [c](const std::vector<Tensor>& in, const Tensor&) {
                       std::vector<double> dense = in[0].to_vector();
                       const std::vector<double> compact_v = in[1].to_vector();
                       const View v = view_of(in[0].shape(), c.dim);
                       const int64_t k = int64_t(c.kept.size());
                       for (double& x : dense) x *= c.others_scale;
                       for (int64_t o = 0; o < v.outer; ++o)
                         for (int64_t j = 0; j < k; ++j)
                           for (int64_t i = 0; i < v.inner; ++i)
                             dense[size_t((o * v.channels + c.kept[size_t(j)]) * v.inner + i)] =
                                 compact_v[size_t((o * k + j) * v.inner + i)];
                       return Expected{dense, {}};
                     },
                     .oracle_f32 = {1e-7, 0},  // the scale is applied in the dtype, the oracle in f64
                     .oracle_f64 = {0, 0},
                     .gradcheck = false,  // in place, outside autograd
                     .parity_f32 = {0, 0},
                     .parity_f64 = {0, 0}});
  }
  return cases;
}

}  // namespace

TEST_CASE("sparse_channel: op harness") { test::run_op_cases("sparse_channel", sparse_channel_cases()); }

TEST_CASE("gather_filters equals the gather of the masked weight, gradients included") {
  for (double capacity : {0.75, 0.5, 0.25, 0.35}) {
    Tensor w = random_tensor({11, 3, 3, 3}, DType::f64, 7).requires_grad_();
    Tensor s = random_tensor({11}, DType::f64, 8).requires_grad_();
    Tensor m = capacity_masks(s.detach(), {capacity})[0];
    Tensor kept = kept_index_from_mask(m);
    Tensor upstream = random_tensor({kept.size(0), 3, 3, 3}, DType::f64, 9);

    GradientSlot masked_slot, compact_slot;
    backward(sum(mul(gather_channels(masked_weight(w, s, m), 0, kept), upstream)), Tensor(), {&masked_slot});
    Tensor compact = gather_filters(w, s, kept);
    backward(sum(mul(compact, upstream)), Tensor(), {&compact_slot});
    CHECK_CLOSE(compact, gather_channels(masked_weight(w, s, m), 0, kept).detach(), 0, 0);
    CHECK_CLOSE(compact_slot.get(w), masked_slot.get(w), 0, 0);
    // The masked path's score gradient also covers pruned filters (whose ∂L/∂W_eff is zero here).
    CHECK_CLOSE(compact_slot.get(s), masked_slot.get(s), 1e-15, 1e-15);
  }
}

TEST_CASE("kept_index_from_mask lists the set positions in order") {
  CHECK(kept_index_from_mask(from_vector({0, 1, 1, 0, 1}, {5})).to_vector() == std::vector<double>{1, 2, 4});
  CHECK(kept_index_from_mask(from_vector({0, 0}, {2})).numel() == 0);
}

TEST_CASE("scatter_channels_ by hand: kept values in place, the others scaled, a NaN cleared by scale 0") {
  Tensor dense = from_vector({1, 2, 3, 4}, {4});
  scatter_channels_(dense, 0, index_tensor({1, 3}), from_vector({10, 30}, {2}), 0.5);
  CHECK(dense.to_vector() == std::vector<double>{0.5, 10, 1.5, 30});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor with_nan = from_vector({nan, 2, nan}, {3});
  scatter_channels_(with_nan, 0, index_tensor({1}), from_vector({7}, {1}), 0.0);
  CHECK(with_nan.to_vector() == std::vector<double>{0, 7, 0});
}

TEST_CASE("sparse_channel rejects bad indices and shapes") {
  CHECK_THROWS_WITH_AS(gather_channels(zeros({4, 3}), 0, from_vector({0, 1}, {2}, DType::i64)),
                       "gather_channels: kept_index must be i32, got i64 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(gather_channels(zeros({2, 3}), 0, index_tensor({0, 1, 1})),
                       "gather_channels: kept_index lists 3 channels of a dimension of size 2", Error);
  CHECK_THROWS_WITH_AS(gather_channels(zeros({4, 3}), 0, index_tensor({0, 4})),
                       "gather_channels: kept_index[1] = 4 is outside [0, 4)", Error);
  CHECK_THROWS_WITH_AS(gather_channels(zeros({4, 3}), 0, index_tensor({2, 1})),
                       "gather_channels: kept_index must be strictly ascending, but kept_index[1] = 1 follows 2", Error);
  CHECK_THROWS_WITH_AS(scatter_channels_(zeros({4, 3}), 0, index_tensor({-1}), zeros({1, 3}), 0.0),
                       "scatter_channels_: kept_index[0] = -1 is outside [0, 4)", Error);
  CHECK_THROWS_WITH_AS(gather_channels(zeros({2, 3}), 2, index_tensor({0})),
                       "gather_channels: dimension 2 out of range for a 2-D tensor", Error);
  CHECK_THROWS_WITH_AS(gather_filters(zeros({4, 3}), zeros({3}), index_tensor({0})),
                       "gather_filters: score [3] must have one entry per filter of the weight [4, 3]", Error);
  CHECK_THROWS_WITH_AS(scatter_channels_(zeros({4, 3}), 0, index_tensor({0, 2}), zeros({3, 3}), 0.0),
                       "scatter_channels_: compact [3, 3] must be [2, 3] (dense [4, 3] with 2 kept channels along dim 0)",
                       Error);
}

TEST_CASE("gpu: an index on another device than the data is refused, naming both") {
  SCPN_REQUIRE_CUDA();
  const Device gpu = cuda_device(0);
  CHECK_THROWS_WITH_AS(gather_channels(zeros({4, 3}).to(gpu), 0, index_tensor({0, 2})),
                       doctest::Contains("gather_channels: device mismatch: kept_index is i32 [2] on cpu, the data is"),
                       Error);
  CHECK_THROWS_WITH_AS(gather_filters(zeros({4, 3}), zeros({4}), index_tensor({1}).to(gpu)),
                       doctest::Contains("gather_filters: device mismatch: kept_index is i32 [1] on cuda:0"), Error);
}
