// SGD: option checks, state kinds and the per-group kernel call.
#include "engine/optim/sgd.h"

#include <cmath>

#include "engine/dispatch.h"

namespace scpn {

namespace {

std::vector<std::vector<Tensor>> params_of(const std::vector<SgdGroup>& groups) {
  std::vector<std::vector<Tensor>> out;
  for (const SgdGroup& g : groups) out.push_back(g.params);
  return out;
}

std::vector<double> scales_of(const std::vector<SgdGroup>& groups) {
  std::vector<double> out;
  for (const SgdGroup& g : groups) out.push_back(g.lr_scale);
  return out;
}

nlohmann::json to_json(const SgdOptions& o) {
  return {{"momentum", o.momentum}, {"dampening", o.dampening}, {"weight_decay", o.weight_decay},
          {"nesterov", o.nesterov}};
}

SgdOptions from_json(const std::string& where, const nlohmann::json& j) {
  SgdOptions o;
  o.momentum = json_number(j, where, "momentum");
  o.dampening = json_number(j, where, "dampening");
  o.weight_decay = json_number(j, where, "weight_decay");
  o.nesterov = json_bool(j, where, "nesterov");
  return o;
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, double lr, SgdOptions options)
    : SGD(std::vector<SgdGroup>{SgdGroup{std::move(params), options, 1.0}}, lr) {}

SGD::SGD(std::vector<SgdGroup> groups, double lr) : Optimizer("SGD", params_of(groups), scales_of(groups), lr) {
  for (size_t g = 0; g < groups.size(); ++g) {
    check_group_options(group_where(g), to_json(groups[g].options));
    options_.push_back(groups[g].options);
  }
}

const SgdOptions& SGD::options(size_t group) const {
  group_params(group);  // range check
  return options_[group];
}

nlohmann::json SGD::group_options(size_t group) const { return to_json(options_[group]); }

std::vector<std::string> SGD::check_group_options(const std::string& where, const nlohmann::json& options) const {
  SgdOptions o = from_json(where, options);
  check_option(std::isfinite(o.momentum) && o.momentum >= 0, where, "momentum", "finite and >= 0", o.momentum);
  check_option(o.dampening >= 0 && o.dampening <= 1, where, "dampening", "in [0, 1]", o.dampening);
  check_option(std::isfinite(o.weight_decay) && o.weight_decay >= 0, where, "weight_decay", "finite and >= 0",
               o.weight_decay);
  SCPN_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), where,
             ": option 'nesterov' needs momentum > 0 and dampening = 0, got momentum ", o.momentum,
             " and dampening ", o.dampening);
  if (o.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::set_group_options(size_t group, const nlohmann::json& options) {
  options_[group] = from_json(group_where(group), options);
}

void SGD::update_group(size_t group, const std::vector<Tensor>& grads) {
  const SgdOptions& o = options_[group];
  const std::vector<Tensor>& params = group_params(group);
  for (const Batch& batch : batches(group, grads)) {
    std::vector<SgdTensor> list;
    for (size_t p : batch.params) {
      SgdTensor t;
      t.n = params[p].numel();
      t.param = params[p].raw_data();
      t.grad = grads[p].raw_data();
      if (o.momentum != 0) {
        Tensor& buf = state(group, p, 0);
        t.first_step = !buf.defined();
        if (t.first_step) buf = Tensor::empty(params[p].shape(), params[p].dtype(), params[p].device());
        t.momentum_buffer = buf.raw_data();
      }
      list.push_back(t);
    }
    SgdStepArgs args;
    args.lr = group_lr(group);
    args.momentum = o.momentum;
    args.dampening = o.dampening;
    args.weight_decay = o.weight_decay;
    args.nesterov = o.nesterov;
    args.tensors = list.data();
    args.count = int64_t(list.size());
    kernels().sgd_step.on(batch.device)(exec_context(batch.device), batch.dtype, args);
  }
}

}  // namespace scpn
