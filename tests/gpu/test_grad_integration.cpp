// CUDA gradient integration and global-norm clip kernels (kernels/cuda/grad_integration.cu) against the CPU
// kernels, called directly: one call over many tensors (rows = 1 and rows > 1, rows spanning several
// 4096-element chunks, empty tensors), K = 1..5 and 16 tasks with planted conflicts, both semantics, both
// weightings, random task orders, out aliasing grads[0], and the weights / projected_rows diagnostics;
// repeated calls must be bit-identical. f32 and f64. Skips without a CUDA device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"

using namespace scpn;

namespace {

const Device kGpu = cuda_device(0);

struct Tol {
  double atol, rtol;
};
// Gram sums run in double on both devices, in a different order inside a chunk; outputs are rounded once.
Tol tolerance(DType dtype) { return dtype == DType::f64 ? Tol{1e-12, 1e-11} : Tol{1e-6, 1e-5}; }

struct TensorShape {
  int64_t rows, row_len;
};
// Whole tensors (rows = 1, one of them over several chunks), filters (rows > 1, some rows over several
// chunks), single elements, and empty tensors.
const std::vector<TensorShape> kShapes = {{1, 1},     {1, 7},      {3, 5}, {64, 27}, {1, 9000}, {5, 4099},
                                          {16, 4608}, {1, 100003}, {2, 0}, {0, 4},   {1, 4096}, {7, 1}};

// K random gradients of one tensor, with conflicts planted as in tests/train/test_integration.cpp: on
// every third row tasks 1 and 2 point against task 0; every fifth row is positive in every task.
std::vector<std::vector<double>> planted_gradients(int K, const TensorShape& s, uint64_t seed) {
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

struct Case {
  DType dtype;
  int K;
  ConflictSemantics semantics;
  TaskWeighting weighting;
  double gamma;
  bool alias;
};

std::string describe_case(const Case& c) {
  return cat(dtype_name(c.dtype), " K=", c.K, c.semantics == ConflictSemantics::last ? " last" : " chain",
             c.weighting == TaskWeighting::cosine ? " cosine" : " none", " gamma=", c.gamma, c.alias ? " aliased" : "");
}

// Runs grad_integrate on `device` over copies of the host gradients; returns the problem with its results.
Problem run(const Case& c, Device device, const std::vector<std::vector<std::vector<double>>>& host_grads,
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

void check_case(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::vector<double>>> host_grads;
  std::vector<std::vector<int32_t>> orders;
  for (size_t t = 0; t < kShapes.size(); ++t) {
    host_grads.push_back(planted_gradients(c.K, kShapes[t], seed + t));
    std::vector<int32_t> order(static_cast<size_t>(c.K));
    for (int k = 0; k < c.K; ++k) order[size_t(k)] = k;
    std::shuffle(order.begin(), order.end(), rng);
    orders.push_back(order);
  }
  const Problem cpu = run(c, kCPU, host_grads, orders);
  const Problem gpu = run(c, kGpu, host_grads, orders);
  const Tol tol = tolerance(c.dtype);
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

TEST_CASE("cuda grad_integrate equals the CPU: K = 1..5, both semantics and weightings, aliasing") {
  SCPN_REQUIRE_CUDA();
  uint64_t seed = 1;
  for (DType dtype : {DType::f32, DType::f64})
    for (int K : {1, 2, 3, 4, 5})
      for (ConflictSemantics semantics : {ConflictSemantics::last, ConflictSemantics::chain})
        for (TaskWeighting weighting : {TaskWeighting::cosine, TaskWeighting::none})
          for (bool alias : {false, true})
            check_case({dtype, K, semantics, weighting, alias ? 2.0 : 0.5, alias}, seed++);
}

TEST_CASE("cuda grad_integrate with the most tasks (16)") {
  SCPN_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f64})
    for (ConflictSemantics semantics : {ConflictSemantics::last, ConflictSemantics::chain})
      check_case({dtype, kMaxIntegrationTasks, semantics, TaskWeighting::cosine, 0.5, true}, 77);
}

TEST_CASE("cuda grad_integrate rejects an order that is not a permutation, like the CPU") {
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

TEST_CASE("cuda grad_sum_squares and grad_scale equal the CPU over 200 buffers") {
  SCPN_REQUIRE_CUDA();
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int64_t> small(1, 5000);
  std::vector<int64_t> sizes = {1, 0, 4096, 4097, 1000003};
  while (sizes.size() < 200) sizes.push_back(small(rng));
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<Tensor> cpu, gpu;
    std::vector<void*> cpu_ptrs, gpu_ptrs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      cpu.push_back(test::random_tensor({sizes[i]}, dtype, 300 + i, -3.0, 3.0));
      gpu.push_back(cpu.back().to(kGpu));
      cpu_ptrs.push_back(cpu.back().raw_data());
      gpu_ptrs.push_back(gpu.back().raw_data());
    }
    auto sum_squares = [&](Device d) {
      GradListArgs list{sizes.data(), d.is_cpu() ? cpu_ptrs.data() : gpu_ptrs.data(), int64_t(sizes.size())};
      Tensor out = zeros({int64_t(sizes.size())}, DType::f64, d);
      kernels().grad_sum_squares.on(d)(exec_context(d), dtype, list, out.data<double>());
      return out.to_vector();
    };
    const std::vector<double> expected = sum_squares(kCPU);
    const std::vector<double> actual = sum_squares(kGpu);
    INFO(dtype_name(dtype));
    CHECK_CLOSE(actual, expected, 0.0, 1e-11);
    CHECK(expected[1] == 0.0);
    CHECK_CLOSE(sum_squares(kGpu), actual, 0.0, 0.0);  // deterministic

    for (Device d : {kCPU, kGpu}) {
      GradListArgs list{sizes.data(), d.is_cpu() ? cpu_ptrs.data() : gpu_ptrs.data(), int64_t(sizes.size())};
      kernels().grad_scale.on(d)(exec_context(d), dtype, list, 0.37);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      INFO("buffer ", i, " of ", sizes[i], " elements");
      CHECK_CLOSE(gpu[i].to(kCPU), cpu[i], 0.0, 0.0);  // one multiplication in the dtype: exact
    }
  }
}
