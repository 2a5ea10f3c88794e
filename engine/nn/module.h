// Module: a named tree of parameters, buffers and child modules, as in PyTorch, so that parameter names
// ("layer1.0.conv1.weight") come out of the structure and match torchvision's state dicts. Modules hold
// tensors; the math lives in the differentiable ops (engine/ops/).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace scpn::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter / buffer of this module and its children, depth-first in registration order, with
  // dotted names.
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  // Parameters and buffers together, parameters first within each module (a state dict).
  NamedTensors state() const;

  // Training mode switches BatchNorm between batch and running statistics.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter and buffer to `device` (parameters stay leaves requiring grad).
  void to(Device device);
  // Clears .grad of every parameter.
  void zero_grad();
  int64_t parameter_count() const;

 protected:
  Tensor& register_parameter(const std::string& name, Tensor value);  // sets requires_grad
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    children_.emplace_back(name, child);
    return child;
  }
  // Called after train()/eval() reaches this module, for modules with mode-dependent state.
  virtual void on_train_mode_changed() {}

 private:
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;
  // Stored as unique_ptr<Tensor> so the references returned by register_* stay valid.
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace scpn::nn
