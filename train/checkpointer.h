// The run folder's durable files: config.json, the training checkpoint last.safetensors (everything a
// resumed run needs), best.safetensors and final.safetensors; and resuming from last.safetensors, which
// refuses a config that would compute something else than the interrupted run.
#pragma once
#include <cstdint>
#include <string>

#include "engine/optim/optimizer.h"
#include "engine/optim/schedule.h"
#include "models/resnet.h"
#include "train/config.h"

namespace scpn::train {

// Where the loop stands: the next step's position, the best epoch metric so far, how many steps were
// skipped for non-finite values (train.max_skipped_steps bounds them over the whole run), and the parent
// losses of the epoch's steps so far (its mean goes to metrics.jsonl, the same for a resumed epoch).
struct TrainPosition {
  int64_t step = 0, epoch = 0, batch = 0;
  double best_accuracy = -1;
  int64_t skipped_steps = 0;
  double epoch_loss_sum = 0;
  int64_t epoch_loss_steps = 0;

  void add_loss(double parent_loss) {
    epoch_loss_sum += parent_loss;
    ++epoch_loss_steps;
  }
  double epoch_mean_loss() const { return epoch_loss_sum / double(epoch_loss_steps > 0 ? epoch_loss_steps : 1); }
  void next_epoch() {
    ++epoch;
    batch = 0;
    epoch_loss_sum = 0;
    epoch_loss_steps = 0;
  }
};

// The training checkpoint: the model's tensors as save_model writes them, plus "optimizer/…" tensors and
// metadata with the optimizer, schedule and data position. Readable by load_model as a model checkpoint.
std::string last_checkpoint_path(const TrainConfig& config);

// Holds references: the config, model, optimizer and scheduler must outlive it.
class Checkpointer {
 public:
  Checkpointer(const TrainConfig& config, models::ResNet& model, Optimizer& optimizer, LrScheduler& scheduler);

  void write_config() const;  // config.json, atomically
  // Every checkpoint is written atomically, after checking that none of its tensors holds a NaN or ±Inf.
  // On any failure (a non-finite tensor, a full disk, a file-size limit) the file on disk is the previous
  // checkpoint, untouched, and the error says so: "checkpoint of step 6 not written: <the writer's error
  // naming the file and the reason>; the previous checkpoint <path> (step 4) is kept".
  void save_last(const TrainPosition& position) const;
  // best.safetensors, with the epoch metric that made it the best in its metadata.
  void save_best(const std::string& metric, double value) const;
  void save_final() const;
  // Loads last.safetensors into the model, optimizer and scheduler and returns the position it was saved
  // at. Throws naming the file when it is missing or not a training checkpoint, and naming the key when
  // the config differs in a key that changes what the run computes.
  TrainPosition resume() const;

  // Data-parallel runs: the number of ranks is saved, and a resumption with another number is refused
  // (each rank's share of the batch, and with per-rank batch norm its statistics, depend on it).
  void set_world_size(int ranks) { world_size_ = ranks; }

 private:
  int world_size_ = 1;
  const TrainConfig& config_;
  models::ResNet& model_;
  Optimizer& optimizer_;
  LrScheduler& scheduler_;
};

}  // namespace scpn::train
