// masked_weight: W_eff = M ⊙ W with the straight-through gradients, in both granularities. The weight
// gradient is the true gradient (finite differences); the score gradient is the STE's definition,
// checked against a loop written here.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/masked_weight.h"
#include "engine/ops/reduce.h"
#include "engine/ops/select.h"
#include "tests/support/check.h"

using namespace scpn;
using test::random_f64;

static double sgn(double v) { return double((v > 0) - (v < 0)); }

TEST_CASE("weight granularity: values and straight-through gradients") {
  Tensor w = random_f64({4, 3, 3, 3}, 1).requires_grad_();
  Tensor s = random_f64({4, 3, 3, 3}, 2).requires_grad_();
  Tensor m = capacity_masks(s.detach(), {0.4})[0];
  Tensor g = random_f64({4, 3, 3, 3}, 3);
  Tensor out = masked_weight(w, s, m);
  auto wv = w.to_vector(), sv = s.to_vector(), mv = m.to_vector(), gv = g.to_vector(), ov = out.to_vector();
  for (size_t i = 0; i < wv.size(); ++i) CHECK(ov[i] == mv[i] * wv[i]);
  backward(out, g);
  auto gw = w.grad().to_vector(), gs = s.grad().to_vector();
  for (size_t i = 0; i < wv.size(); ++i) {
    CHECK(gw[i] == doctest::Approx(mv[i] * gv[i]).epsilon(1e-15));
    CHECK(gs[i] == doctest::Approx(sgn(sv[i]) * wv[i] * gv[i]).epsilon(1e-15));  // pruned ones too
  }
  CHECK_GRADCHECK("masked_weight (weight) wrt W", [&](const std::vector<Tensor>& v) { return masked_weight(v[0], s.detach(), m); },
                  {w});
}

TEST_CASE("channel granularity: one score per filter, gradient summed over the filter") {
  Tensor w = random_f64({5, 2, 3, 3}, 4).requires_grad_();
  Tensor s = random_f64({5}, 5).requires_grad_();
  Tensor m = capacity_masks(s.detach(), {0.6})[0];
  Tensor g = random_f64({5, 2, 3, 3}, 6);
  Tensor out = masked_weight(w, s, m);
  backward(out, g);
  auto wv = w.to_vector(), sv = s.to_vector(), mv = m.to_vector(), gv = g.to_vector(), ov = out.to_vector();
  auto gw = w.grad().to_vector(), gs = s.grad().to_vector();
  for (size_t f = 0; f < 5; ++f) {
    double dot = 0;
    for (size_t j = 0; j < 18; ++j) {
      size_t i = f * 18 + j;
      CHECK(ov[i] == mv[f] * wv[i]);
      CHECK(gw[i] == doctest::Approx(mv[f] * gv[i]).epsilon(1e-15));
      dot += wv[i] * gv[i];
    }
    CHECK(gs[f] == doctest::Approx(sgn(sv[f]) * dot).epsilon(1e-13));
  }
  CHECK(sum(m).item() == 3);  // 5 filters at capacity 0.6: k = 1 + round(0.4·4) = 3 → keeps 3
}

TEST_CASE("masked_weight rejects mismatched shapes") {
  CHECK_THROWS_WITH_AS(masked_weight(zeros({4, 3}), zeros({3}), zeros({3})),
                       "masked_weight: score [3] must have the weight's shape [4, 3] or one entry per filter [4]", Error);
  CHECK_THROWS_WITH_AS(masked_weight(zeros({4, 3}), zeros({4}), zeros({4, 3})),
                       "masked_weight: mask [4, 3] and score [4] must have the same shape", Error);
}
