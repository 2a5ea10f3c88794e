// The optimizer base: groups, gradient collection, learning rates and the checked save/restore of
// per-parameter state (see optimizer.h for the state format).
#include "engine/optim/optimizer.h"

#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"

namespace scpn {

// ---- json helpers ---------------------------------------------------------------------------------

double json_number(const nlohmann::json& j, const std::string& where, const char* key) {
  SCPN_CHECK(j.is_object() && j.contains(key), where, ": missing key '", key, "'");
  const auto& v = j.at(key);
  SCPN_CHECK(v.is_number(), where, ": key '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

int64_t json_int(const nlohmann::json& j, const std::string& where, const char* key) {
  SCPN_CHECK(j.is_object() && j.contains(key), where, ": missing key '", key, "'");
  const auto& v = j.at(key);
  SCPN_CHECK(v.is_number_integer(), where, ": key '", key, "' must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

bool json_bool(const nlohmann::json& j, const std::string& where, const char* key) {
  SCPN_CHECK(j.is_object() && j.contains(key), where, ": missing key '", key, "'");
  const auto& v = j.at(key);
  SCPN_CHECK(v.is_boolean(), where, ": key '", key, "' must be true or false, got ", v.dump());
  return v.get<bool>();
}

void check_option(bool ok, const std::string& who, const char* key, const char* what, double value) {
  SCPN_CHECK(ok, who, ": option '", key, "' must be ", what, ", got ", value);
}

// ---- construction and accessors -------------------------------------------------------------------

Optimizer::Optimizer(std::string name, std::vector<std::vector<Tensor>> groups, std::vector<double> lr_scales,
                     double lr)
    : name_(std::move(name)), params_(std::move(groups)), lr_scales_(std::move(lr_scales)) {
  SCPN_CHECK(!params_.empty(), name_, ": no parameter groups given");
  SCPN_CHECK(lr_scales_.size() == params_.size(), name_, ": ", lr_scales_.size(), " lr scales for ",
             params_.size(), " groups");
  set_lr(lr);
  // A tensor listed twice would be updated twice per step.
  std::unordered_map<const TensorImpl*, std::string> seen;
  for (size_t g = 0; g < params_.size(); ++g) {
    check_option(std::isfinite(lr_scales_[g]) && lr_scales_[g] >= 0, cat(name_, " group ", g), "lr_scale",
                 "finite and >= 0", lr_scales_[g]);
    for (size_t p = 0; p < params_[g].size(); ++p) {
      const Tensor& t = params_[g][p];
      std::string id = cat("group", g, ".param", p);
      SCPN_CHECK(t.defined(), name_, ": parameter ", id, " is an undefined tensor");
      SCPN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, name_, ": parameter ", id,
                 " must be f32 or f64, got ", describe(t));
      auto [it, fresh] = seen.emplace(t.impl(), id);
      SCPN_CHECK(fresh, name_, ": parameter ", id, " is the same tensor as ", it->second);
    }
    state_.emplace_back(params_[g].size());
  }
}

const std::vector<Tensor>& Optimizer::group_params(size_t group) const {
  SCPN_CHECK(group < params_.size(), name_, ": group ", group, " out of range (", params_.size(), " groups)");
  return params_[group];
}

double Optimizer::lr_scale(size_t group) const {
  group_params(group);  // range check
  return lr_scales_[group];
}

void Optimizer::set_lr(double lr) {
  check_option(std::isfinite(lr) && lr >= 0, name_, "lr", "finite and >= 0", lr);
  lr_ = lr;
}

void Optimizer::set_lr_scale(size_t group, double scale) {
  group_params(group);
  check_option(std::isfinite(scale) && scale >= 0, cat(name_, " group ", group), "lr_scale", "finite and >= 0",
               scale);
  lr_scales_[group] = scale;
}

int64_t Optimizer::param_steps(size_t group, size_t param) const {
  SCPN_CHECK(param < group_params(group).size(), name_, ": parameter ", param, " out of range in group ", group);
  return state_[group][param].steps;
}

std::string Optimizer::group_where(size_t group) const { return cat(name_, " group ", group); }

std::vector<std::string> Optimizer::state_kinds(size_t group) const {
  return check_group_options(group_where(group), group_options(group));
}

Tensor& Optimizer::state(size_t group, size_t param, size_t kind) {
  SCPN_CHECK(kind < kMaxStateKinds, name_, ": state kind ", kind, " out of range");
  return state_[group][param].tensors[kind];
}

// ---- stepping -------------------------------------------------------------------------------------

void Optimizer::step() {
  std::vector<std::vector<Tensor>> grads(params_.size());
  for (size_t g = 0; g < params_.size(); ++g)
    for (const Tensor& p : params_[g]) grads[g].push_back(p.grad());
  step_with(grads);
}

void Optimizer::step(const GradientSlot& slot) {
  std::vector<std::vector<Tensor>> grads(params_.size());
  for (size_t g = 0; g < params_.size(); ++g)
    for (const Tensor& p : params_[g]) grads[g].push_back(slot.get(p));
  step_with(grads);
}

void Optimizer::step_with(const std::vector<std::vector<Tensor>>& grads) {
  // Every gradient is checked before anything changes.
  for (size_t g = 0; g < params_.size(); ++g)
    for (size_t p = 0; p < params_[g].size(); ++p) {
      const Tensor& grad = grads[g][p];
      const Tensor& param = params_[g][p];
      if (!grad.defined()) continue;
      SCPN_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype() && grad.device() == param.device(),
                 name_, ".step: the gradient of group", g, ".param", p, " is ", describe(grad),
                 ", the parameter is ", describe(param));
    }
  NoGradGuard no_grad;
  for (size_t g = 0; g < params_.size(); ++g) {
    for (size_t p = 0; p < params_[g].size(); ++p)
      if (grads[g][p].defined()) ++state_[g][p].steps;
    update_group(g, grads[g]);
  }
  ++steps_;
}

std::vector<Optimizer::Batch> Optimizer::batches(size_t group, const std::vector<Tensor>& grads) const {
  std::vector<Batch> out;
  for (size_t p = 0; p < params_[group].size(); ++p) {
    const Tensor& param = params_[group][p];
    if (!grads[p].defined() || param.numel() == 0) continue;
    Batch* batch = nullptr;
    for (Batch& b : out)
      if (b.device == param.device() && b.dtype == param.dtype()) batch = &b;
    if (!batch) batch = &out.emplace_back(Batch{param.device(), param.dtype(), {}});
    batch->params.push_back(p);
  }
  return out;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (const auto& group : params_)
    for (const Tensor& p : group) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none)
        p.set_grad(Tensor());
      else
        fill_(grad, 0.0);
    }
}

// ---- save / restore -------------------------------------------------------------------------------

NamedTensors Optimizer::state_tensors() const {
  NamedTensors out;
  for (size_t g = 0; g < params_.size(); ++g) {
    std::vector<std::string> kinds = state_kinds(g);
    for (size_t p = 0; p < params_[g].size(); ++p) {
      const auto& slots = state_[g][p].tensors;
      for (size_t k = 0; k < kinds.size(); ++k)
        if (slots[k].defined()) out.emplace_back(cat("group", g, ".param", p, ".", kinds[k]), slots[k]);
    }
  }
  return out;
}

nlohmann::json Optimizer::state_meta() const {
  nlohmann::json groups = nlohmann::json::array();
  for (size_t g = 0; g < params_.size(); ++g) {
    nlohmann::json steps = nlohmann::json::array();
    for (const ParamState& s : state_[g]) steps.push_back(s.steps);
    groups.push_back({{"lr_scale", lr_scales_[g]},
                      {"lr", group_lr(g)},
                      {"num_params", params_[g].size()},
                      {"param_steps", steps},
                      {"options", group_options(g)}});
  }
  return {{"optimizer", name_}, {"lr", lr_}, {"step", steps_}, {"groups", groups}};
}

void Optimizer::load_state(const nlohmann::json& meta, const NamedTensors& tensors) {
  const std::string where = name_ + ".load_state";
  SCPN_CHECK(meta.is_object(), where, ": the state meta must be a json object, got ", meta.dump());
  SCPN_CHECK(meta.contains("optimizer") && meta.at("optimizer").is_string(), where, ": missing key 'optimizer'");
  std::string saved_name = meta.at("optimizer").get<std::string>();
  SCPN_CHECK(saved_name == name_, where, ": the state was saved by optimizer '", saved_name, "', not '", name_, "'");
  double lr = json_number(meta, where, "lr");
  check_option(std::isfinite(lr) && lr >= 0, where, "lr", "finite and >= 0", lr);
  int64_t steps = json_int(meta, where, "step");
  SCPN_CHECK(steps >= 0, where, ": key 'step' must be >= 0, got ", steps);
  SCPN_CHECK(meta.contains("groups") && meta.at("groups").is_array(), where, ": missing key 'groups' (an array)");
  const auto& groups = meta.at("groups");
  SCPN_CHECK(groups.size() == params_.size(), where, ": the state has ", groups.size(),
             " parameter groups, the optimizer has ", params_.size());

  std::map<std::string, const Tensor*> by_name;
  for (const auto& [tensor_name, t] : tensors)
    SCPN_CHECK(by_name.emplace(tensor_name, &t).second, where, ": tensor '", tensor_name, "' is given twice");

  // Build the whole new state aside; install it only when everything has passed.
  std::vector<double> new_scales(params_.size());
  std::vector<std::vector<ParamState>> new_state(params_.size());
  std::set<std::string> consumed;
  for (size_t g = 0; g < params_.size(); ++g) {
    const std::string gw = cat(where, ": group ", g);
    const auto& saved = groups[g];
    SCPN_CHECK(saved.is_object(), gw, ": must be a json object, got ", saved.dump());
    new_scales[g] = json_number(saved, gw, "lr_scale");
    check_option(std::isfinite(new_scales[g]) && new_scales[g] >= 0, gw, "lr_scale", "finite and >= 0",
                 new_scales[g]);
    int64_t num_params = json_int(saved, gw, "num_params");
    SCPN_CHECK(num_params == int64_t(params_[g].size()), gw, ": the state has ", num_params,
               " parameters, the optimizer's group has ", params_[g].size());
    SCPN_CHECK(saved.contains("param_steps") && saved.at("param_steps").is_array() &&
                   saved.at("param_steps").size() == params_[g].size(),
               gw, ": key 'param_steps' must be an array of ", params_[g].size(), " step counts");
    SCPN_CHECK(saved.contains("options"), gw, ": missing key 'options'");
    std::vector<std::string> kinds = check_group_options(gw, saved.at("options"));

    for (size_t p = 0; p < params_[g].size(); ++p) {
      const auto& s = saved.at("param_steps")[p];
      SCPN_CHECK(s.is_number_integer() && s.get<int64_t>() >= 0, gw, ": param_steps[", p,
                 "] must be an integer >= 0, got ", s.dump());
      ParamState& ps = new_state[g].emplace_back();
      ps.steps = s.get<int64_t>();
      if (ps.steps == 0) continue;  // a parameter that never stepped has no state tensors
      const Tensor& param = params_[g][p];
      for (size_t k = 0; k < kinds.size(); ++k) {
        const std::string& kind = kinds[k];
        std::string id = cat("group", g, ".param", p, ".", kind);
        auto it = by_name.find(id);
        SCPN_CHECK(it != by_name.end(), where, ": missing tensor '", id, "'");
        const Tensor& src = *it->second;
        SCPN_CHECK(src.defined(), where, ": tensor '", id, "' is undefined");
        SCPN_CHECK(src.dtype() == param.dtype(), where, ": tensor '", id, "' has dtype ", dtype_name(src.dtype()),
                   ", the parameter has ", dtype_name(param.dtype()));
        SCPN_CHECK(src.shape() == param.shape(), where, ": tensor '", id, "' has shape ", shape_str(src.shape()),
                   ", the parameter has ", shape_str(param.shape()));
        Tensor copy = Tensor::empty(param.shape(), param.dtype(), param.device());
        copy.copy_(src);
        ps.tensors[k] = copy;
        consumed.insert(id);
      }
    }
  }
  for (const auto& [tensor_name, t] : by_name)
    SCPN_CHECK(consumed.count(tensor_name), where, ": unexpected tensor '", tensor_name,
               "' (the saved optimizer has no such state)");

  // Commit (nothing below throws).
  lr_ = lr;
  steps_ = steps;
  lr_scales_ = std::move(new_scales);
  state_ = std::move(new_state);
  for (size_t g = 0; g < params_.size(); ++g) set_group_options(g, groups[g].at("options"));
}

}  // namespace scpn
