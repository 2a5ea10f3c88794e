// The train_scpn job as a library class, so tests can run it: data and loaders from the config, the
// prunable ResNet, SGD, the SCPN step, the run log (train/run_log.h), checkpoints (train/checkpointer.h)
// and the final evaluation. train/train_scpn.cpp is only argument parsing around it.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/dist/launch.h"

#include "train/config.h"
#include "train/eval/evaluate.h"

namespace scpn::train {

struct TrainerOptions {
  bool resume = false;        // continue from <output.dir>/last.safetensors
  std::string init_checkpoint = "";  // start from these weights (a model checkpoint, or a training checkpoint)
  bool quiet = false;         // nothing on the console (train_scpn --quiet, tests); errors are thrown
  bool evaluate = true;       // run the final evaluation
  // Data parallel: where this process stands in the job. Unset: read from the launcher's environment
  // (engine/dist/launch.h); one process when there is none.
  std::optional<dist::LaunchInfo> launch = std::nullopt;
};

// How long each phase of this process took (a resumed run's earlier process is not counted): report.json's
// "phase_seconds". Training leaves out the epochs' evaluations, which are listed one per epoch.
struct PhaseSeconds {
  double test_set_decoding = 0, training = 0, final_evaluation = 0;
  std::vector<double> epoch_evaluations;
  nlohmann::json to_json() const;
};

struct TrainSummary {
  int world_size = 1;  // ranks that trained together
  int64_t steps = 0;
  double final_parent_loss = 0;
  double seconds = 0;
  int64_t skipped_steps = 0;   // steps skipped for non-finite values (train.non_finite = skip), in the whole run
  int stopped_by_signal = 0;   // SIGTERM or SIGINT when the run stopped early for it (checkpoint written), else 0
  PhaseSeconds phase_seconds;
  EvalReport report;  // when evaluated
};

class Trainer {
 public:
  Trainer(TrainConfig config, TrainerOptions options);
  ~Trainer();
  // Trains to the end (or to a stop asked for by SIGTERM/SIGINT, see train/stop_signals.h), then saves
  // and evaluates. Throws scpn::Error naming the step or the file when the run cannot go on.
  TrainSummary run();
  const models::ResNet& model() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace scpn::train
