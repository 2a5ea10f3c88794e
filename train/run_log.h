// What a training run reports while it runs: metrics.jsonl in the run folder (a JSON line per logged step
// and per finished epoch) and the console through train/progress.h (the opening line, the training phase's
// progress with the losses, images/s and the ETA, each epoch's result, the report table, the closing line).
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "engine/devices.h"
#include "train/config.h"
#include "train/progress.h"
#include "train/scpn/step.h"

namespace scpn::train {

class RunLog {
 public:
  // Opens <output.dir>/metrics.jsonl, appending when the run resumes. Console text goes to `console`
  // (nothing when it is quiet), the report table to stdout.
  // A data-parallel run's other ranks pass write_metrics = false: rank 0 alone writes the run folder.
  RunLog(const TrainConfig& config, bool resume, ProgressConsole& console, bool write_metrics = true);

  // Starts the clock of the run's duration and the training phase, whose rate counts the steps from
  // first_step (a resumed run's first).
  void start(int64_t first_step, int64_t total_steps, int64_t steps_per_epoch, int64_t parameters,
             int64_t training_images, const Device& device);
  // After the step that brought the run to `step` steps. A skipped step (result.non_finite set) gets its
  // own line {"step", "epoch", "skipped": what was non-finite} and a console line.
  void step(int64_t step, int64_t epoch, double lr, const StepResult& result);
  // Around an epoch's evaluation: its time counts neither in the training rate nor in training_seconds.
  void pause_training();
  void resume_training();
  // An epoch's end: its mean parent loss and the metric it is judged by.
  void end_epoch(int64_t epoch, double mean_parent_loss, const std::string& metric, double value);
  // The training phase's final line; returns its seconds, evaluations left out.
  double end_training();
  void report(const std::string& table);
  // The closing line; returns the seconds since start().
  double finish();

 private:
  const TrainConfig& config_;
  ProgressConsole& console_;
  std::ofstream metrics_;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<Progress> training_;
  int64_t total_steps_ = 0;
};

}  // namespace scpn::train
