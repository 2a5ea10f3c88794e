// The run's metrics.jsonl lines and console text (see run_log.h). Console text goes to stderr, except the
// report table, which is the run's result and goes to stdout.
#include "train/run_log.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"

namespace scpn::train {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

}  // namespace

RunLog::RunLog(const TrainConfig& config, bool resume, ProgressConsole& console, bool write_metrics)
    : config_(config), console_(console) {
  if (!write_metrics) return;
  metrics_.open(config.output_dir + "/metrics.jsonl", resume ? std::ios::app : std::ios::trunc);
  SCPN_CHECK(metrics_.good(), config.output_dir, "/metrics.jsonl: cannot open for writing");
}

void RunLog::start(int64_t first_step, int64_t total_steps, int64_t steps_per_epoch, int64_t parameters,
                   int64_t training_images, const Device& device) {
  start_ = Clock::now();
  total_steps_ = total_steps;
  console_.print(cat("train_scpn: ", to_string(config_.arch), " ", models::to_string(config_.granularity), ", ", parameters,
                     " parameters, ", training_images, " training images, ", total_steps, " steps (", steps_per_epoch,
                     " per epoch), mode ", to_string(config_.mode), ", on ", device.str()));
  // Counted in images, so that the rate is the throughput people compare and the ETA follows from it.
  const int64_t batch = config_.batch_size;
  training_ = std::make_unique<Progress>(&console_, "training", total_steps * batch, "images",
                                         std::min(first_step, total_steps) * batch);
}

void RunLog::step(int64_t step, int64_t epoch, double lr, const StepResult& r) {
  if (!r.non_finite.empty()) {  // skipped (train.non_finite = skip): always logged
    metrics_ << json{{"step", step}, {"epoch", epoch}, {"skipped", r.non_finite}}.dump() << "\n" << std::flush;
    console_.print(cat("step ", step, " skipped: non-finite values (", r.non_finite, ")"));
    return;
  }
  const bool logged = step % config_.log_every == 0 || step == total_steps_;
  std::string subnets;
  for (double l : r.subnet_losses) subnets += cat(subnets.empty() ? "" : " ", int(l * 1000) / 1000.0);
  char loss[32];
  std::snprintf(loss, sizeof loss, "%.4f", r.parent_loss);
  training_->set_note(cat("step ", step, "/", total_steps_, ", epoch ", epoch, ", loss ", loss,
                          subnets.empty() ? "" : " (subnets ", subnets, subnets.empty() ? "" : ")"));
  training_->set_done(step * config_.batch_size);
  if (logged) {
    json line{{"step", step}, {"epoch", epoch}, {"lr", lr}, {"parent_loss", r.parent_loss},
              {"capacities", r.capacities}, {"subnet_losses", r.subnet_losses}, {"grad_norm", r.grad_norm},
              {"images_per_s", training_->rate()}, {"step_ms", r.timings.total_ms}};
    if (r.task_rows > 0) line["projected_fraction"] = double(r.projected_rows) / double(r.task_rows);
    if (metrics_.is_open()) metrics_ << line.dump() << "\n" << std::flush;
  }
}

void RunLog::pause_training() { training_->pause(); }

void RunLog::resume_training() { training_->resume(); }

void RunLog::end_epoch(int64_t epoch, double mean_parent_loss, const std::string& metric, double value) {
  json line{{"epoch", epoch}, {"mean_parent_loss", mean_parent_loss}, {metric, value}};
  if (metrics_.is_open()) metrics_ << line.dump() << "\n" << std::flush;
  char text[64];
  std::snprintf(text, sizeof text, "%.4f", value);
  console_.print(cat("epoch ", epoch, ": ", metric, " ", text));
}

double RunLog::end_training() { return training_->finish(); }

void RunLog::report(const std::string& table) {
  if (console_.quiet()) return;
  console_.close_line();
  std::printf("%s", table.c_str());
  std::fflush(stdout);  // before the closing line on stderr, also when both go to one file
}

double RunLog::finish() {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  console_.print(cat("train_scpn: done in ", format_duration(seconds), "; results in ", config_.output_dir));
  return seconds;
}

}  // namespace scpn::train
