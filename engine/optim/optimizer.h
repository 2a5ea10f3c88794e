// The optimizer base: parameter groups, the learning rate, gradient collection (from .grad() or a
// GradientSlot), per-parameter state tensors and their save/restore. SGD and AdamW (sgd.h, adamw.h)
// supply the hyper-parameters and the update; the arithmetic lives in the kernels (kernels/optimizer.h).
#pragma once
#include <array>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace scpn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Learning rates: the optimizer holds one base lr (what a schedule sets); each group scales it by its
// lr_scale (default 1), so group g updates with lr() · lr_scale(g).
//
// State save/restore: state_tensors() names every per-parameter state tensor
// "group<g>.param<p>.<kind>" (kind: momentum_buffer, exp_avg, exp_avg_sq), and state_meta() holds
// everything else as json:
//   {"optimizer": "SGD", "lr": 0.1, "step": 2,
//    "groups": [{"lr_scale": 1, "lr": 0.1, "num_params": 3, "param_steps": [2, 2, 0],
//                "options": {"momentum": 0.9, ...}}]}
// (a group's "lr" is informational; "param_steps" counts the steps in which that parameter had a
// gradient). load_state(meta, tensors) takes the saved lr, options and state, after checking all of
// it first; on any error it throws naming the tensor or key and the reason, and changes nothing.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& name() const { return name_; }  // "SGD", "AdamW"

  // One update of every parameter that has a gradient, read from param.grad() or from `grads`
  // (GradientSlot::get). Parameters without a gradient are skipped and their state is left alone.
  // A gradient must match its parameter's shape, dtype and device. Runs under NoGradGuard.
  void step();
  void step(const GradientSlot& grads);

  // Drops every parameter's .grad() (set_to_none) or fills it with zeros.
  void zero_grad(bool set_to_none = true);

  double lr() const { return lr_; }
  void set_lr(double lr);  // finite and >= 0
  size_t num_groups() const { return params_.size(); }
  const std::vector<Tensor>& group_params(size_t group) const;
  double lr_scale(size_t group) const;
  void set_lr_scale(size_t group, double scale);  // finite and >= 0
  double group_lr(size_t group) const { return lr_ * lr_scale(group); }
  int64_t step_count() const { return steps_; }  // step() calls so far
  int64_t param_steps(size_t group, size_t param) const;

  // The live state tensors (not copies: clone them to keep a snapshot while training goes on), in a
  // stable order. A parameter that has not stepped yet has none.
  NamedTensors state_tensors() const;
  nlohmann::json state_meta() const;
  // Restores a saved state into an optimizer built over the same parameter groups. Tensors are copied
  // to each parameter's device; their dtype and shape must equal the parameter's.
  void load_state(const nlohmann::json& meta, const NamedTensors& tensors);

 protected:
  // groups[g] are the parameters of group g; lr_scales has one entry per group.
  Optimizer(std::string name, std::vector<std::vector<Tensor>> groups, std::vector<double> lr_scales, double lr);

  // Hyper-parameters of group g (everything but the learning rate) as json.
  virtual nlohmann::json group_options(size_t group) const = 0;
  // Validates saved options for a group (throws an Error starting with `where` and naming the key) and
  // returns the kinds of per-parameter state tensor such a group keeps once a parameter has stepped.
  virtual std::vector<std::string> check_group_options(const std::string& where,
                                                       const nlohmann::json& options) const = 0;
  // Installs options that passed check_group_options; must not throw.
  virtual void set_group_options(size_t group, const nlohmann::json& options) = 0;
  // The kinds of state tensor group g keeps (check_group_options of its current options).
  std::vector<std::string> state_kinds(size_t group) const;

  // Updates group g: grads[p] is the gradient of parameter p, undefined for a skipped parameter.
  // param_steps of the updated parameters have already been incremented.
  virtual void update_group(size_t group, const std::vector<Tensor>& grads) = 0;

  // Per-parameter state tensor `kind` (index into state_kinds(group)); undefined until created.
  static constexpr size_t kMaxStateKinds = 4;
  Tensor& state(size_t group, size_t param, size_t kind);

  // The parameters of one group that have gradients, split so that each kernel call sees one device
  // and one dtype.
  struct Batch {
    Device device;
    DType dtype;
    std::vector<size_t> params;
  };
  std::vector<Batch> batches(size_t group, const std::vector<Tensor>& grads) const;

  // "SGD: group 1 option 'momentum'"-style prefix for messages about a group.
  std::string group_where(size_t group) const;

 private:
  struct ParamState {
    int64_t steps = 0;
    // One per state kind, undefined until created; a fixed array keeps references from state() valid.
    std::array<Tensor, kMaxStateKinds> tensors;
  };

  void step_with(const std::vector<std::vector<Tensor>>& grads);

  std::string name_;
  std::vector<std::vector<Tensor>> params_;
  std::vector<double> lr_scales_;
  std::vector<std::vector<ParamState>> state_;
  double lr_ = 0;
  int64_t steps_ = 0;
};

// Helpers for reading hyper-parameters out of json with messages that name the key; shared by the
// optimizers and the schedules. `where` starts the message ("SGD.load_state: group 0").
double json_number(const nlohmann::json& j, const std::string& where, const char* key);
int64_t json_int(const nlohmann::json& j, const std::string& where, const char* key);
bool json_bool(const nlohmann::json& j, const std::string& where, const char* key);
// Throws "<who>: option '<key>' must be <what>, got <value>" unless ok.
void check_option(bool ok, const std::string& who, const char* key, const char* what, double value);

}  // namespace scpn
