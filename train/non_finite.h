// NaN and ±Inf in training: what a step's check reports (ScpnStep refuses to update the model from a
// non-finite loss or gradient), and the refusal to write a non-finite tensor into a checkpoint. The
// stop/skip policy around the step is train/step_guard.h; docs/reliability.md describes both.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"
#include "train/scpn/step.h"

namespace scpn::train {

// train.non_finite: end the run at the first non-finite step, or skip the step's update (up to
// train.max_skipped_steps).
enum class NonFinitePolicy { stop, skip };

// "" when the step's losses and its gradients (the model's parameters' .grad()) are all finite; else what
// was not, e.g. "the parent loss is nan, the loss of subnetwork 0.5 is nan; 40 of 40 gradients hold
// non-finite values, the first 'conv1.weight': 72 of 72 values are non-finite, the first nan at index 0".
// The finite case is decided from the result's losses and global gradient norm (finite exactly when every
// gradient is), so a finite step costs no extra pass over the gradients.
std::string describe_non_finite_step(const StepResult& result, const nn::Module& model);

// "" when every tensor is finite; else "tensor 'conv1.weight': 1 of 72 values is non-finite, the first nan
// at index 3" (the first such tensor, and " (and N more tensors)" when there are more).
std::string describe_non_finite_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace scpn::train
