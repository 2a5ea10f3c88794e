// Gradient integration front end: argument checks, task orders from the Philox stream, kernel
// descriptors grouped by (device, dtype), and the statistics the step logs.
#include "engine/ops/grad_integration.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "engine/dispatch.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

constexpr const char* kOp = "integrate_gradients";

// Indices of the tensors sharing one (device, dtype), in list order: one kernel call each.
using GroupKey = std::pair<std::string, int>;
GroupKey group_key(const Tensor& t) { return {t.device().str(), int(t.dtype())}; }

}  // namespace

std::vector<int32_t> draw_task_order(int32_t K, Generator& gen) {
  SCPN_CHECK(K >= 1, "draw_task_order: K = ", K, " must be >= 1");
  std::vector<int32_t> order(static_cast<size_t>(K));
  for (int32_t i = 0; i < K; ++i) order[size_t(i)] = i;
  for (int32_t i = K - 1; i >= 1; --i) {
    const double u = philox_uniform(gen.seed, gen.offset, uint64_t(K - 1 - i));
    const int32_t j = std::min<int32_t>(i, int32_t(u * double(i + 1)));
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  gen.offset += philox_uniform_blocks(uint64_t(K));
  return order;
}

IntegrationStats integrate_gradients(const std::vector<Tensor>& params, const std::vector<GradientSlot>& task_grads,
                                     const IntegrationOptions& options, Generator& gen) {
  const int64_t K = int64_t(task_grads.size());
  SCPN_CHECK(K >= 1 && K <= kMaxIntegrationTasks, kOp, ": ", K, " task gradient slots, expected 1..",
             kMaxIntegrationTasks);
  SCPN_CHECK(std::isfinite(options.gamma) && options.gamma >= 0, kOp, ": gamma must be finite and >= 0, got ",
             options.gamma);

  const size_t count = params.size();
  IntegrationStats stats;
  stats.weights.assign(count * size_t(K), 0.0);
  stats.orders.assign(count * size_t(K), 0);
  std::vector<GradIntegrationTensor> descriptors(count);
  std::vector<Tensor> outputs(count);
  std::map<GroupKey, std::vector<size_t>> groups;

  for (size_t p = 0; p < count; ++p) {
    const Tensor& P = params[p];
    SCPN_CHECK(P.defined(), kOp, ": parameter ", p, " is an undefined tensor");
    SCPN_CHECK(P.dtype() == DType::f32 || P.dtype() == DType::f64, kOp, ": parameter ", p, " must be f32 or f64, got ",
               describe(P));
    GradIntegrationTensor& d = descriptors[p];
    const bool per_filter = options.granularity == IntegrationGranularity::filter && P.dim() == 4;
    d.rows = per_filter ? P.size(0) : 1;
    d.row_len = d.rows > 0 ? P.numel() / d.rows : 0;
    for (int64_t i = 0; i < K; ++i) {
      SCPN_CHECK(task_grads[size_t(i)].has(P), kOp, ": task ", i, " has no gradient for parameter ", p, " (",
                 describe(P), ")");
      Tensor g = task_grads[size_t(i)].get(P);
      SCPN_CHECK(g.shape() == P.shape() && g.dtype() == P.dtype() && g.device() == P.device(), kOp, ": task ", i,
                 "'s gradient for parameter ", p, " is ", describe(g), ", expected ", describe(P));
      d.grads[i] = g.raw_data();
    }
    std::vector<int32_t> order(static_cast<size_t>(K));
    if (options.fixed_order) {
      for (int64_t i = 0; i < K; ++i) order[size_t(i)] = int32_t(i);
    } else {
      order = draw_task_order(int32_t(K), gen);
    }
    for (int64_t i = 0; i < K; ++i) {
      d.order[i] = order[size_t(i)];
      stats.orders[p * size_t(K) + size_t(i)] = order[size_t(i)];
    }

    Tensor out = P.grad();
    if (!(out.defined() && out.shape() == P.shape() && out.dtype() == P.dtype() && out.device() == P.device())) {
      out = Tensor::empty(P.shape(), P.dtype(), P.device());
      P.set_grad(out);
    }
    outputs[p] = out;
    d.out = out.raw_data();
    stats.task_rows += K * d.rows;
    groups[group_key(P)].push_back(p);
  }

  for (const auto& [key, members] : groups) {
    const Tensor& first = params[members.front()];
    const Device device = first.device();
    std::vector<GradIntegrationTensor> list;
    list.reserve(members.size());
    for (size_t p : members) list.push_back(descriptors[p]);
    Tensor weights = Tensor::empty({int64_t(members.size()), K}, DType::f64, device);
    Tensor projected = Tensor::empty({int64_t(members.size())}, DType::i64, device);
    GradIntegrationArgs args;
    args.tasks = int32_t(K);
    args.semantics = options.semantics;
    args.weighting = options.weighting;
    args.gamma = options.gamma;
    args.tensors = list.data();
    args.count = int64_t(list.size());
    args.weights = weights.data<double>();
    args.projected_rows = projected.data<int64_t>();
    kernels().grad_integrate.on(device)(exec_context(device), first.dtype(), args);

    const std::vector<double> w = weights.to_vector();
    const std::vector<double> proj = projected.to_vector();
    for (size_t m = 0; m < members.size(); ++m) {
      for (int64_t i = 0; i < K; ++i) stats.weights[members[m] * size_t(K) + size_t(i)] = w[m * size_t(K) + size_t(i)];
      stats.projected_rows += int64_t(proj[m]);
    }
  }
  return stats;
}

}  // namespace scpn
