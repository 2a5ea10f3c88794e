// The run's metrics.jsonl lines and console text (see run_log.h). Console text goes to stderr, except the
// report table, which is the run's result and goes to stdout.
#include "train/run_log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "engine/error.h"

namespace scpn::train {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

std::string format_duration(double seconds) {
  int64_t s = int64_t(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

}  // namespace

RunLog::RunLog(const TrainConfig& config, bool resume, bool quiet)
    : config_(config), quiet_(quiet), tty_(!quiet && ::isatty(STDERR_FILENO)) {
  metrics_.open(config.output_dir + "/metrics.jsonl", resume ? std::ios::app : std::ios::trunc);
  SCPN_CHECK(metrics_.good(), config.output_dir, "/metrics.jsonl: cannot open for writing");
}

void RunLog::start(int64_t first_step, int64_t total_steps, int64_t steps_per_epoch, int64_t parameters,
                   int64_t training_images, const Device& device) {
  start_ = Clock::now();
  first_step_ = first_step;
  total_steps_ = total_steps;
  if (!quiet_)
    std::fprintf(stderr, "train_scpn: %s %s, %lld parameters, %lld training images, %lld steps (%lld per epoch), mode %s, on %s\n",
                 to_string(config_.arch), models::to_string(config_.granularity), (long long)parameters,
                 (long long)training_images, (long long)total_steps, (long long)steps_per_epoch, to_string(config_.mode),
                 device.str().c_str());
}

void RunLog::start_epoch() {
  epoch_loss_ = 0;
  epoch_batches_ = 0;
}

void RunLog::step(int64_t step, int64_t epoch, double lr, const StepResult& r) {
  epoch_loss_ += r.parent_loss;
  ++epoch_batches_;
  const int64_t batch_size = config_.batch_size;
  double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  double rate = double(step - first_step_) * double(batch_size) / std::max(elapsed, 1e-9);
  double eta = double(total_steps_ - step) * double(batch_size) / std::max(rate, 1e-9);
  const bool logged = step % config_.log_every == 0 || step == total_steps_;
  if (logged) {
    json line{{"step", step}, {"epoch", epoch}, {"lr", lr}, {"parent_loss", r.parent_loss},
              {"capacities", r.capacities}, {"subnet_losses", r.subnet_losses}, {"grad_norm", r.grad_norm},
              {"images_per_s", rate}, {"step_ms", r.timings.total_ms}};
    if (r.task_rows > 0) line["projected_fraction"] = double(r.projected_rows) / double(r.task_rows);
    metrics_ << line.dump() << "\n" << std::flush;
  }
  if (!quiet_ && (tty_ || logged)) {
    std::string subnets;
    for (double l : r.subnet_losses) subnets += cat(subnets.empty() ? "" : " ", int(l * 1000) / 1000.0);
    std::fprintf(stderr, "%sstep %lld/%lld  epoch %lld  loss %.4f%s%s%s  %.1f img/s  ETA %s%s", tty_ ? "\r\033[K" : "",
                 (long long)step, (long long)total_steps_, (long long)epoch, r.parent_loss,
                 subnets.empty() ? "" : " (subnets ", subnets.c_str(), subnets.empty() ? "" : ")", rate,
                 format_duration(eta).c_str(), tty_ ? "" : "\n");
  }
}

void RunLog::end_epoch(int64_t epoch, const std::string& metric, double value) {
  json line{{"epoch", epoch}, {"mean_parent_loss", epoch_loss_ / double(std::max<int64_t>(epoch_batches_, 1))},
            {metric, value}};
  metrics_ << line.dump() << "\n" << std::flush;
  end_progress();
  if (!quiet_) std::fprintf(stderr, "epoch %lld: %s %.4f\n", (long long)epoch, metric.c_str(), value);
}

void RunLog::end_progress() {
  if (tty_) std::fprintf(stderr, "\n");
}

void RunLog::report(const std::string& table) {
  if (!quiet_) std::printf("%s", table.c_str());
}

double RunLog::finish() {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (!quiet_)
    std::fprintf(stderr, "train_scpn: done in %s; results in %s\n", format_duration(seconds).c_str(),
                 config_.output_dir.c_str());
  return seconds;
}

}  // namespace scpn::train
