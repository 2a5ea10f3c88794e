// The train_scpn job as a library class, so tests can run it: data and loaders from the config, the
// prunable ResNet, SGD, the SCPN step, the run log (train/run_log.h), checkpoints (train/checkpointer.h)
// and the final evaluation. train/train_scpn.cpp is only argument parsing around it.
#pragma once
#include <memory>
#include <string>

#include "train/config.h"
#include "train/eval/evaluate.h"

namespace scpn::train {

struct TrainerOptions {
  bool resume = false;        // continue from <output.dir>/last.safetensors
  std::string init_checkpoint = "";  // start from these weights (a model checkpoint, or a training checkpoint)
  bool quiet = false;         // no progress line (tests)
  bool evaluate = true;       // run the final evaluation
};

struct TrainSummary {
  int64_t steps = 0;
  double final_parent_loss = 0;
  double seconds = 0;
  EvalReport report;  // when evaluated
};

class Trainer {
 public:
  Trainer(TrainConfig config, TrainerOptions options);
  ~Trainer();
  TrainSummary run();
  const models::ResNet& model() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace scpn::train
