// AdamW: option checks, state kinds (exp_avg, exp_avg_sq) and the per-group kernel call.
#include "engine/optim/adamw.h"

#include <cmath>

#include "engine/dispatch.h"

namespace scpn {

namespace {

std::vector<std::vector<Tensor>> params_of(const std::vector<AdamWGroup>& groups) {
  std::vector<std::vector<Tensor>> out;
  for (const AdamWGroup& g : groups) out.push_back(g.params);
  return out;
}

std::vector<double> scales_of(const std::vector<AdamWGroup>& groups) {
  std::vector<double> out;
  for (const AdamWGroup& g : groups) out.push_back(g.lr_scale);
  return out;
}

nlohmann::json to_json(const AdamWOptions& o) {
  return {{"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"weight_decay", o.weight_decay}};
}

AdamWOptions from_json(const std::string& where, const nlohmann::json& j) {
  AdamWOptions o;
  o.beta1 = json_number(j, where, "beta1");
  o.beta2 = json_number(j, where, "beta2");
  o.eps = json_number(j, where, "eps");
  o.weight_decay = json_number(j, where, "weight_decay");
  return o;
}

}  // namespace

AdamW::AdamW(std::vector<Tensor> params, double lr, AdamWOptions options)
    : AdamW(std::vector<AdamWGroup>{AdamWGroup{std::move(params), options, 1.0}}, lr) {}

AdamW::AdamW(std::vector<AdamWGroup> groups, double lr)
    : Optimizer("AdamW", params_of(groups), scales_of(groups), lr) {
  for (size_t g = 0; g < groups.size(); ++g) {
    check_group_options(group_where(g), to_json(groups[g].options));
    options_.push_back(groups[g].options);
  }
}

const AdamWOptions& AdamW::options(size_t group) const {
  group_params(group);  // range check
  return options_[group];
}

nlohmann::json AdamW::group_options(size_t group) const { return to_json(options_[group]); }

std::vector<std::string> AdamW::check_group_options(const std::string& where,
                                                    const nlohmann::json& options) const {
  AdamWOptions o = from_json(where, options);
  check_option(o.beta1 >= 0 && o.beta1 < 1, where, "beta1", "in [0, 1)", o.beta1);
  check_option(o.beta2 >= 0 && o.beta2 < 1, where, "beta2", "in [0, 1)", o.beta2);
  check_option(std::isfinite(o.eps) && o.eps > 0, where, "eps", "finite and > 0", o.eps);
  check_option(std::isfinite(o.weight_decay) && o.weight_decay >= 0, where, "weight_decay", "finite and >= 0",
               o.weight_decay);
  return {"exp_avg", "exp_avg_sq"};
}

void AdamW::set_group_options(size_t group, const nlohmann::json& options) {
  options_[group] = from_json(group_where(group), options);
}

void AdamW::update_group(size_t group, const std::vector<Tensor>& grads) {
  const AdamWOptions& o = options_[group];
  const std::vector<Tensor>& params = group_params(group);
  for (const Batch& batch : batches(group, grads)) {
    std::vector<AdamWTensor> list;
    for (size_t p : batch.params) {
      const Tensor& param = params[p];
      Tensor& m = state(group, p, 0);
      Tensor& v = state(group, p, 1);
      if (!m.defined()) m = zeros(param.shape(), param.dtype(), param.device());
      if (!v.defined()) v = zeros(param.shape(), param.dtype(), param.device());
      AdamWTensor t;
      t.n = param.numel();
      t.param = param.raw_data();
      t.grad = grads[p].raw_data();
      t.exp_avg = m.raw_data();
      t.exp_avg_sq = v.raw_data();
      t.step = param_steps(group, p);
      list.push_back(t);
    }
    AdamWStepArgs args;
    args.lr = group_lr(group);
    args.beta1 = o.beta1;
    args.beta2 = o.beta2;
    args.eps = o.eps;
    args.weight_decay = o.weight_decay;
    args.tensors = list.data();
    args.count = int64_t(list.size());
    kernels().adamw_step.on(batch.device)(exec_context(batch.device), batch.dtype, args);
  }
}

}  // namespace scpn
