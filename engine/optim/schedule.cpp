// Learning-rate schedules (MultiStep, CosineWithWarmup) and the scheduler that applies them.
#include "engine/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/common/error.h"

namespace scpn {

namespace {

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

void check_step(const char* who, int64_t step) { SCPN_CHECK(step >= 0, who, ": step must be >= 0, got ", step); }

}  // namespace

void check_options(const MultiStepOptions& o) {
  const char* who = "MultiStep";
  check_option(std::isfinite(o.base_lr) && o.base_lr >= 0, who, "base_lr", "finite and >= 0", o.base_lr);
  check_option(std::isfinite(o.gamma) && o.gamma > 0, who, "gamma", "finite and > 0", o.gamma);
  for (size_t i = 0; i < o.milestones.size(); ++i) {
    SCPN_CHECK(o.milestones[i] >= 0, who, ": option 'milestones' must be >= 0, got ", list_str(o.milestones));
    SCPN_CHECK(i == 0 || o.milestones[i - 1] < o.milestones[i], who,
               ": option 'milestones' must be strictly increasing, got ", list_str(o.milestones));
  }
}

void check_options(const CosineWithWarmupOptions& o) {
  const char* who = "CosineWithWarmup";
  check_option(std::isfinite(o.base_lr) && o.base_lr >= 0, who, "base_lr", "finite and >= 0", o.base_lr);
  check_option(o.min_lr >= 0 && o.min_lr <= o.base_lr, who, "min_lr", "in [0, base_lr]", o.min_lr);
  check_option(o.warmup_start_factor >= 0 && o.warmup_start_factor <= 1, who, "warmup_start_factor", "in [0, 1]",
               o.warmup_start_factor);
  SCPN_CHECK(o.total_steps > 0, who, ": option 'total_steps' must be > 0, got ", o.total_steps);
  SCPN_CHECK(o.warmup_steps >= 0, who, ": option 'warmup_steps' must be >= 0, got ", o.warmup_steps);
  SCPN_CHECK(o.warmup_steps <= o.total_steps, who, ": option 'warmup_steps' (", o.warmup_steps,
             ") must not exceed option 'total_steps' (", o.total_steps, ")");
}

double multistep_lr(const MultiStepOptions& o, int64_t step) {
  check_options(o);
  check_step("MultiStep", step);
  // Milestones passed so far, as PyTorch's MultiStepLR counts them (bisect_right).
  auto passed = std::upper_bound(o.milestones.begin(), o.milestones.end(), step) - o.milestones.begin();
  return o.base_lr * std::pow(o.gamma, double(passed));
}

double cosine_with_warmup_lr(const CosineWithWarmupOptions& o, int64_t step) {
  check_options(o);
  check_step("CosineWithWarmup", step);
  if (step < o.warmup_steps) {
    double f = o.warmup_start_factor;
    return o.base_lr * (f + (1 - f) * double(step) / double(o.warmup_steps));
  }
  if (step >= o.total_steps) return o.min_lr;
  double progress = double(step - o.warmup_steps) / double(o.total_steps - o.warmup_steps);
  return o.min_lr + (o.base_lr - o.min_lr) * (1 + std::cos(std::numbers::pi * progress)) / 2;
}

double schedule_lr(const ScheduleOptions& options, int64_t step) {
  if (const auto* m = std::get_if<MultiStepOptions>(&options)) return multistep_lr(*m, step);
  return cosine_with_warmup_lr(std::get<CosineWithWarmupOptions>(options), step);
}

const char* schedule_name(const ScheduleOptions& options) {
  return std::holds_alternative<MultiStepOptions>(options) ? "MultiStep" : "CosineWithWarmup";
}

LrScheduler::LrScheduler(Optimizer& optimizer, ScheduleOptions options)
    : optimizer_(optimizer), options_(std::move(options)) {
  optimizer_.set_lr(lr());  // also checks the options
}

void LrScheduler::step() {
  double next = schedule_lr(options_, position_ + 1);
  optimizer_.set_lr(next);
  ++position_;
}

nlohmann::json LrScheduler::state() const {
  return {{"schedule", schedule_name(options_)}, {"position", position_}, {"lr", lr()}};
}

void LrScheduler::load_state(const nlohmann::json& state) {
  const std::string where = "LrScheduler.load_state";
  SCPN_CHECK(state.is_object() && state.contains("schedule") && state.at("schedule").is_string(), where,
             ": missing key 'schedule'");
  std::string saved = state.at("schedule").get<std::string>();
  SCPN_CHECK(saved == schedule_name(options_), where, ": the state is for schedule '", saved, "', this one is '",
             schedule_name(options_), "'");
  int64_t position = json_int(state, where, "position");
  SCPN_CHECK(position >= 0, where, ": key 'position' must be >= 0, got ", position);
  optimizer_.set_lr(schedule_lr(options_, position));
  position_ = position;
}

}  // namespace scpn
