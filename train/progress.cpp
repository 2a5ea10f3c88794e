// The console progress of long phases (see progress.h): terminal lines rewritten in place and cut to the
// terminal's width, throttled plain lines elsewhere, and the phase's count, rate and ETA.
#include "train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/error.h"

namespace scpn::train {

namespace {

// A terminal gets at most this many redraws per second: enough to look live, cheap for a fast loop.
constexpr double kTerminalRedrawInterval = 0.1;

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The terminal's width, or 0 when unknown.
int terminal_columns(std::FILE* stream) {
  winsize w{};
  if (::ioctl(::fileno(stream), TIOCGWINSZ, &w) == 0) return int(w.ws_col);
  return 0;
}

}  // namespace

std::string format_duration(double seconds) {
  seconds = std::max(0.0, seconds);
  char buf[32];
  if (seconds < 59.95) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
    return buf;
  }
  const int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

// ---- the console -------------------------------------------------------------------------------------

ProgressConsole::ProgressConsole(ProgressStyle style, std::FILE* stream, double line_interval_s, Clock clock)
    : style_(style), stream_(stream), interval_(line_interval_s), clock_(clock ? std::move(clock) : Clock(steady_seconds)) {
  SCPN_CHECK(stream_ != nullptr, "ProgressConsole: no stream");
  SCPN_CHECK(line_interval_s >= 0, "ProgressConsole: line interval ", line_interval_s, " s is negative");
  last_update_ = clock_();
}

ProgressStyle ProgressConsole::style_for(bool quiet, std::FILE* stream) {
  if (quiet) return ProgressStyle::quiet;
  return ::isatty(::fileno(stream)) ? ProgressStyle::terminal : ProgressStyle::lines;
}

void ProgressConsole::print(const std::string& line) {
  if (quiet()) return;
  if (line_open_) std::fputs("\r\033[K", stream_);  // the final line takes the progress line's place
  line_open_ = false;
  std::fprintf(stream_, "%s\n", line.c_str());
  std::fflush(stream_);
}

bool ProgressConsole::wants_update() const {
  if (quiet()) return false;
  const double gap = style_ == ProgressStyle::terminal ? kTerminalRedrawInterval : interval_;
  return clock_() - last_update_ >= gap;
}

void ProgressConsole::update(const std::string& line) {
  if (!wants_update()) return;
  last_update_ = clock_();
  if (style_ == ProgressStyle::lines) {
    std::fprintf(stream_, "%s\n", line.c_str());
  } else {
    // A line longer than the terminal would wrap, and "\r" would then redraw only its last row.
    const int columns = terminal_columns(stream_);
    std::string shown = line;
    if (columns > 1 && int(shown.size()) >= columns) shown.resize(size_t(columns - 1));
    std::fprintf(stream_, "\r\033[K%s", shown.c_str());
    line_open_ = true;
  }
  std::fflush(stream_);
}

void ProgressConsole::close_line() {
  if (!line_open_) return;
  std::fputs("\r\033[K", stream_);
  std::fflush(stream_);
  line_open_ = false;
}

// ---- a phase -----------------------------------------------------------------------------------------

Progress::Progress(ProgressConsole* console, std::string phase, int64_t total, std::string unit, int64_t done)
    : console_(console), phase_(std::move(phase)), unit_(std::move(unit)), total_(total), done_(done), first_done_(done) {
  SCPN_CHECK(total >= 0 && done >= 0 && done <= total, "progress of '", phase_, "': ", done, " of ", total, " done");
  start_ = now();
}

Progress::~Progress() {
  if (!finished_ && console_) console_->close_line();
}

double Progress::now() const { return console_ ? console_->now() : steady_seconds(); }

void Progress::advance(int64_t n) { set_done(done_ + n); }

void Progress::set_done(int64_t done) {
  done_ = done;
  show();
}

void Progress::set_note(std::string note) { note_ = std::move(note); }

void Progress::pause() {
  if (paused_at_ < 0) paused_at_ = now();
}

void Progress::resume() {
  if (paused_at_ < 0) return;
  paused_total_ += now() - paused_at_;
  paused_at_ = -1;
}

double Progress::seconds() const {
  if (finished_) return final_seconds_;
  const double end = paused_at_ >= 0 ? paused_at_ : now();
  return std::max(0.0, end - start_ - paused_total_);
}

double Progress::rate() const {
  const double s = seconds();
  return s > 0 ? double(done_ - first_done_) / s : 0.0;
}

std::string Progress::rate_text() const {
  const double r = rate();
  char buf[64];
  if (r <= 0)
    std::snprintf(buf, sizeof buf, "- %s/s", unit_.c_str());
  else if (r < 1)  // a slow unit (a capacity of a sweep) reads better as time per unit
    std::snprintf(buf, sizeof buf, "%s each", format_duration(1.0 / r).c_str());
  else
    std::snprintf(buf, sizeof buf, r < 10 ? "%.1f %s/s" : "%.0f %s/s", r, unit_.c_str());
  return buf;
}

std::string Progress::line() const {
  const double r = rate();
  const std::string eta = r > 0 ? format_duration(double(std::max<int64_t>(total_ - done_, 0)) / r) : "?";
  char percent[16];
  std::snprintf(percent, sizeof percent, "%.0f%%", total_ > 0 ? 100.0 * double(done_) / double(total_) : 100.0);
  return cat(phase_, ": ", done_, "/", total_, " ", unit_, " (", percent, "), ", rate_text(), ", ETA ", eta,
             note_.empty() ? "" : "; ", note_);
}

void Progress::show() {
  // At the total the final line follows; a "100%, ETA 0s" line before it would say nothing new.
  if (console_ && !finished_ && done_ < total_ && console_->wants_update()) console_->update(line());
}

double Progress::finish() {
  if (finished_) return final_seconds_;
  resume();
  final_seconds_ = seconds();
  finished_ = true;
  if (console_)
    console_->print(cat(phase_, ": ", done_, "/", total_, " ", unit_, " in ", format_duration(final_seconds_), " (",
                        rate_text(), ")"));
  return final_seconds_;
}

}  // namespace scpn::train
