// The training curves (see training_curves.h): metrics.jsonl parsed line by line into steps and epochs,
// then four line plots stacked on one canvas.
#include "train/report/training_curves.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/config.h"
#include "train/atomic_write.h"

namespace scpn::train {

namespace {

using json = nlohmann::json;
using plots::Rgb;

const Rgb kParent{34, 34, 34}, kGrey{127, 127, 127};
// The subnetworks' colours in capacity order (the Tableau palette, which keeps neighbours distinct).
const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40}, {148, 103, 189},
                        {140, 86, 75},  {227, 119, 194}, {188, 189, 34}, {23, 190, 207}};
constexpr int kPanelWidth = 760, kLossHeight = 300, kPanelHeight = 250;

template <class T>
T required(const json& line, const char* key, const std::string& where) {
  auto it = line.find(key);
  SCPN_CHECK(it != line.end(), where, ": no \"", key, "\"");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(cat(where, ": \"", key, "\" is ", it->dump(), ", not of the expected type"));
  }
}

// The epoch line's metric: its one key besides "epoch" and "mean_parent_loss".
void read_epoch(const json& line, const std::string& where, TrainingLog::Epoch& e) {
  e.epoch = required<int64_t>(line, "epoch", where);
  for (auto& [key, value] : line.items()) {
    if (key == "epoch") continue;
    SCPN_CHECK(value.is_number(), where, ": \"", key, "\" is ", value.dump(), ", not a number");
    if (key == "mean_parent_loss") e.mean_parent_loss = value.get<double>();
    else e.metric = key, e.value = value.get<double>();
  }
  SCPN_CHECK(!e.metric.empty(), where, ": an epoch line without its metric");
}

// Averages consecutive points in bins, so that at most max_points remain.
void thin(std::vector<double>& x, std::vector<double>& y, size_t max_points) {
  if (max_points == 0 || x.size() <= max_points) return;
  const size_t bin = (x.size() + max_points - 1) / max_points;
  std::vector<double> tx, ty;
  for (size_t i = 0; i < x.size(); i += bin) {
    const size_t end = std::min(i + bin, x.size());
    double sx = 0, sy = 0;
    for (size_t k = i; k < end; ++k) sx += x[k], sy += y[k];
    tx.push_back(sx / double(end - i));
    ty.push_back(sy / double(end - i));
  }
  x.swap(tx);
  y.swap(ty);
}

plots::Series curve(const std::string& label, Rgb color, std::vector<double> x, std::vector<double> y, size_t max_points,
                    bool dashed = false) {
  thin(x, y, max_points);
  plots::Series s;
  s.label = label;
  s.color = color;
  s.dashed = dashed;
  s.markers = x.size() < 20;  // a marker per point only where there are few
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}

plots::LinePlot panel(const std::string& title, const std::string& x_label, const std::string& y_label, int height) {
  plots::LinePlot p;
  p.title = title;
  p.x_label = x_label;
  p.y_label = y_label;
  p.width = kPanelWidth;
  p.height = height;
  return p;
}

}  // namespace

TrainingLog read_training_log(const std::string& path) {
  std::ifstream in(path);
  SCPN_CHECK(in.good(), path, ": cannot open the training log");
  std::map<int64_t, TrainingLog::Step> steps;
  std::map<int64_t, TrainingLog::Epoch> epochs;
  int64_t number = 0;
  for (std::string text; std::getline(in, text);) {
    ++number;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cat(path, ":", number);
    json line = json::parse(text, nullptr, false);
    SCPN_CHECK(!line.is_discarded() && line.is_object(), where, ": not a JSON object");
    if (line.contains("step")) {
      TrainingLog::Step s;
      s.step = required<int64_t>(line, "step", where);
      s.epoch = required<int64_t>(line, "epoch", where);
      s.lr = required<double>(line, "lr", where);
      s.parent_loss = required<double>(line, "parent_loss", where);
      s.images_per_s = required<double>(line, "images_per_s", where);
      s.capacities = required<std::vector<double>>(line, "capacities", where);
      s.subnet_losses = required<std::vector<double>>(line, "subnet_losses", where);
      SCPN_CHECK(s.capacities.size() == s.subnet_losses.size(), where, ": ", s.capacities.size(), " capacities but ",
                 s.subnet_losses.size(), " subnet_losses");
      steps[s.step] = std::move(s);
    } else if (line.contains("epoch")) {
      TrainingLog::Epoch e;
      read_epoch(line, where, e);
      epochs[e.epoch] = std::move(e);
    } else {
      throw Error(cat(where, ": neither a step line (\"step\") nor an epoch line (\"epoch\")"));
    }
  }
  TrainingLog log;
  for (auto& [step, s] : steps) log.steps.push_back(std::move(s));
  for (auto& [epoch, e] : epochs) log.epochs.push_back(std::move(e));
  return log;
}

std::string training_metrics_beside(const std::string& config_file) {
  if (config_file.empty()) return "";
  const std::filesystem::path metrics = std::filesystem::path(config_file).parent_path() / "metrics.jsonl";
  return std::filesystem::is_regular_file(metrics) ? metrics.string() : "";
}

std::vector<CurvePanel> training_curve_panels(const TrainingLog& log, size_t max_points) {
  SCPN_CHECK(!log.steps.empty(), "training curves: the training log has no step");
  // The tasks: capacities in every step line. The others were drawn at random, one step each.
  std::map<std::string, int64_t> seen;
  for (const auto& s : log.steps) {
    std::set<std::string> keys;
    for (double c : s.capacities) keys.insert(models::capacity_key(c));
    for (const std::string& k : keys) ++seen[k];
  }
  std::vector<std::string> tasks;
  for (auto& [key, count] : seen)
    if (count == int64_t(log.steps.size())) tasks.push_back(key);
  std::sort(tasks.begin(), tasks.end(), [](const std::string& a, const std::string& b) { return std::stod(a) > std::stod(b); });

  std::vector<double> steps, parent, lr, rate;
  std::vector<std::vector<double>> task_loss(tasks.size());
  std::vector<double> random_steps, random_loss;
  for (const auto& s : log.steps) {
    steps.push_back(double(s.step));
    parent.push_back(s.parent_loss);
    lr.push_back(s.lr);
    rate.push_back(s.images_per_s);
    // A task takes the first subnetwork with its key; a random capacity that happens to round to a task's
    // key is still a random one.
    std::vector<bool> taken(tasks.size(), false);
    double other = 0;
    int64_t others = 0;
    for (size_t i = 0; i < s.capacities.size(); ++i) {
      const size_t t = size_t(std::find(tasks.begin(), tasks.end(), models::capacity_key(s.capacities[i])) - tasks.begin());
      if (t < tasks.size() && !taken[t]) {
        taken[t] = true;
        task_loss[t].push_back(s.subnet_losses[i]);
      } else {
        other += s.subnet_losses[i], ++others;
      }
    }
    if (others > 0) random_steps.push_back(double(s.step)), random_loss.push_back(other / double(others));
  }

  std::vector<CurvePanel> panels;
  plots::LinePlot losses = panel("Training loss: the parent and each subnetwork", "step", "loss", kLossHeight);
  losses.series.push_back(curve("parent", kParent, steps, parent, max_points));
  for (size_t i = 0; i < tasks.size(); ++i)
    losses.series.push_back(curve("capacity " + tasks[i], kPalette[i % std::size(kPalette)], steps, task_loss[i], max_points));
  if (!random_steps.empty())
    losses.series.push_back(curve("random capacities (mean)", kGrey, random_steps, random_loss, max_points, true));
  panels.push_back({"losses", losses});

  if (!log.epochs.empty()) {
    // Against the epochs trained (epoch e's line is written after e + 1 epochs); at least five on the axis,
    // so that its ticks fall on whole epochs.
    std::vector<double> trained, value;
    for (const auto& e : log.epochs) trained.push_back(double(e.epoch + 1)), value.push_back(e.value);
    const std::string& metric = log.epochs.back().metric;
    plots::LinePlot m = panel("Per-epoch metric (" + metric + ")", "epochs trained", metric, kPanelHeight);
    m.x_lo = 0, m.x_hi = std::max(5.0, trained.back());
    m.y_lo = 0, m.y_hi = 1;
    plots::Series s = curve(metric, kPalette[0], trained, value, max_points);
    s.markers = true;
    m.series.push_back(s);
    panels.push_back({"epoch-metric", m});
  }
  plots::LinePlot l = panel("Learning rate", "step", "learning rate", kPanelHeight);
  l.series.push_back(curve("learning rate", kPalette[2], steps, lr, max_points));
  panels.push_back({"learning-rate", l});
  plots::LinePlot t = panel("Training throughput (evaluations left out)", "step", "images/s", kPanelHeight);
  t.series.push_back(curve("images/s, mean since the start", kPalette[1], steps, rate, max_points));
  panels.push_back({"throughput", t});
  return panels;
}

namespace {

void stacked_size(const std::vector<CurvePanel>& panels, int& width, int& height) {
  width = 0, height = 0;
  for (const CurvePanel& p : panels) width = std::max(width, p.plot.width), height += p.plot.height;
}

void draw_stacked(plots::Canvas& canvas, const std::vector<CurvePanel>& panels) {
  double y = 0;
  for (const CurvePanel& p : panels) {
    plots::ShiftedCanvas shifted(canvas, 0, y);
    canvas.begin_group(p.name);
    plots::draw_line_plot(shifted, p.plot);
    canvas.end_group();
    y += p.plot.height;
  }
}

}  // namespace

std::string training_curves_svg(const TrainingLog& log) {
  const std::vector<CurvePanel> panels = training_curve_panels(log);
  int width, height;
  stacked_size(panels, width, height);
  plots::SvgCanvas canvas(width, height);
  draw_stacked(canvas, panels);
  return canvas.svg();
}

plots::Image training_curves_image(const TrainingLog& log) {
  const std::vector<CurvePanel> panels = training_curve_panels(log);
  int width, height;
  stacked_size(panels, width, height);
  plots::RasterCanvas canvas(width, height);
  draw_stacked(canvas, panels);
  return canvas.image();
}

void write_training_curves(const std::string& stem, const TrainingLog& log) {
  write_text_atomic(stem + ".svg", training_curves_svg(log));
  plots::write_png(stem + ".png", training_curves_image(log));
}

}  // namespace scpn::train
