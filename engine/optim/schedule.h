// Learning-rate schedules: pure functions of the step index (an epoch or an iteration, whichever the
// caller counts), and LrScheduler, a small stateful wrapper that applies them to an optimizer and
// saves/restores its position.
#pragma once
#include <cstdint>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/optim/optimizer.h"

namespace scpn {

// lr(e) = base_lr · gamma^(number of milestones <= e). The SCPN recipe on GLDv2: base 0.1,
// milestones {5, 10, 20}, gamma 0.1, stepped per epoch: 0.1 for epochs 0-4, 0.01 for 5-9, ...
struct MultiStepOptions {
  double base_lr = 0.1;                // finite, >= 0
  std::vector<int64_t> milestones;     // strictly increasing, >= 0
  double gamma = 0.1;                  // finite, > 0
};

// Linear warmup from warmup_start_factor·base_lr at step 0 to base_lr at step warmup_steps, then a
// half cosine from base_lr to min_lr at step total_steps; min_lr from then on:
//   s < W:       base_lr · (f + (1 − f) · s / W)
//   W <= s < T:  min_lr + (base_lr − min_lr) · (1 + cos(π · (s − W) / (T − W))) / 2
//   s >= T:      min_lr
struct CosineWithWarmupOptions {
  double base_lr = 0.1;              // finite, >= 0
  double min_lr = 0;                 // in [0, base_lr]
  int64_t warmup_steps = 0;          // W: in [0, total_steps]
  double warmup_start_factor = 0;    // f: in [0, 1]
  int64_t total_steps = 1;           // T: > 0
};

// The learning rate at step `step` (>= 0). Options are checked on every call; errors name the option.
double multistep_lr(const MultiStepOptions& options, int64_t step);
double cosine_with_warmup_lr(const CosineWithWarmupOptions& options, int64_t step);
void check_options(const MultiStepOptions& options);
void check_options(const CosineWithWarmupOptions& options);

using ScheduleOptions = std::variant<MultiStepOptions, CosineWithWarmupOptions>;
double schedule_lr(const ScheduleOptions& options, int64_t step);
const char* schedule_name(const ScheduleOptions& options);  // "MultiStep", "CosineWithWarmup"

// Sets optimizer.set_lr(schedule(position)) at construction (position 0) and after every step().
// The optimizer must outlive the scheduler. state() is {"schedule": name, "position": n, "lr": ...}
// ("lr" informational); load_state checks the schedule kind and position, moves there and applies
// the lr, changing nothing on error.
class LrScheduler {
 public:
  LrScheduler(Optimizer& optimizer, ScheduleOptions options);

  void step();  // position += 1, then applies the lr
  int64_t position() const { return position_; }
  double lr() const { return schedule_lr(options_, position_); }
  const ScheduleOptions& options() const { return options_; }

  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  Optimizer& optimizer_;
  ScheduleOptions options_;
  int64_t position_ = 0;
};

}  // namespace scpn
