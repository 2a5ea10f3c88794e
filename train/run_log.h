// What a training run reports while it runs: metrics.jsonl in the run folder (a JSON line per logged step
// and per finished epoch) and the console (the opening line, a progress line with the losses, images/s and
// the ETA, each epoch's result, the report table and the closing line).
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

#include "engine/devices.h"
#include "train/config.h"
#include "train/scpn/step.h"

namespace scpn::train {

class RunLog {
 public:
  // Opens <output.dir>/metrics.jsonl, appending when the run resumes. quiet: nothing on the console. On a
  // terminal the progress line rewrites itself after every step; elsewhere it is a line per logged step.
  RunLog(const TrainConfig& config, bool resume, bool quiet);

  // Starts the clock that the rate, the ETA and the run's duration are measured by; the rate counts the
  // steps from first_step (a resumed run's first).
  void start(int64_t first_step, int64_t total_steps, int64_t steps_per_epoch, int64_t parameters,
             int64_t training_images, const Device& device);
  void start_epoch();  // the epoch's mean loss counts from here
  // After the step that brought the run to `step` steps.
  void step(int64_t step, int64_t epoch, double lr, const StepResult& result);
  // An epoch's end: its mean parent loss and the metric it is judged by.
  void end_epoch(int64_t epoch, const std::string& metric, double value);
  void end_progress();  // closes a terminal's progress line
  void report(const std::string& table);
  // The closing line; returns the seconds since start().
  double finish();

 private:
  const TrainConfig& config_;
  bool quiet_ = false, tty_ = false;
  std::ofstream metrics_;
  std::chrono::steady_clock::time_point start_;
  int64_t first_step_ = 0, total_steps_ = 0;
  double epoch_loss_ = 0;
  int64_t epoch_batches_ = 0;
};

}  // namespace scpn::train
