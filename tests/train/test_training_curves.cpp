// The training curves from a metrics.jsonl written here: the log read back (a resumed run's repeated steps
// counted once), the picture's panels and series (the SVG parsed as XML, one loss series per trained task,
// the random capacities as one mean), the PNG decoded, long curves thinned, and bad logs refused by line.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <stb/stb_image.h>
#include <unistd.h>

#include "kernels/common/error.h"
#include "tests/support/xml.h"
#include "train/report/training_curves.h"

using namespace scpn;
using namespace scpn::train;
namespace fs = std::filesystem;

namespace {

struct TempLog {
  std::string path = (fs::temp_directory_path() / cat("scpn_test_curves_", ::getpid(), "_", counter()++, ".jsonl")).string();
  static int& counter() {
    static int n = 0;
    return n;
  }
  ~TempLog() { fs::remove(path); }
  void write(const std::string& text) const {
    std::ofstream out(path);
    out << text;
  }
};

// A step line as RunLog writes it.
std::string step_line(int64_t step, int64_t epoch, std::vector<double> capacities, double loss) {
  std::vector<double> losses;
  for (size_t i = 0; i < capacities.size(); ++i) losses.push_back(loss + 0.1 * double(i + 1));
  nlohmann::json j{{"step", step},         {"epoch", epoch},     {"lr", 0.1 / double(1 + step)},
                   {"parent_loss", loss},   {"capacities", capacities}, {"subnet_losses", losses},
                   {"grad_norm", 1.0},      {"images_per_s", 100.0 + double(step)}, {"step_ms", 10.0}};
  return j.dump() + "\n";
}

std::string epoch_line(int64_t epoch, double accuracy) {
  return nlohmann::json{{"epoch", epoch}, {"mean_parent_loss", 1.5}, {"parent_test_accuracy", accuracy}}.dump() + "\n";
}

size_t point_count(const test::XmlElement& polyline) {
  const std::string& points = polyline.attrs.at("points");
  return points.empty() ? 0 : size_t(std::count(points.begin(), points.end(), ' ')) + 1;
}

std::vector<std::string> legend_texts(const std::string& svg, const std::string& group) {
  // The legend's labels are the texts right of the plot area in the group's part of the document.
  std::vector<std::string> out;
  const size_t begin = svg.find("<g class=\"" + group + "\">"), end = svg.find("</g>", begin);
  for (size_t at = svg.find("<text", begin); at < end; at = svg.find("<text", at + 1)) {
    const size_t open = svg.find('>', at) + 1, close = svg.find("</text>", open);
    const std::string x = svg.substr(svg.find("x=\"", at) + 3, 6);
    if (std::stod(x) > 540) out.push_back(svg.substr(open, close - open));
  }
  return out;
}

}  // namespace

TEST_CASE("the curves of a run with two trained capacities and a random one: one loss series per task") {
  TempLog log;
  std::string text;
  // The random capacity equals 0.8 once (step 19): it still counts as a random one.
  for (int64_t s = 1; s <= 30; ++s)
    text += step_line(s, (s - 1) / 15, {0.8, 0.5, s == 19 ? 0.8 : 0.11 + 0.01 * double(s)}, 2.0 - 0.03 * double(s));
  text += epoch_line(0, 0.40);
  text += epoch_line(1, 0.55);
  log.write(text);

  const TrainingLog read = read_training_log(log.path);
  REQUIRE(read.steps.size() == 30);
  REQUIRE(read.epochs.size() == 2);
  CHECK(read.steps[4].step == 5);
  CHECK(read.steps[4].parent_loss == doctest::Approx(1.85));
  CHECK(read.epochs[1].metric == "parent_test_accuracy");
  CHECK(read.epochs[1].value == doctest::Approx(0.55));

  const std::string svg = training_curves_svg(read);
  const std::vector<test::XmlElement> doc = test::parse_xml(svg);
  REQUIRE(doc.front().name == "svg");
  CHECK(doc.front().attrs.at("height") == "1050");  // 300 (losses) + three panels of 250
  // Parent, 0.8, 0.5 and the mean of the random capacities, 30 points each.
  const std::vector<test::XmlElement> losses = test::with_class_inside(doc, "losses", "series");
  REQUIRE(losses.size() == 4);
  for (const auto& s : losses) CHECK(point_count(s) == 30);
  CHECK(losses[0].attrs.at("stroke") == "#222222");
  CHECK(losses[3].attrs.at("stroke-dasharray") == "6 4");
  CHECK(legend_texts(svg, "losses") ==
        std::vector<std::string>{"parent", "capacity 0.80", "capacity 0.50", "random capacities (mean)"});
  // Two epochs as two markers; learning rate and throughput one curve each.
  const std::vector<test::XmlElement> metric = test::with_class_inside(doc, "epoch-metric", "series");
  REQUIRE(metric.size() == 1);
  CHECK(point_count(metric[0]) == 2);
  CHECK(test::with_class_inside(doc, "epoch-metric", "point").size() == 2);
  CHECK(test::with_class_inside(doc, "learning-rate", "series").size() == 1);
  CHECK(test::with_class_inside(doc, "throughput", "series").size() == 1);
  CHECK(test::with_class_inside(doc, "losses", "point").empty());  // long curves have no markers

  // The PNG: the same size, each panel with pixels of its curve's colour (0.8's blue, the metric's blue
  // markers, the learning rate's green, the throughput's orange).
  const plots::Image image = training_curves_image(read);
  const std::string png = plots::encode_png(image);
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()), int(png.size()),
                                                &width, &height, &channels, 3);
  REQUIRE(pixels != nullptr);
  CHECK(width == 760);
  CHECK(height == 1050);
  const int tops[] = {0, 300, 550, 800};
  const plots::Rgb colours[] = {{31, 119, 180}, {31, 119, 180}, {44, 160, 44}, {255, 127, 14}};
  for (int panel = 0; panel < 4; ++panel) {
    CAPTURE(panel);
    int64_t coloured = 0;
    for (int y = tops[panel]; y < tops[panel] + 250; ++y)
      for (int x = 72; x < 510; ++x) {  // the plot area, legend left out
        const unsigned char* p = &pixels[(size_t(y) * width + x) * 3];
        coloured += std::abs(p[0] - colours[panel].r) < 12 && std::abs(p[1] - colours[panel].g) < 12 &&
                    std::abs(p[2] - colours[panel].b) < 12;
      }
    CHECK(coloured > 10);
  }
  stbi_image_free(pixels);
}

TEST_CASE("a parent-only run, a resumed log and a long log") {
  TempLog parent_only;
  parent_only.write(step_line(10, 0, {}, 2.0) + step_line(20, 0, {}, 1.5) + "\n" + epoch_line(0, 0.3));
  std::vector<test::XmlElement> doc = test::parse_xml(training_curves_svg(read_training_log(parent_only.path)));
  CHECK(test::with_class_inside(doc, "losses", "series").size() == 1);

  // Resumed from step 20 after it had logged up to 30: steps 21..30 are logged again; the later lines count.
  TempLog resumed;
  std::string text;
  for (int64_t s = 10; s <= 30; s += 10) text += step_line(s, 0, {0.5}, 2.0);
  for (int64_t s = 30; s <= 40; s += 10) text += step_line(s, 0, {0.5}, 1.0);
  resumed.write(text);
  TrainingLog r = read_training_log(resumed.path);
  REQUIRE(r.steps.size() == 4);
  CHECK(r.steps[2].step == 30);
  CHECK(r.steps[2].parent_loss == doctest::Approx(1.0));
  CHECK(r.epochs.empty());
  doc = test::parse_xml(training_curves_svg(r));
  CHECK(test::with_class(doc, "epoch-metric").empty());  // no epoch finished: no metric panel
  CHECK(doc.front().attrs.at("height") == "800");

  // 1000 logged steps are averaged in pairs down to 500 points.
  TempLog long_log;
  text.clear();
  for (int64_t s = 1; s <= 1000; ++s) text += step_line(s, 0, {0.5}, 1.0);
  long_log.write(text);
  const TrainingLog l = read_training_log(long_log.path);
  const std::vector<CurvePanel> panels = training_curve_panels(l, 600);
  REQUIRE(panels.front().name == "losses");
  REQUIRE(panels.front().plot.series.size() == 2);
  CHECK(panels.front().plot.series[0].x.size() == 500);
  CHECK(panels.front().plot.series[0].x[0] == doctest::Approx(1.5));
}

TEST_CASE("bad training logs are refused with the file and line") {
  TempLog log;
  log.write(step_line(1, 0, {0.5}, 1.0) + "{not json\n");
  CHECK_THROWS_WITH_AS(read_training_log(log.path), (log.path + ":2: not a JSON object").c_str(), Error);
  log.write("{\"step\": 3, \"epoch\": 0, \"lr\": 0.1}\n");
  CHECK_THROWS_WITH_AS(read_training_log(log.path), (log.path + ":1: no \"parent_loss\"").c_str(), Error);
  log.write(R"({"step": 1, "epoch": 0, "lr": 0.1, "parent_loss": 1, "images_per_s": 5, "capacities": [0.5], "subnet_losses": []})"
            "\n");
  CHECK_THROWS_WITH_AS(read_training_log(log.path), (log.path + ":1: 1 capacities but 0 subnet_losses").c_str(), Error);
  log.write("{\"loss\": 1}\n");
  CHECK_THROWS_WITH_AS(read_training_log(log.path),
                       (log.path + ":1: neither a step line (\"step\") nor an epoch line (\"epoch\")").c_str(), Error);
  log.write("{\"epoch\": 0, \"mean_parent_loss\": 1.5}\n");
  CHECK_THROWS_WITH_AS(read_training_log(log.path), (log.path + ":1: an epoch line without its metric").c_str(), Error);
  log.write("");
  CHECK(read_training_log(log.path).steps.empty());
  CHECK_THROWS_WITH_AS(training_curves_svg(read_training_log(log.path)), "training curves: the training log has no step",
                       Error);
  CHECK_THROWS_WITH_AS(read_training_log("/nonexistent/metrics.jsonl"),
                       "/nonexistent/metrics.jsonl: cannot open the training log", Error);
  CHECK(training_metrics_beside("/nonexistent/config.json").empty());
}
