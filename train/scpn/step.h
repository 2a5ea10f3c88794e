// One SCPN training step (SCPN_METHOD.md §4): the subnetworks and the dense parent backpropagated into
// their own gradient slots, the prunable tensors' task gradients merged by the conflict-aware integration,
// the global norm clipped, the optimizer stepped. Tests: tests/train/test_step.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/ops/grad_integration.h"
#include "engine/optim/optimizer.h"
#include "models/resnet.h"
#include "train/data_parallel.h"

namespace scpn::train {

// `sum` (one backward of the summed losses) and `parent` (dense training only) are the baselines.
enum class TrainMode { scpn, sum, parent };

struct StepOptions {
  TrainMode mode = TrainMode::scpn;
  std::vector<double> capacities = {0.8, 0.6, 0.4, 0.2};  // subnetworks, in step order (not 1.0)
  int64_t extra_random_capacities = 0;  // drawn uniformly from (0.1, 1) each step
  models::BnStatsMode bn_stats = models::BnStatsMode::own;
  double task_clip_norm = 100;  // per subnetwork (step 1); 0 disables
  double clip_norm = 100;       // after integration (step 4); 0 disables
  double label_smoothing = 0;
  // Channel granularity: subnetwork passes compute on compact copies of their kept filters (sparse-channel
  // compute); false runs them masked at the parent's cost (the reference path). Weight granularity is
  // always masked.
  bool compact_subnets = true;
  IntegrationOptions integration;
  // CPU: how many of the step's passes (forward + backward of a subnetwork or the parent) run side by side,
  // each on its own thread with single-threaded kernels, instead of one after another with every op split
  // over all threads. 0 = as many as there are CPU threads when that is 2 to the number of passes, else 1.
  // Same results bit for bit; each pass running at once keeps its activations alive at the same time.
  int64_t concurrent_passes = 0;
  // A non-finite loss or gradient never updates the model; it throws (true) or is only reported in
  // StepResult::non_finite (false: the trainer's train.non_finite decides, see train/step_guard.h).
  bool throw_on_non_finite = true;
};

// Wall-clock milliseconds of each phase, for the step benchmark and the progress line.
struct StepTimings {
  std::vector<double> subnet_forward_ms, subnet_backward_ms;  // per capacity, in step order
  double parent_forward_ms = 0, parent_backward_ms = 0, integration_ms = 0, optimizer_ms = 0, total_ms = 0;
  int concurrent_passes = 1;  // > 1: that many passes ran side by side, so their times overlap
};

struct StepResult {
  double parent_loss = 0;
  std::vector<double> capacities;   // the subnetworks of this step (trained + extra random ones)
  std::vector<double> subnet_losses;
  double grad_norm = 0;             // global norm before the final clip
  int64_t projected_rows = 0, task_rows = 0;  // integration statistics (scpn mode)
  std::string non_finite;           // what was NaN or ±Inf (train/non_finite.h); then nothing was updated
  StepTimings timings;
};

class ScpnStep {
 public:
  // The model's prunable tensors are every convolution weight and score; the rest (BatchNorm, projector,
  // classifier) is the shared head, which keeps the parent's gradient. seed and the step index define the
  // integration orders and the extra random capacities, so a resumed run repeats them.
  ScpnStep(models::ResNet& model, Optimizer& optimizer, StepOptions options, uint64_t seed);

  StepResult run(const Tensor& images, const Tensor& labels, int64_t step_index);
  const StepOptions& options() const { return options_; }

  // Data-parallel training: images and labels are this rank's shard; every gradient set is averaged over
  // the ranks before it is clipped or integrated, the losses reported are the ranks' mean, and the
  // BatchNorm statistics are synchronised (sync_bn) or averaged after each step. Null: one process.
  void set_data_parallel(DataParallel* dp, bool sync_bn);

 private:
  StepResult run_scpn(const Tensor& images, const Tensor& labels, int64_t step_index);
  StepResult run_sum(const Tensor& images, const Tensor& labels, int64_t step_index);
  StepResult run_parent(const Tensor& images, const Tensor& labels, int64_t step_index);
  std::vector<double> step_capacities(int64_t step_index) const;
  models::ForwardContext subnet_context(double capacity) const;
  void finish(StepResult& r, int64_t step_index);  // losses' mean over ranks, final clip, optimizer step

  models::ForwardContext parent_context() const;
  int concurrent_passes(Device device, int64_t passes) const;
  void average_losses(StepResult& r, int64_t step_index);

  models::ResNet& model_;
  DataParallel* dp_ = nullptr;
  bool sync_bn_ = false;
  Optimizer& optimizer_;
  StepOptions options_;
  uint64_t seed_;
  std::vector<Tensor> prunable_;       // every conv weight and score
  std::vector<Tensor> scores_;         // the scores among them
  std::vector<Tensor> head_;           // everything else
  std::vector<Tensor> all_;            // every parameter
};

}  // namespace scpn::train
