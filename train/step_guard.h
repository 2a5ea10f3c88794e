// The trainer's side of train.non_finite (docs/reliability.md): runs a step and, when its losses or
// gradients were non-finite (the step then updated nothing), either ends the run with an error naming the
// step, or skips the step — putting back the BatchNorm statistics its forward passes moved — up to
// train.max_skipped_steps. Also the debug switches that make and find non-finite values.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/resnet.h"
#include "train/checkpointer.h"
#include "train/non_finite.h"
#include "train/scpn/step.h"

namespace scpn::train {

struct StepGuardOptions {
  NonFinitePolicy policy = NonFinitePolicy::stop;
  int64_t max_skipped_steps = 0;
  int64_t inject_nan_step = 0;  // debug: the step (1-based) whose first input pixel is made NaN; 0 = none
};

// "step 3 (epoch 0, batch 2)": the step's number as metrics.jsonl counts them (1-based), its epoch and its
// batch within the epoch (0-based, as the loader counts them).
std::string step_name(const TrainPosition& position);

class StepGuard {
 public:
  // Keeps references to the model and the step (built over the same model, with throw_on_non_finite off).
  StepGuard(models::ResNet& model, ScpnStep& step, StepGuardOptions options);

  // Runs the step that follows `position` on a batch on the model's device. Returns its result; a skipped
  // step has result.non_finite set and position.skipped_steps counts it. Throws scpn::Error naming the step
  // when the run must stop: a non-finite step under train.non_finite = stop, one more skipped step than
  // train.max_skipped_steps, or (debug.detect_non_finite) the first op whose output was non-finite.
  StepResult run(const Tensor& images, const Tensor& labels, TrainPosition& position);

 private:
  void keep_bn_statistics();
  void restore_bn_statistics();

  models::ResNet& model_;
  ScpnStep& step_;
  StepGuardOptions options_;
  std::vector<Tensor> buffers_, kept_;  // the model's BatchNorm statistics and their copies from before the step
};

}  // namespace scpn::train
