// Stop or skip a non-finite step (see step_guard.h). A skipped step still counts as a step: its batch is
// consumed and the learning-rate schedule moves on, so a run's step numbers, data order and schedule do
// not depend on how many steps were skipped.
#include "train/step_guard.h"

#include <cmath>

#include "engine/non_finite.h"

namespace scpn::train {

namespace {

// debug.inject_nan_step: the first pixel of the batch's first image becomes NaN (a corrupt input).
Tensor with_nan_pixel(const Tensor& images) {
  Tensor host = images.to(kCPU).to(DType::f64).clone();
  host.data<double>()[0] = NAN;
  return host.to(images.dtype()).to(images.device());
}

}  // namespace

std::string step_name(const TrainPosition& p) {
  return cat("step ", p.step + 1, " (epoch ", p.epoch, ", batch ", p.batch, ")");
}

StepGuard::StepGuard(models::ResNet& model, ScpnStep& step, StepGuardOptions options)
    : model_(model), step_(step), options_(options) {
  SCPN_CHECK(!step_.options().throw_on_non_finite, "StepGuard: the step must report non-finite values, not throw");
  for (auto& [name, t] : model_.named_buffers()) buffers_.push_back(t);
}

void StepGuard::keep_bn_statistics() {
  if (kept_.empty())
    for (const Tensor& t : buffers_) kept_.push_back(t.clone());
  else
    for (size_t i = 0; i < buffers_.size(); ++i) kept_[i].copy_(buffers_[i]);
}

void StepGuard::restore_bn_statistics() {
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(kept_[i]);
}

StepResult StepGuard::run(const Tensor& images, const Tensor& labels, TrainPosition& position) {
  const bool inject = options_.inject_nan_step == position.step + 1;
  // Only a skip needs the statistics back; under `stop` the run ends and nothing more is saved.
  if (options_.policy == NonFinitePolicy::skip) keep_bn_statistics();
  StepResult r;
  try {
    r = step_.run(inject ? with_nan_pixel(images) : images, labels, position.step);
  } catch (const NonFiniteOpError& e) {
    throw Error(cat(step_name(position), ": debug.detect_non_finite: ", e.what()));
  }
  if (r.non_finite.empty()) return r;

  const std::string what = cat(step_name(position), ": non-finite values (", r.non_finite, "); ");
  if (options_.policy == NonFinitePolicy::stop)
    throw Error(cat(what, "stopping as train.non_finite = stop; this step updated nothing"));
  restore_bn_statistics();
  ++position.skipped_steps;
  if (position.skipped_steps > options_.max_skipped_steps)
    throw Error(cat(what, "stopping: ", position.skipped_steps, position.skipped_steps == 1 ? " step" : " steps",
                    " skipped, more than train.max_skipped_steps = ", options_.max_skipped_steps));
  return r;
}

}  // namespace scpn::train
