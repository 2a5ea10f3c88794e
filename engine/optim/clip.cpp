// Global-norm clipping: one sum-of-squares and (when clipping) one scale kernel call per (device, dtype).
#include "engine/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "engine/dispatch.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

using GroupKey = std::pair<std::string, int>;
GroupKey group_key(const Tensor& t) { return {t.device().str(), int(t.dtype())}; }

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  SCPN_CHECK(std::isfinite(max_norm) && max_norm > 0, "clip_grad_norm: max_norm must be finite and > 0, got ",
             max_norm);
  std::map<GroupKey, std::vector<size_t>> groups;
  for (size_t t = 0; t < grads.size(); ++t) {
    if (!grads[t].defined()) continue;
    SCPN_CHECK(grads[t].dtype() == DType::f32 || grads[t].dtype() == DType::f64, "clip_grad_norm: gradient ", t,
               " must be f32 or f64, got ", describe(grads[t]));
    groups[group_key(grads[t])].push_back(t);
  }

  struct Group {
    Device device;
    DType dtype;
    std::vector<int64_t> sizes;
    std::vector<void*> buffers;
    GradListArgs list() const { return {sizes.data(), buffers.data(), int64_t(sizes.size())}; }
  };
  std::vector<Group> lists;
  double total_sq = 0;
  for (const auto& [key, members] : groups) {
    Group g{grads[members.front()].device(), grads[members.front()].dtype(), {}, {}};
    for (size_t t : members) {
      g.sizes.push_back(grads[t].numel());
      g.buffers.push_back(grads[t].raw_data());
    }
    Tensor sums = Tensor::empty({int64_t(members.size())}, DType::f64, g.device);
    kernels().grad_sum_squares.on(g.device)(exec_context(g.device), g.dtype, g.list(), sums.data<double>());
    for (double s : sums.to_vector()) total_sq += s;
    lists.push_back(std::move(g));
  }

  const double total = std::sqrt(total_sq);
  const double factor = max_norm / (total + 1e-6);
  // A non-finite norm scales nothing: the values stay as they were for the caller's check to name them.
  if (std::isfinite(total) && factor < 1.0)
    for (const Group& g : lists) kernels().grad_scale.on(g.device)(exec_context(g.device), g.dtype, g.list(), factor);
  return total;
}

double clip_grad_norm(const GradientSlot& slot, const std::vector<Tensor>& params, double max_norm) {
  std::vector<Tensor> grads;
  grads.reserve(params.size());
  for (const Tensor& p : params)
    if (p.defined() && slot.has(p)) grads.push_back(slot.get(p));
  return clip_grad_norm(grads, max_norm);
}

}  // namespace scpn
