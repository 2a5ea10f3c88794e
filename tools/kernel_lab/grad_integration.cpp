// The gradient-integration lab's problems, its f64 reference and the engine's kernel on the same buffers
// (grad_integration.h).
#include "tools/kernel_lab/grad_integration.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "kernels/grad_integration.h"

namespace lab {

IntegrationProblem make_grad_integration_problem(std::string name, int K,
                                            const std::vector<std::pair<int64_t, int64_t>>& shapes, uint64_t seed) {
  IntegrationProblem p;
  p.name = std::move(name);
  p.K = K;
  Random random(seed);
  for (const auto& [rows, row_len] : shapes) {
    IntegrationTensor t;
    t.offset = p.numel;
    t.rows = rows;
    t.row_len = row_len;
    for (int i = 0; i < K; ++i) t.order[size_t(i)] = i;
    for (int i = K - 1; i > 0; --i) std::swap(t.order[size_t(i)], t.order[random.next() % uint64_t(i + 1)]);
    p.tensors.push_back(t);
    p.numel += rows * row_len;
  }
  p.grads.assign(size_t(K), std::vector<float>(size_t(p.numel)));
  std::vector<double> scale(static_cast<size_t>(K));
  for (double& s : scale) s = random.uniform(0.5, 2.0);
  std::vector<double> base;
  for (const IntegrationTensor& t : p.tensors) {
    for (int64_t r = 0; r < t.rows; ++r) {
      const double alpha = random.uniform(0.0, 1.5);
      base.resize(size_t(t.row_len));
      for (double& b : base) b = random.uniform();
      const int64_t row = t.offset + r * t.row_len;
      for (int k = 0; k < K; ++k)
        for (int64_t e = 0; e < t.row_len; ++e)
          p.grads[size_t(k)][size_t(row + e)] = float(scale[size_t(k)] * (alpha * base[size_t(e)] + random.uniform()));
    }
  }
  return p;
}

IntegrationProblem resnet18_grad_integration_problem() {
  // (filters, C·R·S) of every convolution from the stem to layer3, in forward order.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {64, 3 * 49},                                                              // conv1 (7x7 stem)
      {64, 576},   {64, 576},   {64, 576},  {64, 576},                           // layer1
      {128, 576},  {128, 1152}, {128, 64},  {128, 1152}, {128, 1152},            // layer2 (+ downsample)
      {256, 1152}, {256, 2304}, {256, 128}, {256, 2304}, {256, 2304},            // layer3 (+ downsample)
  };
  return make_grad_integration_problem("ResNet-18 (width 64) stem..layer3 convolution weights, K = 5", 5, shapes, 2026);
}

std::vector<IntegrationProblem> grad_integration_check_problems() {
  std::vector<IntegrationProblem> problems;
  const std::vector<std::pair<int64_t, int64_t>> odd = {{7, 37}, {1, 1000}, {3, 4097}, {5, 1}, {16, 9}};
  problems.push_back(make_grad_integration_problem("odd shapes, K = 5", 5, odd, 1));
  problems.push_back(make_grad_integration_problem("odd shapes, K = 2", 2, odd, 2));
  problems.push_back(make_grad_integration_problem("one task, K = 1", 1, {{4, 33}, {1, 7}}, 3));
  problems.push_back(make_grad_integration_problem("K = 8 (the lab's largest)", kMaxTasks, {{12, 75}, {2, 513}}, 4));
  problems.push_back(make_grad_integration_problem("a ResNet layer, K = 5", 5, {{64, 576}, {128, 576}}, 5));
  return problems;
}

std::vector<double> grad_integration_reference(const IntegrationProblem& p) {
  const int K = p.K;
  std::vector<double> out(size_t(p.numel));
  for (const IntegrationTensor& t : p.tensors) {
    const int64_t n = t.rows * t.row_len;
    auto g = [&](int k, int64_t e) { return double(p.grads[size_t(k)][size_t(t.offset + e)]); };
    auto row_dot = [&](int a, int b, int64_t r) {
      double s = 0;
      for (int64_t e = r * t.row_len; e < (r + 1) * t.row_len; ++e) s += g(a, e) * g(b, e);
      return s;
    };
    std::vector<std::vector<double>> h(static_cast<size_t>(K), std::vector<double>(static_cast<size_t>(n)));
    for (int i = 0; i < K; ++i) {
      for (int64_t e = 0; e < n; ++e) h[size_t(i)][size_t(e)] = g(i, e);
      for (int q = 0; q < K; ++q) {
        const int j = t.order[size_t(q)];
        if (j == i) continue;
        for (int64_t r = 0; r < t.rows; ++r) {
          const double d = row_dot(i, j, r);
          if (d >= 0) continue;
          const double c = d / (row_dot(j, j, r) + 1e-8);
          for (int64_t e = r * t.row_len; e < (r + 1) * t.row_len; ++e) h[size_t(i)][size_t(e)] = g(i, e) - c * g(j, e);
        }
      }
    }
    std::vector<double> w(static_cast<size_t>(K));
    double total = 0;
    for (int i = 0; i < K; ++i) {
      double hg = 0, hh = 0, gg = 0;
      for (int64_t e = 0; e < n; ++e) {
        hg += h[size_t(i)][size_t(e)] * g(i, e);
        hh += h[size_t(i)][size_t(e)] * h[size_t(i)][size_t(e)];
        gg += g(i, e) * g(i, e);
      }
      const double cos = hg / (std::max(std::sqrt(hh), 1e-8) * std::max(std::sqrt(gg), 1e-8));
      w[size_t(i)] = std::pow((1.0 + cos) / 2.0, p.gamma);
      total += w[size_t(i)];
    }
    for (int64_t e = 0; e < n; ++e) {
      double v = 0;
      for (int i = 0; i < K; ++i) v += w[size_t(i)] / (total + 1e-8) * h[size_t(i)][size_t(e)];
      out[size_t(t.offset + e)] = double(K) * v;
    }
  }
  return out;
}

void grad_integration_engine_cpu(const IntegrationProblem& p, float* out) {
  std::vector<scpn::GradIntegrationTensor> tensors(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const IntegrationTensor& t = p.tensors[i];
    scpn::GradIntegrationTensor& d = tensors[i];
    d.rows = t.rows;
    d.row_len = t.row_len;
    for (int k = 0; k < p.K; ++k) {
      d.grads[k] = p.grads[size_t(k)].data() + t.offset;
      d.order[k] = t.order[size_t(k)];
    }
    d.out = out + t.offset;
  }
  scpn::GradIntegrationArgs args;
  args.tasks = p.K;
  args.semantics = scpn::ConflictSemantics::last;
  args.weighting = scpn::TaskWeighting::cosine;
  args.gamma = p.gamma;
  args.tensors = tensors.data();
  args.count = int64_t(tensors.size());
  scpn::cpu::grad_integrate(scpn::ExecContext{scpn::kCPU}, scpn::DType::f32, args);
}

}  // namespace lab
