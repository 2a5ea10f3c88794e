// The progress facility on a clock the test drives: throttled plain lines and final lines in a log, lines
// rewritten in place on a terminal, nothing when quiet; rates, ETAs, pauses and durations as printed.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "train/progress.h"

using namespace scpn;
using namespace scpn::train;

namespace {

// A temporary file standing in for stderr: not a terminal, read back after the fact.
struct CapturedStream {
  std::FILE* file = std::tmpfile();
  ~CapturedStream() { std::fclose(file); }
  std::string text() {
    std::fflush(file);
    std::rewind(file);
    std::string out;
    for (int c; (c = std::fgetc(file)) != EOF;) out += char(c);
    return out;
  }
  std::vector<std::string> lines() {
    std::vector<std::string> out;
    std::string all = text();
    for (size_t at = 0, nl; (nl = all.find('\n', at)) != std::string::npos; at = nl + 1) out.push_back(all.substr(at, nl - at));
    return out;
  }
};

}  // namespace

TEST_CASE("durations as the lines print them") {
  CHECK(format_duration(0.04) == "0.0s");
  CHECK(format_duration(-3) == "0.0s");
  CHECK(format_duration(59.9) == "59.9s");
  CHECK(format_duration(59.96) == "1m00s");
  CHECK(format_duration(185) == "3m05s");
  CHECK(format_duration(3725) == "1h02m");
}

TEST_CASE("a log gets a progress line at most once per interval and a final line with the count and time") {
  CapturedStream out;
  REQUIRE(out.file != nullptr);
  CHECK(ProgressConsole::style_for(false, out.file) == ProgressStyle::lines);
  double t = 0;
  ProgressConsole console(ProgressStyle::lines, out.file, 5.0, [&] { return t; });
  Progress p(&console, "final evaluation [2/9] capacity 0.80, features", 100, "images");
  for (int i = 1; i <= 100; ++i) {
    t = i * 0.25;  // 4 images/s, 25 s in all
    p.advance();
  }
  CHECK(p.done() == 100);
  CHECK(p.finish() == doctest::Approx(25.0));
  CHECK(p.finish() == doctest::Approx(25.0));  // once: no second final line
  const std::vector<std::string> lines = out.lines();
  // Lines at 5, 10, 15 and 20 s; none at the total, where the final line follows at once.
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "final evaluation [2/9] capacity 0.80, features: 20/100 images (20%), 4.0 images/s, ETA 20.0s");
  CHECK(lines[3] == "final evaluation [2/9] capacity 0.80, features: 80/100 images (80%), 4.0 images/s, ETA 5.0s");
  CHECK(lines[4] == "final evaluation [2/9] capacity 0.80, features: 100/100 images in 25.0s (4.0 images/s)");
}

TEST_CASE("phases shorter than the interval leave their final line only; print() is never held back") {
  CapturedStream out;
  double t = 0;
  ProgressConsole console(ProgressStyle::lines, out.file, 5.0, [&] { return t; });
  console.print("train_scpn: starting");
  for (int phase = 0; phase < 3; ++phase) {
    Progress p(&console, "ranking " + std::to_string(phase), 3000, "queries");
    for (int block = 1; block <= 3; ++block) {
      t += 0.5;
      p.advance(1000);
    }
    p.finish();
  }
  const std::vector<std::string> lines = out.lines();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "train_scpn: starting");
  CHECK(lines[1] == "ranking 0: 3000/3000 queries in 1.5s (2000 queries/s)");
  CHECK(lines[3] == "ranking 2: 3000/3000 queries in 1.5s (2000 queries/s)");
}

TEST_CASE("a resumed count, a note, a pause and a slow unit in the line") {
  double t = 0;
  CapturedStream out;
  ProgressConsole console(ProgressStyle::lines, out.file, 5.0, [&] { return t; });
  // 400 of 1000 images were done by an earlier process: the rate counts only this one's.
  Progress training(&console, "training", 1000, "images", 400);
  t = 10;
  training.set_note("step 37/62, epoch 0, loss 1.2345");
  training.set_done(600);
  CHECK(training.rate() == doctest::Approx(20.0));
  CHECK(training.line() == "training: 600/1000 images (60%), 20 images/s, ETA 20.0s; step 37/62, epoch 0, loss 1.2345");
  training.pause();  // an epoch's evaluation: 30 s that are not training
  t = 40;
  CHECK(training.seconds() == doctest::Approx(10.0));
  training.resume();
  t = 50;
  training.set_done(1000);
  CHECK(training.finish() == doctest::Approx(20.0));
  CHECK(out.lines().back() == "training: 1000/1000 images in 20.0s (30 images/s)");

  t = 0;
  Progress sweep(nullptr, "final evaluation", 9, "capacities");  // no console: counted and timed, not shown
  t = 30;
  sweep.advance();
  CHECK(sweep.done() == 1);
  Progress slow(&console, "final evaluation", 9, "capacities");
  t = 60;
  slow.advance();
  CHECK(slow.line() == "final evaluation: 1/9 capacities (11%), 30.0s each, ETA 4m00s");
  Progress idle(&console, "decoding the test set", 10, "images");
  CHECK(idle.line() == "decoding the test set: 0/10 images (0%), - images/s, ETA ?");
}

TEST_CASE("a terminal gets the running line rewritten in place and each phase's final line kept") {
  CapturedStream out;
  double t = 0;
  ProgressConsole console(ProgressStyle::terminal, out.file, 5.0, [&] { return t; });
  {
    Progress p(&console, "training", 10, "images");
    t = 1;
    p.advance(2);
    t = 1.05;  // within a redraw interval: not drawn
    p.advance(2);
    t = 2;
    p.advance(2);
    p.finish();
  }
  const std::string expected = std::string("\r\033[Ktraining: 2/10 images (20%), 2.0 images/s, ETA 4.0s") +
                               "\r\033[Ktraining: 6/10 images (60%), 3.0 images/s, ETA 1.3s" +
                               "\r\033[Ktraining: 6/10 images in 2.0s (3.0 images/s)\n";
  CHECK(out.text() == expected);

  // A phase ended by an exception: its line is cleared, no final line claims anything.
  CapturedStream interrupted;
  ProgressConsole tty(ProgressStyle::terminal, interrupted.file, 5.0, [&] { return t; });
  {
    Progress p(&tty, "features", 10, "images");
    t += 1;
    p.advance(5);
  }
  CHECK(interrupted.text() == "\r\033[Kfeatures: 5/10 images (50%), 5.0 images/s, ETA 1.0s\r\033[K");
}

TEST_CASE("quiet prints nothing at all") {
  CapturedStream out;
  CHECK(ProgressConsole::style_for(true, out.file) == ProgressStyle::quiet);
  double t = 0;
  ProgressConsole console(ProgressStyle::quiet, out.file, 0.0, [&] { return t; });
  Progress p(&console, "training", 4, "images");
  for (int i = 0; i < 4; ++i) {
    t += 10;
    p.advance();
  }
  CHECK(p.finish() == doctest::Approx(40.0));
  console.print("epoch 0: parent_test_accuracy 0.5000");
  console.close_line();
  CHECK(out.text().empty());
}

TEST_CASE("bad progress arguments are refused with their messages") {
  CHECK_THROWS_WITH_AS(Progress(nullptr, "training", 5, "images", 6), "progress of 'training': 6 of 5 done", Error);
  CHECK_THROWS_WITH_AS(Progress(nullptr, "ranking", -1, "queries"), "progress of 'ranking': 0 of -1 done", Error);
  CapturedStream out;
  CHECK_THROWS_WITH_AS(ProgressConsole(ProgressStyle::lines, out.file, -1.0),
                       "ProgressConsole: line interval -1 s is negative", Error);
}
