// Progress of the long phases (training, evaluations, BN re-estimation, features, ranking, decoding,
// pruning) for train_scpn and every tool: one line rewritten in place on a terminal, throttled plain lines
// in a log, nothing when quiet. Tested by tests/train/test_progress.cpp.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace scpn::train {

// "0.4s", "42.0s", "3m05s", "1h02m".
std::string format_duration(double seconds);

enum class ProgressStyle {
  quiet,     // nothing (the tools' --quiet); errors are the mains' business and still print
  terminal,  // the running phase's line is rewritten in place; finished phases leave a line each
  lines,     // plain lines: a phase's state at most once per line interval, and its final line
};

// Where the progress of a program goes; one per program, shared by all its phases.
class ProgressConsole {
 public:
  using Clock = std::function<double()>;  // seconds on a monotonic clock

  // line_interval_s: the least time between two progress lines in the `lines` style, counted from the
  // console's creation, so phases shorter than that leave only their final line (final lines and print()
  // are never held back). clock: steady_clock unless a test drives time itself.
  explicit ProgressConsole(ProgressStyle style, std::FILE* stream = stderr, double line_interval_s = 5.0,
                           Clock clock = {});
  // quiet → quiet; a terminal on `stream` → terminal; anything else (a file, a pipe, CI) → lines.
  static ProgressStyle style_for(bool quiet, std::FILE* stream = stderr);

  ProgressStyle style() const { return style_; }
  bool quiet() const { return style_ == ProgressStyle::quiet; }
  double now() const { return clock_(); }

  // A line that stays (an epoch's result, a phase's final line); ends a line in progress first.
  void print(const std::string& line);
  // Whether a progress line shown now would be printed: the caller formats it only then.
  bool wants_update() const;
  // A running phase's state: in place on a terminal, else as a line if wants_update().
  void update(const std::string& line);
  // Ends a terminal line in progress (before something else writes to the stream).
  void close_line();

 private:
  ProgressStyle style_;
  std::FILE* stream_;
  double interval_;
  Clock clock_;
  double last_update_;
  bool line_open_ = false;
};

// One phase: a count of work units towards a known total. The rate and the ETA count only the units done
// here (a resumed run's earlier steps are `done` from the start) and leave out paused time.
class Progress {
 public:
  // console: where to report; null reports nothing (the phase is still timed). phase names it in every
  // line ("final evaluation [3/9] capacity 0.70: features"); unit is plural ("images", "queries").
  Progress(ProgressConsole* console, std::string phase, int64_t total, std::string unit, int64_t done = 0);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Without finish(): an exception is on its way; a terminal line in progress is ended, nothing claimed.
  ~Progress();

  void advance(int64_t n = 1);
  void set_done(int64_t done);
  // Text shown after the ETA from the next line on (the training losses).
  void set_note(std::string note);
  // Time that another phase takes in the middle of this one (an epoch's evaluation within training).
  void pause();
  void resume();
  // The final line, "<phase>: <done>/<total> <unit> in <time> (<rate>)"; returns the seconds this phase ran
  // (pauses left out). Once; later calls return the same seconds.
  double finish();

  int64_t done() const { return done_; }
  int64_t total() const { return total_; }
  double seconds() const;  // so far, pauses left out
  double rate() const;     // units per second done here; 0 before the first
  std::string line() const;  // the current progress line, as update() shows it

 private:
  void show();
  std::string rate_text() const;
  double now() const;

  ProgressConsole* console_;
  std::string phase_, unit_, note_;
  int64_t total_, done_, first_done_;
  double start_, paused_at_ = -1, paused_total_ = 0;
  bool finished_ = false;
  double final_seconds_ = 0;
};

}  // namespace scpn::train
