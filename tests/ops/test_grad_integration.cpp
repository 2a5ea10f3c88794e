// Conflict-aware gradient integration (engine/ops/grad_integration.h): op-harness cases against an
// explicit-vector implementation written here, hand values, diagnostics, task orders, aliasing, errors,
// and the kernels on a device against the CPU's.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops/grad_integration.h"
#include "engine/random.h"
#include "tests/support/check.h"
#include "tests/support/op_harness.h"

using namespace scpn;

namespace {

// ---- the independent implementation: explicit vectors, one task and one row at a time ----------------
struct Reference {
  std::vector<double> out;
  std::vector<double> weights;
  int64_t projected = 0;
};

double dot_range(const std::vector<double>& a, const std::vector<double>& b, int64_t from, int64_t len) {
  double s = 0;
  for (int64_t e = from; e < from + len; ++e) s += a[size_t(e)] * b[size_t(e)];
  return s;
}

Reference reference_integration(const std::vector<std::vector<double>>& g, int64_t rows,
                               const std::vector<int32_t>& order, bool chain, bool cosine, double gamma) {
  const size_t K = g.size();
  const int64_t n = int64_t(g[0].size());
  const int64_t len = n / rows;
  std::vector<std::vector<double>> h(K);
  Reference x;
  for (size_t i = 0; i < K; ++i) {
    h[i] = g[i];
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t from = r * len;
      bool projected = false;
      for (int32_t j : order) {
        if (size_t(j) == i) continue;
        const std::vector<double>& base = chain ? h[i] : g[i];
        const double d = dot_range(base, g[size_t(j)], from, len);
        if (d >= 0) continue;
        projected = true;
        const double scale = d / (dot_range(g[size_t(j)], g[size_t(j)], from, len) + 1e-8);
        std::vector<double> projected_row(static_cast<size_t>(len));
        for (int64_t e = 0; e < len; ++e)
          projected_row[size_t(e)] = base[size_t(from + e)] - scale * g[size_t(j)][size_t(from + e)];
        for (int64_t e = 0; e < len; ++e) h[i][size_t(from + e)] = projected_row[size_t(e)];
      }
      x.projected += projected ? 1 : 0;
    }
  }
  std::vector<double> a(K);
  double sum_a = 0;
  for (size_t i = 0; i < K; ++i) {
    const double hg = dot_range(h[i], g[i], 0, n);
    const double hn = std::max(std::sqrt(dot_range(h[i], h[i], 0, n)), 1e-8);
    const double gn = std::max(std::sqrt(dot_range(g[i], g[i], 0, n)), 1e-8);
    a[i] = std::pow((1 + hg / (hn * gn)) / 2, gamma);
    sum_a += a[i];
  }
  for (size_t i = 0; i < K; ++i) x.weights.push_back(cosine ? a[i] / (sum_a + 1e-8) : 1.0 / double(K));
  x.out.assign(size_t(n), 0.0);
  for (size_t i = 0; i < K; ++i)
    for (int64_t e = 0; e < n; ++e) x.out[size_t(e)] += double(K) * x.weights[i] * h[i][size_t(e)];
  return x;
}

// ---- helpers ---------------------------------------------------------------------------------------
std::vector<GradientSlot> slots_for(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& grads) {
  std::vector<GradientSlot> slots(grads.size());
  for (size_t i = 0; i < grads.size(); ++i)
    for (size_t p = 0; p < params.size(); ++p) slots[i].set(params[p], grads[i][p]);
  return slots;
}

IntegrationOptions options_of(bool chain, bool cosine, double gamma, bool per_filter, bool fixed) {
  IntegrationOptions o;
  o.semantics = chain ? ConflictSemantics::chain : ConflictSemantics::last;
  o.weighting = cosine ? TaskWeighting::cosine : TaskWeighting::none;
  o.gamma = gamma;
  o.granularity = per_filter ? IntegrationGranularity::filter : IntegrationGranularity::tensor;
  o.fixed_order = fixed;
  return o;
}

// One 2-element parameter and K tasks given as rows of numbers; returns P.grad.
std::vector<double> integrate_small(const std::vector<std::vector<double>>& g, bool fixed_order_0_to_k,
                                    IntegrationOptions o, const std::vector<int32_t>& order = {}) {
  Tensor P = zeros({int64_t(g[0].size())}, DType::f64);
  std::vector<std::vector<Tensor>> grads;
  for (const auto& v : g) grads.push_back({from_vector(v, {int64_t(v.size())}, DType::f64)});
  auto slots = slots_for({P}, grads);
  if (fixed_order_0_to_k) {
    o.fixed_order = true;
    Generator gen(1);
    integrate_gradients({P}, slots, o, gen);
  } else {
    // Call the kernel directly to use a chosen order.
    GradIntegrationTensor t;
    t.rows = 1;
    t.row_len = P.numel();
    for (size_t i = 0; i < g.size(); ++i) {
      t.grads[i] = grads[i][0].raw_data();
      t.order[i] = order[i];
    }
    t.out = P.raw_data();
    GradIntegrationArgs args;
    args.tasks = int32_t(g.size());
    args.semantics = o.semantics;
    args.weighting = o.weighting;
    args.gamma = o.gamma;
    args.tensors = &t;
    args.count = 1;
    kernels().grad_integrate.on(kCPU)(exec_context(kCPU), DType::f64, args);
    return P.to_vector();
  }
  return P.grad().to_vector();
}

// Random gradients for one parameter with conflicts planted on some rows: on every third row task 1 is
// −0.7·task 0 and task 2 is −0.4·task 0 (plus noise), so task 0 has two conflicting partners there;
// every fifth row is made entirely positive in every task (no conflict on it).
std::vector<std::vector<double>> planted_gradients(int64_t K, int64_t rows, int64_t len, uint64_t seed) {
  std::vector<std::vector<double>> g(static_cast<size_t>(K));
  for (int64_t i = 0; i < K; ++i)
    g[size_t(i)] = test::random_f64({rows * len}, seed * 31 + uint64_t(i), -1.0, 1.0).to_vector();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = r * len; e < (r + 1) * len; ++e) {
      if (r % 3 == 0 && K >= 3) {
        g[1][size_t(e)] = -0.7 * g[0][size_t(e)] + 0.1 * g[1][size_t(e)];
        g[2][size_t(e)] = -0.4 * g[0][size_t(e)] + 0.1 * g[2][size_t(e)];
      }
      if (r % 5 == 4)
        for (int64_t i = 0; i < K; ++i) g[size_t(i)][size_t(e)] = std::abs(g[size_t(i)][size_t(e)]) + 0.01;
    }
  }
  return g;
}

// ---- op-harness cases -------------------------------------------------------------------------------
// An integration problem: parameters of these shapes, K task gradients each (`values(p)`, [task][element]),
// the options, and the generator the task orders come from. Its inputs are the K·P gradients, parameter
// by parameter (in[p·K + i] = task i's gradient of parameter p); its "op" integrates them through the front
// end into zero parameters on the inputs' device and returns every parameter's .grad, flattened one after
// the other. Not a differentiable op: no gradcheck.
struct IntegrationProblem {
  std::vector<Shape> shapes;
  int64_t K;
  IntegrationOptions options;
  uint64_t seed, offset;
  std::function<std::vector<std::vector<double>>(size_t p)> values;
};

int64_t rows_of(const Shape& s, const IntegrationOptions& o) {
  return o.granularity == IntegrationGranularity::filter && s.size() == 4 ? s[0] : 1;
}

Tensor integrate_op(const IntegrationProblem& problem, const std::vector<Tensor>& in) {
  const size_t K = size_t(problem.K);
  std::vector<Tensor> params;
  std::vector<std::vector<Tensor>> grads(K);
  for (size_t p = 0; p < problem.shapes.size(); ++p) {
    const Tensor& first = in[p * K];
    params.push_back(zeros(first.shape(), first.dtype(), first.device()));
    for (size_t i = 0; i < K; ++i) grads[i].push_back(in[p * K + i]);
  }
  auto slots = slots_for(params, grads);
  Generator gen(problem.seed, problem.offset);
  integrate_gradients(params, slots, problem.options, gen);
  std::vector<Tensor> out;
  for (const Tensor& P : params) {
    CHECK(P.grad().dtype() == P.dtype());
    CHECK(P.grad().device() == P.device());
    out.push_back(P.grad());
  }
  return test::flat_concat(out);
}

// The explicit-vector implementation over the inputs' values (f32 ones as the kernel sees them), with the
// orders replayed from the same generator (one draw per parameter, in list order).
test::Expected integrate_oracle(const IntegrationProblem& problem, const std::vector<Tensor>& in) {
  const size_t K = size_t(problem.K);
  const IntegrationOptions& o = problem.options;
  Generator replay(problem.seed, problem.offset);
  test::Expected e;
  for (size_t p = 0; p < problem.shapes.size(); ++p) {
    std::vector<std::vector<double>> values;
    for (size_t i = 0; i < K; ++i) values.push_back(in[p * K + i].to_vector());
    std::vector<int32_t> order(K);
    std::iota(order.begin(), order.end(), 0);
    if (!o.fixed_order) order = draw_task_order(int32_t(K), replay);
    const Reference x = reference_integration(values, rows_of(problem.shapes[p], o), order,
                                              o.semantics == ConflictSemantics::chain,
                                              o.weighting == TaskWeighting::cosine, o.gamma);
    e.out.insert(e.out.end(), x.out.begin(), x.out.end());
  }
  return e;
}

// Gram sums run in double on every device, in another order inside a chunk; outputs are rounded once.
test::OpCase integration_case(const std::string& name, const IntegrationProblem& problem) {
  return {.name = name,
          .inputs = [problem](DType d) {
            std::vector<Tensor> in;
            for (size_t p = 0; p < problem.shapes.size(); ++p) {
              const std::vector<std::vector<double>> v = problem.values(p);
              for (int64_t i = 0; i < problem.K; ++i) in.push_back(from_vector(v[size_t(i)], problem.shapes[p], d));
            }
            return in;
          },
          .op = [problem](const std::vector<Tensor>& in) { return integrate_op(problem, in); },
          .oracle = [problem](const std::vector<Tensor>& in, const Tensor&) { return integrate_oracle(problem, in); },
          .oracle_f32 = {1e-6, 1e-5},
          .oracle_f64 = {1e-10, 1e-9},
          .gradcheck = false,
          .parity_f32 = {1e-6, 1e-5},
          .parity_f64 = {1e-12, 1e-11}};
}

std::string describe_options(const IntegrationOptions& o) {
  return cat(o.semantics == ConflictSemantics::chain ? "chain" : "last",
             o.weighting == TaskWeighting::cosine ? cat(" cosine gamma=", o.gamma) : std::string(" none"),
             o.granularity == IntegrationGranularity::filter ? " per-filter" : " whole-tensor",
             o.fixed_order ? " order 0..K-1" : " random orders");
}

// Random gradients with planted conflicts over seven parameters (4-D filters, one of them over several
// 4096-element chunks, a matrix, a vector, a single filter), K = 1, 2, 3, 5, both semantics, both
// weightings, several γ, per-filter and whole-tensor, fixed and random orders.
const std::vector<Shape> kSweepShapes = {{6, 3, 3, 3}, {1, 5, 1, 1}, {9, 2, 5, 5}, {3, 70, 8, 8} /* 4480 > one chunk */,
                                         {8, 10},      {13},         {5, 1, 1, 1}};

std::vector<std::vector<double>> sweep_values(int64_t K, size_t p) {
  const Shape& s = kSweepShapes[p];
  const int64_t rows = s.size() == 4 ? s[0] : 1;
  return planted_gradients(K, rows, shape_numel(s) / rows, 100 * p + uint64_t(K));
}

std::vector<test::OpCase> integration_cases() {
  std::vector<test::OpCase> cases;
  for (int64_t K : {1, 2, 3, 5})
    for (bool chain : {false, true})
      for (bool cosine : {true, false})
        for (double gamma : {0.0, 0.5, 2.0}) {
          if (!cosine && gamma != 0.5) continue;  // γ only matters for cosine weights
          for (bool per_filter : {true, false})
            for (bool fixed : {true, false}) {
              const IntegrationProblem problem{kSweepShapes, K, options_of(chain, cosine, gamma, per_filter, fixed),
                                               42, 7, [K](size_t p) { return sweep_values(K, p); }};
              cases.push_back(
                  integration_case(cat("integrate_gradients K=", K, " ", describe_options(problem.options)), problem));
            }
        }
  // Four tasks on one [7, 4, 3, 3] parameter, random orders from another seed.
  for (bool chain : {false, true}) {
    const IntegrationProblem problem{{{7, 4, 3, 3}}, 4, options_of(chain, true, 0.5, true, false), 9, 0,
                                     [](size_t) { return planted_gradients(4, 7, 36, 5); }};
    cases.push_back(
        integration_case(cat("integrate_gradients K=4 [7, 4, 3, 3] ", describe_options(problem.options)), problem));
  }
  return cases;
}

}  // namespace

TEST_CASE("grad_integration: op harness") {
  test::run_op_cases("grad_integration", integration_cases());
}

TEST_CASE("hand-computed 2-task example: each task is projected off the other") {
  // g0 = (2, 0), g1 = (−1, 1): d = ⟨g0, g1⟩ = −2 < 0.
  //   h0 = g0 − d/(‖g1‖² + 1e-8)·g1 = (2, 0) + (2/2)·(−1, 1) = (1, 1)
  //   h1 = g1 − d/(‖g0‖² + 1e-8)·g0 = (−1, 1) + (2/4)·(2, 0) = (0, 1)
  // cos(h0, g0) = 2/(√2·2) = 1/√2, cos(h1, g1) = 1/(1·√2) = 1/√2 → equal weights 1/2 (for any γ), so
  // P.grad = 2·(½h0 + ½h1) = (1, 2), up to the 1e-8 terms (≈ 3e-9 here).
  for (double gamma : {0.5, 2.0}) {
    IntegrationOptions o = options_of(false, true, gamma, true, true);
    std::vector<double> out = integrate_small({{2, 0}, {-1, 1}}, true, o);
    CHECK_CLOSE(out, std::vector<double>({1.0, 2.0}), 1e-7, 0);
  }
  // weighting none: h0 + h1 = (1, 2) exactly as well; chain equals last with one partner.
  CHECK_CLOSE(integrate_small({{2, 0}, {-1, 1}}, true, options_of(true, false, 0.5, true, true)),
              std::vector<double>({1.0, 2.0}), 1e-7, 0);
}

TEST_CASE("hand-computed 3-task example: cosine weights") {
  // g0 = (2, 0), g1 = (−1, 1), g2 = (0, 1); dots: g0·g1 = −2, g0·g2 = 0, g1·g2 = 1. Only (0, 1) conflict:
  //   h0 = (1, 1), h1 = (0, 1), h2 = g2 = (0, 1)
  //   cos: 1/√2, 1/√2, 1.
  // γ = 0.5: a = √((1 + 1/√2)/2) = 0.9238795325 (tasks 0, 1), 1 (task 2); Σa = 2.8477590650
  //   w = (0.3244233477, 0.3244233477, 0.3511533009); P.grad = 3·Σ wᵢhᵢ = (3·w0, 3·Σw) = (0.9732700460, 3).
  // γ = 1:   a = 0.8535533906, 0.8535533906, 1; Σa = 2.7071067812
  //   w = (0.3153009679, 0.3153009679, 0.3693980608); P.grad = (0.9459029061, 3).
  Generator gen(3);
  IntegrationOptions o = options_of(false, true, 0.5, true, true);
  CHECK_CLOSE(integrate_small({{2, 0}, {-1, 1}, {0, 1}}, true, o), std::vector<double>({0.9732700460, 3.0}), 1e-7, 0);
  o.gamma = 1.0;
  CHECK_CLOSE(integrate_small({{2, 0}, {-1, 1}, {0, 1}}, true, o), std::vector<double>({0.9459029061, 3.0}), 1e-7, 0);

  // The weights the engine reports are the same numbers.
  Tensor P = zeros({2}, DType::f64);
  auto slots = slots_for({P}, {{from_vector({2, 0}, {2}, DType::f64)},
                               {from_vector({-1, 1}, {2}, DType::f64)},
                               {from_vector({0, 1}, {2}, DType::f64)}});
  IntegrationStats s = integrate_gradients({P}, slots, options_of(false, true, 0.5, true, true), gen);
  CHECK_CLOSE(s.weights, std::vector<double>({0.3244233477, 0.3244233477, 0.3511533009}), 1e-9, 0);
  CHECK(s.task_rows == 3);
  CHECK(s.projected_rows == 2);  // tasks 0 and 1 were projected, task 2 not
  CHECK(s.orders == std::vector<int32_t>({0, 1, 2}));
}

TEST_CASE("`last`: when two partners conflict on a row, the order decides") {
  // g0 = (1, 0), g1 = (−1, 1), g2 = (−1, −2): every pair conflicts (dots −1, −1, −1; ‖g‖² = 1, 2, 5).
  // π = (0, 1, 2):  h0 = g0 + (1/5)·g2 = (0.8, −0.4)   (j = 2 is last)
  //                 h1 = g1 + (1/5)·g2 = (−1.2, 0.6)   (j = 2 after j = 0)
  //                 h2 = g2 + (1/2)·g1 = (−1.5, −1.5)  (j = 1 after j = 0)
  //   weighting none: P.grad = h0 + h1 + h2 = (−1.9, −1.3)
  // π = (0, 2, 1):  h0 = g0 + (1/2)·g1 = (0.5, 0.5); h1, h2 as before → P.grad = (−2.2, −0.4)
  IntegrationOptions none = options_of(false, false, 0.5, true, false);
  const std::vector<std::vector<double>> g = {{1, 0}, {-1, 1}, {-1, -2}};
  std::vector<double> a = integrate_small(g, false, none, {0, 1, 2});
  std::vector<double> b = integrate_small(g, false, none, {0, 2, 1});
  CHECK_CLOSE(a, std::vector<double>({-1.9, -1.3}), 1e-7, 0);
  CHECK_CLOSE(b, std::vector<double>({-2.2, -0.4}), 1e-7, 0);
  // The same with the engine's fixed order 0..K−1.
  CHECK_CLOSE(integrate_small(g, true, none), std::vector<double>({-1.9, -1.3}), 1e-7, 0);
  // chain (PCGrad), π = (0, 1, 2): h0 = (0.5, 0.5) after g1; ⟨h0, g2⟩ = −1.5 → h0 = (0.5, 0.5) + 0.3·g2 = (0.2, −0.1)
  //   h1 = (0, 1) after g0; ⟨h1, g2⟩ = −2 → h1 = (0, 1) + 0.4·g2 = (−0.4, 0.2)
  //   h2 = (0, −2) after g0; ⟨h2, g1⟩ = −2 → h2 = (0, −2) + 1·g1 = (−1, −1);  Σ = (−1.2, −0.9)
  IntegrationOptions chain = options_of(true, false, 0.5, true, false);
  CHECK_CLOSE(integrate_small(g, false, chain, {0, 1, 2}), std::vector<double>({-1.2, -0.9}), 1e-7, 0);
  // π = (0, 2, 1): h0 = (0.8, −0.4) after g2; ⟨h0, g1⟩ = −1.2 → h0 = (0.8, −0.4) + 0.6·g1 = (0.2, 0.2);
  //   h1, h2 unchanged → Σ = (−1.2, −0.6)
  CHECK_CLOSE(integrate_small(g, false, chain, {0, 2, 1}), std::vector<double>({-1.2, -0.6}), 1e-7, 0);
}

// The integrated gradients of the same problems are op-harness cases; here the diagnostics.
TEST_CASE("planted conflicts: the weights and projected rows match the explicit-vector implementation") {
  const std::vector<Shape>& shapes = kSweepShapes;
  int checked = 0;
  for (int64_t K : {1, 2, 3, 5}) {
    for (bool chain : {false, true})
      for (bool cosine : {true, false})
        for (double gamma : {0.0, 0.5, 2.0}) {
          if (!cosine && gamma != 0.5) continue;  // γ only matters for cosine weights
          for (bool per_filter : {true, false})
            for (bool fixed : {true, false}) {
              std::vector<Tensor> params;
              std::vector<std::vector<Tensor>> grads(static_cast<size_t>(K));
              std::vector<std::vector<std::vector<double>>> values;  // [param][task][element]
              for (size_t p = 0; p < shapes.size(); ++p) {
                values.push_back(sweep_values(K, p));
                params.push_back(zeros(shapes[p], DType::f64));
                for (int64_t i = 0; i < K; ++i)
                  grads[size_t(i)].push_back(from_vector(values[p][size_t(i)], shapes[p], DType::f64));
              }
              auto slots = slots_for(params, grads);
              Generator gen(42, 7);
              IntegrationStats stats =
                  integrate_gradients(params, slots, options_of(chain, cosine, gamma, per_filter, fixed), gen);
              int64_t expected_projected = 0;
              for (size_t p = 0; p < shapes.size(); ++p) {
                const int64_t rows = per_filter && shapes[p].size() == 4 ? shapes[p][0] : 1;
                std::vector<int32_t> order(stats.orders.begin() + int64_t(p) * K,
                                           stats.orders.begin() + int64_t(p + 1) * K);
                Reference x = reference_integration(values[p], rows, order, chain, cosine, gamma);
                INFO("K=" << K << " chain=" << chain << " cosine=" << cosine << " gamma=" << gamma
                          << " per_filter=" << per_filter << " param " << p << " " << shape_str(shapes[p]));
                CHECK_CLOSE(std::vector<double>(stats.weights.begin() + int64_t(p) * K,
                                                stats.weights.begin() + int64_t(p + 1) * K),
                            x.weights, 1e-12, 1e-10);
                expected_projected += x.projected;
              }
              CHECK(stats.projected_rows == expected_projected);
              if (K >= 3) CHECK(stats.projected_rows > 0);  // the planted conflicts were seen
              ++checked;
            }
        }
  }
  CHECK(checked == 4 * 2 * 4 * 2 * 2);
}

TEST_CASE("no conflicts: the plain sum of the task gradients") {
  // Non-negative gradients: every dot product is >= 0, nothing is projected.
  const int64_t K = 5;
  const Shape shape = {4, 3, 3, 3};
  std::vector<Tensor> g;
  std::vector<double> sum(size_t(shape_numel(shape)), 0.0);
  for (int64_t i = 0; i < K; ++i) {
    g.push_back(test::random_f64(shape, 50 + uint64_t(i), 0.0, 1.0));
    std::vector<double> v = g.back().to_vector();
    for (size_t e = 0; e < v.size(); ++e) sum[e] += v[e];
  }
  for (bool chain : {false, true})
    for (bool per_filter : {true, false}) {
      Tensor P = zeros(shape, DType::f64);
      std::vector<std::vector<Tensor>> grads;
      for (const Tensor& t : g) grads.push_back({t});
      auto slots = slots_for({P}, grads);
      Generator gen(1);
      IntegrationStats none = integrate_gradients({P}, slots, options_of(chain, false, 0.5, per_filter, false), gen);
      CHECK(none.projected_rows == 0);
      CHECK_CLOSE(P.grad().to_vector(), sum, 1e-12, 1e-12);
      // cosine: every cos is 1, aᵢ = 1, wᵢ = 1/(K + 1e-8): K/(K + 1e-8) times the sum.
      IntegrationStats cos = integrate_gradients({P}, slots, options_of(chain, true, 0.5, per_filter, false), gen);
      CHECK_CLOSE(P.grad().to_vector(), sum, 1e-12, 1e-8 / K + 1e-12);
      CHECK_CLOSE(cos.weights, std::vector<double>(size_t(K), 1.0 / (K + 1e-8)), 1e-15, 1e-12);
    }
}

TEST_CASE("task orders: seeded permutations, reproducible, every order reachable") {
  Generator a(42), b(42), c(43);
  std::set<std::vector<int32_t>> seen;
  std::map<std::vector<int32_t>, int> counts;
  for (int t = 0; t < 600; ++t) {
    std::vector<int32_t> pa = draw_task_order(3, a);
    CHECK(pa == draw_task_order(3, b));
    std::vector<int32_t> sorted = pa;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<int32_t>({0, 1, 2}));
    ++counts[pa];
  }
  CHECK(counts.size() == 6);
  for (const auto& [order, n] : counts) CHECK((n > 60 && n < 140));  // 100 expected each
  CHECK(a.offset == 600 * philox_uniform_blocks(3));
  // Another seed gives another sequence.
  Generator a2(42);
  bool differs = false;
  for (int t = 0; t < 20; ++t) differs |= draw_task_order(5, a2) != draw_task_order(5, c);
  CHECK(differs);
  // The engine draws one order per parameter, in list order, from the same stream.
  Tensor P1 = zeros({2}, DType::f64), P2 = zeros({3}, DType::f64);
  std::vector<std::vector<Tensor>> grads;
  for (int i = 0; i < 4; ++i)
    grads.push_back({test::random_f64({2}, uint64_t(i)), test::random_f64({3}, uint64_t(10 + i))});
  auto slots = slots_for({P1, P2}, grads);
  Generator gen(77), replay(77);
  IntegrationStats s = integrate_gradients({P1, P2}, slots, options_of(false, true, 0.5, true, false), gen);
  std::vector<int32_t> o1 = draw_task_order(4, replay), o2 = draw_task_order(4, replay);
  o1.insert(o1.end(), o2.begin(), o2.end());
  CHECK(s.orders == o1);
  CHECK(gen.offset == replay.offset);
}

TEST_CASE("the output may alias a gradient buffer, and an existing .grad is written in place") {
  const int64_t K = 3;
  auto values = planted_gradients(K, 4, 20, 11);
  std::vector<Tensor> g;
  for (int64_t i = 0; i < K; ++i) g.push_back(from_vector(values[size_t(i)], {4, 5, 2, 2}, DType::f64));
  Reference x = reference_integration(values, 4, {2, 0, 1}, false, true, 0.5);

  GradIntegrationTensor t;
  t.rows = 4;
  t.row_len = 20;
  for (int64_t i = 0; i < K; ++i) t.grads[i] = g[size_t(i)].raw_data();
  t.order[0] = 2, t.order[1] = 0, t.order[2] = 1;
  t.out = g[1].raw_data();  // overwrite task 1's gradient
  GradIntegrationArgs args;
  args.tasks = int32_t(K);
  args.tensors = &t;
  args.count = 1;
  kernels().grad_integrate.on(kCPU)(exec_context(kCPU), DType::f64, args);
  CHECK_CLOSE(g[1].to_vector(), x.out, 1e-10, 1e-9);

  Tensor P = zeros({4, 5, 2, 2}, DType::f64);
  Tensor existing = full({4, 5, 2, 2}, 123.0, DType::f64);
  P.set_grad(existing);
  std::vector<std::vector<Tensor>> grads;
  for (int64_t i = 0; i < K; ++i) grads.push_back({from_vector(values[size_t(i)], {4, 5, 2, 2}, DType::f64)});
  auto slots = slots_for({P}, grads);
  Generator gen(5);
  IntegrationStats s = integrate_gradients({P}, slots, options_of(false, true, 0.5, true, false), gen);
  CHECK(P.grad().raw_data() == existing.raw_data());
  CHECK_CLOSE(existing.to_vector(), reference_integration(values, 4, s.orders, false, true, 0.5).out, 1e-10, 1e-9);
}

TEST_CASE("integration errors name the parameter and the task") {
  Tensor P = zeros({2, 3}, DType::f64);
  std::vector<GradientSlot> slots(2);
  slots[0].set(P, zeros({2, 3}, DType::f64));
  Generator gen(1);
  IntegrationOptions o;
  CHECK_THROWS_WITH_AS(integrate_gradients({P}, slots, o, gen),
                       "integrate_gradients: task 1 has no gradient for parameter 0 (f64 [2, 3] on cpu)", Error);
  slots[1].set(P, zeros({3, 2}, DType::f64));
  CHECK_THROWS_WITH_AS(
      integrate_gradients({P}, slots, o, gen),
      "integrate_gradients: task 1's gradient for parameter 0 is f64 [3, 2] on cpu, expected f64 [2, 3] on cpu", Error);
  slots[1].set(P, zeros({2, 3}, DType::f32));
  CHECK_THROWS_WITH_AS(
      integrate_gradients({P}, slots, o, gen),
      "integrate_gradients: task 1's gradient for parameter 0 is f32 [2, 3] on cpu, expected f64 [2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(integrate_gradients({P}, {}, o, gen),
                       "integrate_gradients: 0 task gradient slots, expected 1..16", Error);
  CHECK_THROWS_WITH_AS(integrate_gradients({P}, std::vector<GradientSlot>(17), o, gen),
                       "integrate_gradients: 17 task gradient slots, expected 1..16", Error);
  Tensor Pi = zeros({2}, DType::i64);
  CHECK_THROWS_WITH_AS(integrate_gradients({Pi}, slots, o, gen),
                       "integrate_gradients: parameter 0 must be f32 or f64, got i64 [2] on cpu", Error);
  o.gamma = -1;
  CHECK_THROWS_WITH_AS(integrate_gradients({P}, slots, o, gen),
                       "integrate_gradients: gamma must be finite and >= 0, got -1", Error);
  // The kernel itself rejects an order that is not a permutation.
  Tensor g0 = zeros({2}, DType::f64), g1 = zeros({2}, DType::f64), out = zeros({2}, DType::f64);
  GradIntegrationTensor t;
  t.row_len = 2;
  t.grads[0] = g0.raw_data();
  t.grads[1] = g1.raw_data();
  t.order[0] = 1;
  t.order[1] = 1;
  t.out = out.raw_data();
  GradIntegrationArgs args;
  args.tasks = 2;
  args.tensors = &t;
  args.count = 1;
  CHECK_THROWS_WITH_AS(kernels().grad_integrate.on(kCPU)(exec_context(kCPU), DType::f64, args),
                       "grad_integrate: the task order is not a permutation of 0..1", Error);
}

// ---- the kernels on a device against the CPU's, called directly --------------------------------------
// One call over many tensors (rows = 1 and rows > 1, rows spanning several 4096-element chunks, empty
// tensors), K = 1..5 and 16 tasks, both semantics and weightings, random orders, out aliasing grads[0],
// the weights / projected_rows diagnostics, bit-identical repeats.
namespace {

const Device kGpu = cuda_device(0);

// Gram sums run in double on both devices, in a different order inside a chunk; outputs are rounded once.
test::Tolerance tolerance(DType dtype) {
  return dtype == DType::f64 ? test::Tolerance{1e-12, 1e-11} : test::Tolerance{1e-6, 1e-5};
}

struct TensorShape {
  int64_t rows, row_len;
};
// Whole tensors (rows = 1, one of them over several chunks), filters (rows > 1, some rows over several
// chunks), single elements, and empty tensors.
const std::vector<TensorShape> kShapes = {{1, 1},     {1, 7},      {3, 5}, {64, 27}, {1, 9000}, {5, 4099},
                                          {16, 4608}, {1, 100003}, {2, 0}, {0, 4},   {1, 4096}, {7, 1}};

// K random gradients of one tensor, with conflicts planted as in planted_gradients above: on every third
// row tasks 1 and 2 point against task 0 (with two tasks, task 1 against task 0 on every third row from
// the second); every fifth row is positive in every task.
std::vector<std::vector<double>> planted_tensor_gradients(int K, const TensorShape& s, uint64_t seed) {
  std::vector<std::vector<double>> g(static_cast<size_t>(K));
  const int64_t n = s.rows * s.row_len;
  for (int i = 0; i < K; ++i)
    if (n > 0) g[size_t(i)] = test::random_tensor({n}, DType::f64, seed * 31 + uint64_t(i)).to_vector();
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t e = r * s.row_len; e < (r + 1) * s.row_len; ++e) {
      if (r % 3 == 0 && K >= 3) {
        g[1][size_t(e)] = -0.7 * g[0][size_t(e)] + 0.1 * g[1][size_t(e)];
        g[2][size_t(e)] = -0.4 * g[0][size_t(e)] + 0.1 * g[2][size_t(e)];
      }
      if (r % 3 == 1 && K == 2) g[1][size_t(e)] = -0.5 * g[0][size_t(e)] + 0.2 * g[1][size_t(e)];
      if (r % 5 == 4)
        for (int i = 0; i < K; ++i) g[size_t(i)][size_t(e)] = std::abs(g[size_t(i)][size_t(e)]) + 0.01;
    }
  return g;
}

// The same problem on both devices: per tensor K gradient tensors, an output (or grads[0] when aliased),
// an order, and the diagnostics.
struct Problem {
  std::vector<std::vector<Tensor>> grads;  // [tensor][task]
  std::vector<Tensor> outs;
  Tensor weights, projected;
};

struct KernelCase {
  DType dtype;
  int K;
  ConflictSemantics semantics;
  TaskWeighting weighting;
  double gamma;
  bool alias;
};

std::string describe_case(const KernelCase& c) {
  return cat(dtype_name(c.dtype), " K=", c.K, c.semantics == ConflictSemantics::last ? " last" : " chain",
             c.weighting == TaskWeighting::cosine ? " cosine" : " none", " gamma=", c.gamma, c.alias ? " aliased" : "");
}

// Runs grad_integrate on `device` over copies of the host gradients; returns the problem with its results.
Problem run(const KernelCase& c, Device device, const std::vector<std::vector<std::vector<double>>>& host_grads,
            const std::vector<std::vector<int32_t>>& orders) {
  Problem p;
  std::vector<GradIntegrationTensor> list;
  for (size_t t = 0; t < kShapes.size(); ++t) {
    const int64_t n = kShapes[t].rows * kShapes[t].row_len;
    GradIntegrationTensor d;
    d.rows = kShapes[t].rows;
    d.row_len = kShapes[t].row_len;
    p.grads.emplace_back();
    for (int k = 0; k < c.K; ++k) {
      p.grads[t].push_back(from_vector(host_grads[t][size_t(k)], {n}, c.dtype).to(device));
      d.grads[k] = p.grads[t][size_t(k)].raw_data();
      d.order[k] = orders[t][size_t(k)];
    }
    p.outs.push_back(c.alias ? p.grads[t][0] : zeros({n}, c.dtype, device));
    d.out = p.outs[t].raw_data();
    list.push_back(d);
  }
  p.weights = zeros({int64_t(kShapes.size()) * c.K}, DType::f64, device);
  p.projected = zeros({int64_t(kShapes.size())}, DType::i64, device);
  GradIntegrationArgs args;
  args.tasks = c.K;
  args.semantics = c.semantics;
  args.weighting = c.weighting;
  args.gamma = c.gamma;
  args.tensors = list.data();
  args.count = int64_t(list.size());
  args.weights = p.weights.data<double>();
  args.projected_rows = p.projected.data<int64_t>();
  kernels().grad_integrate.on(device)(exec_context(device), c.dtype, args);
  return p;
}

void check_case(const KernelCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::vector<double>>> host_grads;
  std::vector<std::vector<int32_t>> orders;
  for (size_t t = 0; t < kShapes.size(); ++t) {
    host_grads.push_back(planted_tensor_gradients(c.K, kShapes[t], seed + t));
    std::vector<int32_t> order(static_cast<size_t>(c.K));
    for (int k = 0; k < c.K; ++k) order[size_t(k)] = k;
    std::shuffle(order.begin(), order.end(), rng);
    orders.push_back(order);
  }
  const Problem cpu = run(c, kCPU, host_grads, orders);
  const Problem gpu = run(c, kGpu, host_grads, orders);
  const test::Tolerance tol = tolerance(c.dtype);
  INFO(describe_case(c));
  for (size_t t = 0; t < kShapes.size(); ++t) {
    INFO("tensor ", t, " rows ", kShapes[t].rows, " row_len ", kShapes[t].row_len);
    CHECK_CLOSE(gpu.outs[t].to(kCPU), cpu.outs[t], tol.atol, tol.rtol);
  }
  CHECK_CLOSE(gpu.weights.to(kCPU), cpu.weights, 1e-12, 1e-11);
  CHECK(gpu.projected.to_vector() == cpu.projected.to_vector());
  // Some rows must have been projected, or the test would not exercise the rule.
  if (c.K >= 2) {
    const std::vector<double> projected = cpu.projected.to_vector();
    CHECK(*std::max_element(projected.begin(), projected.end()) > 0);
  }
  // Deterministic: the same call again gives the same bits.
  const Problem again = run(c, kGpu, host_grads, orders);
  for (size_t t = 0; t < kShapes.size(); ++t) CHECK_CLOSE(again.outs[t].to(kCPU), gpu.outs[t].to(kCPU), 0.0, 0.0);
  CHECK_CLOSE(again.weights.to(kCPU), gpu.weights.to(kCPU), 0.0, 0.0);
}

}  // namespace

TEST_CASE("gpu: grad_integrate equals the CPU: K = 1..5, both semantics and weightings, aliasing") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1;
  for (DType dtype : {DType::f32, DType::f64})
    for (int K : {1, 2, 3, 4, 5})
      for (ConflictSemantics semantics : {ConflictSemantics::last, ConflictSemantics::chain})
        for (TaskWeighting weighting : {TaskWeighting::cosine, TaskWeighting::none})
          for (bool alias : {false, true})
            check_case({dtype, K, semantics, weighting, alias ? 2.0 : 0.5, alias}, seed++);
}

TEST_CASE("gpu: grad_integrate with the most tasks (16)") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64})
    for (ConflictSemantics semantics : {ConflictSemantics::last, ConflictSemantics::chain})
      check_case({dtype, kMaxIntegrationTasks, semantics, TaskWeighting::cosine, 0.5, true}, 77);
}

TEST_CASE("gpu: grad_integrate rejects an order that is not a permutation, like the CPU") {
  SCPN_REQUIRE_CUDA();
  Tensor g = zeros({4}, DType::f32, kGpu);
  GradIntegrationTensor t;
  t.rows = 1;
  t.row_len = 4;
  t.grads[0] = t.grads[1] = g.raw_data();
  t.order[0] = 1;
  t.order[1] = 1;
  t.out = g.raw_data();
  GradIntegrationArgs args;
  args.tasks = 2;
  args.tensors = &t;
  args.count = 1;
  CHECK_THROWS_WITH(kernels().grad_integrate.on(kGpu)(exec_context(kGpu), DType::f32, args),
                    doctest::Contains("not a permutation"));
  args.tasks = kMaxIntegrationTasks + 1;
  CHECK_THROWS_WITH(kernels().grad_integrate.on(kGpu)(exec_context(kGpu), DType::f32, args),
                    doctest::Contains("tasks, expected 1.."));
}
