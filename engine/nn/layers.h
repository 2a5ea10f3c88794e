// The plain layers: Conv2d, BatchNorm (1-D and 2-D), Linear. Each owns its parameters (named as PyTorch's:
// weight, bias, running_mean, running_var) and calls the differentiable op in forward().
#pragma once
#include "engine/nn/module.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/conv2d.h"

namespace scpn::nn {

// Initialisation follows PyTorch's defaults from a seeded Generator: kaiming-uniform(a = √5) weights,
// uniform(±1/√fan_in) biases, BN γ = 1, β = 0, running mean 0, running var 1.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Conv2dOptions options, bool bias, Generator& gen,
         DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  Tensor& weight() { return weight_; }
  const Conv2dOptions& options() const { return options_; }

 private:
  Conv2dOptions options_;
  Tensor& weight_;
  Tensor* bias_ = nullptr;
};

class BatchNorm : public Module {
 public:
  // For [N, C] (BatchNorm1d) and [N, C, H, W] (BatchNorm2d) inputs alike.
  BatchNorm(int64_t channels, DType dtype = DType::f32, double momentum = 0.1, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;

 private:
  double momentum_, eps_;
  Tensor& weight_;
  Tensor& bias_;
  Tensor& running_mean_;
  Tensor& running_var_;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor& weight_;
  Tensor* bias_ = nullptr;
};

}  // namespace scpn::nn
