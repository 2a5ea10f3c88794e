// The messages that name what went non-finite (see non_finite.h). The finite case is decided from values
// the step has anyway (its losses and the global gradient norm); only a non-finite step pays for a scan.
#include "train/non_finite.h"

#include <cmath>

#include "engine/non_finite.h"

namespace scpn::train {

namespace {

// "'conv1.weight': 72 of 72 values are non-finite, the first nan at index 0"
std::string first_non_finite(const std::vector<std::pair<std::string, Tensor>>& named, size_t& how_many) {
  std::vector<Tensor> tensors;
  for (const auto& [name, t] : named) tensors.push_back(t);
  const std::vector<size_t> bad = non_finite_tensors(tensors);
  how_many = bad.size();
  if (bad.empty()) return "";
  const auto& [name, t] = named[bad.front()];
  const auto values = find_non_finite(t);
  return cat("'", name, "': ", values ? describe_non_finite(t, *values) : std::string("non-finite values"));
}

}  // namespace

std::string describe_non_finite_step(const StepResult& r, const nn::Module& model) {
  std::string losses;
  auto note_loss = [&](const std::string& what, double value) {
    if (!std::isfinite(value)) losses += cat(losses.empty() ? "" : ", ", what, " is ", non_finite_name(value));
  };
  note_loss("the parent loss", r.parent_loss);
  for (size_t i = 0; i < r.subnet_losses.size() && i < r.capacities.size(); ++i)
    note_loss(cat("the loss of subnetwork ", r.capacities[i]), r.subnet_losses[i]);
  if (losses.empty() && std::isfinite(r.grad_norm)) return "";

  std::vector<std::pair<std::string, Tensor>> grads;
  for (const auto& [name, p] : model.named_parameters())
    if (p.grad().defined()) grads.emplace_back(name, p.grad());
  size_t bad = 0;
  const std::string first = first_non_finite(grads, bad);
  std::string gradients;
  if (bad > 0)
    gradients = cat(bad, " of ", grads.size(), bad == 1 ? " gradient holds" : " gradients hold",
                    " non-finite values, the first ", first);
  else if (!std::isfinite(r.grad_norm))
    gradients = cat("the gradient norm is ", non_finite_name(r.grad_norm));  // every gradient finite, their squares' sum not
  if (losses.empty()) return gradients;
  return gradients.empty() ? losses : cat(losses, "; ", gradients);
}

std::string describe_non_finite_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  size_t bad = 0;
  const std::string first = first_non_finite(tensors, bad);
  if (bad == 0) return "";
  return cat("tensor ", first, bad > 1 ? cat(" (and ", bad - 1, " more tensors)") : std::string());
}

}  // namespace scpn::train
