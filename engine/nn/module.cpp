#include "engine/nn/module.h"

#include "kernels/common/error.h"

namespace scpn::nn {

Tensor& Module::register_parameter(const std::string& name, Tensor value) {
  for (auto& [n, t] : params_)
    if (n == name) throw Error(cat("register_parameter: '", name, "' is already registered"));
  value.requires_grad_(true);
  params_.emplace_back(name, std::make_unique<Tensor>(std::move(value)));
  return *params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  for (auto& [n, t] : buffers_)
    if (n == name) throw Error(cat("register_buffer: '", name, "' is already registered"));
  buffers_.emplace_back(name, std::make_unique<Tensor>(std::move(value)));
  return *buffers_.back().second;
}

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  for (auto& [name, t] : params ? params_ : buffers_)
    if (t->defined()) out.emplace_back(prefix + name, *t);
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::state() const {
  NamedTensors out = named_parameters();
  NamedTensors b = named_buffers();
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, child] : children_) child->train(on);
  on_train_mode_changed();
}

void Module::to(Device device) {
  for (auto& [n, t] : params_) {
    if (!t->defined() || t->device() == device) continue;
    Tensor moved = t->detach().to(device);
    moved.requires_grad_(true);
    *t = moved;
  }
  for (auto& [n, t] : buffers_)
    if (t->defined() && t->device() != device) *t = t->to(device);
  for (auto& [n, child] : children_) child->to(device);
}

void Module::zero_grad() {
  for (auto& [n, t] : params_) t->set_grad(Tensor());
  for (auto& [n, child] : children_) child->zero_grad();
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

}  // namespace scpn::nn
