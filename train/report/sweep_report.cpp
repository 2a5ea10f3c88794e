// The sweep's report folder (see sweep_report.h): the pictures built from the results with
// train/report/plots, the JSON and text tables, and an HTML page that shows them with the run's config.
#include "train/report/sweep_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "train/atomic_write.h"
#include "train/report/plots.h"
#include "train/report/training_curves.h"

namespace scpn::train {

namespace {

using plots::Rgb;

// Distinct colours for the curves (colour-blind-safe Tableau-like set).
const Rgb kBlue{31, 119, 180}, kOrange{255, 127, 14}, kGreen{44, 160, 44}, kPurple{148, 103, 189};

std::vector<std::string> capacity_labels(const std::vector<double>& capacities) {
  std::vector<std::string> out;
  for (double c : capacities) out.push_back(models::capacity_key(c));
  return out;
}

// The colour range of a matrix: its values rounded out to 0.05, at least 0.05 wide.
void value_range(const std::vector<std::vector<double>>& values, double& lo, double& hi) {
  lo = 1, hi = 0;
  for (const auto& row : values)
    for (double v : row)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (hi < lo) lo = 0, hi = 1;
  lo = std::floor(lo * 20 - 1e-9) / 20;
  hi = std::ceil(hi * 20 + 1e-9) / 20;
  if (hi - lo < 0.05) hi = lo + 0.05;
}

plots::Heatmap matrix_heatmap(const SweepResult& r, const std::string& title,
                              const std::vector<std::vector<double>>& values) {
  plots::Heatmap h;
  h.title = title;
  h.x_label = "gallery capacity";
  h.y_label = "query capacity";
  h.row_labels = capacity_labels(r.report.matrix.query_capacities);
  h.col_labels = capacity_labels(r.report.matrix.gallery_capacities);
  h.values = values;
  value_range(values, h.v_lo, h.v_hi);
  h.cell = h.col_labels.size() > 14 ? 32 : 48;
  return h;
}

// mAP curves against capacity or MACs (millions): self-test, cross-test, cross-test with the parent's
// statistics, accuracy, and the other model's gallery when there is one.
plots::LinePlot curves(const SweepResult& r, bool against_macs) {
  plots::LinePlot p;
  p.title = against_macs ? "Retrieval against compute" : "Retrieval against capacity";
  p.x_label = against_macs ? "MMACs per image (" + std::to_string(r.image_size) + " x " + std::to_string(r.image_size) + ")"
                           : "capacity (fraction of weights kept)";
  p.y_label = "mAP / accuracy";
  if (!against_macs) p.x_lo = 0, p.x_hi = 1;
  p.y_lo = 0, p.y_hi = 1;
  p.filled_note = "trained capacity";
  p.hollow_note = "not trained (BN re-estimated)";
  // Points ordered by x ascending (rows are descending).
  std::vector<size_t> order(r.report.rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;
  auto series = [&](const std::string& label, Rgb color, bool dashed, auto value, bool (*present)(const CapacityReport&)) {
    plots::Series s;
    s.label = label;
    s.color = color;
    s.dashed = dashed;
    for (size_t i : order) {
      const CapacityReport& row = r.report.rows[i];
      if (!present(row)) continue;
      s.x.push_back(against_macs ? double(r.macs[i]) / 1e6 : row.capacity);
      s.y.push_back(value(i));
      s.filled.push_back(r.is_trained(row.capacity));
    }
    if (!s.x.empty()) p.series.push_back(s);
  };
  auto always = [](const CapacityReport&) { return true; };
  auto with_parent_bn = [](const CapacityReport& row) { return row.has_parent_bn; };
  const auto& rows = r.report.rows;
  series("self-test mAP", kBlue, false, [&](size_t i) { return rows[i].self.map; }, always);
  series("cross-test mAP (vs parent)", kOrange, false, [&](size_t i) { return rows[i].cross.map; }, always);
  series("cross-test mAP, parent BN stats", kOrange, true, [&](size_t i) { return rows[i].cross_parent_bn.map; },
         with_parent_bn);
  auto with_accuracy = [](const CapacityReport& row) { return !std::isnan(row.accuracy); };
  series("accuracy", kGreen, true, [&](size_t i) { return rows[i].accuracy; }, with_accuracy);
  if (r.gallery)
    series("cross mAP vs other model", kPurple, false, [&](size_t i) { return r.gallery->cross[i].map; }, always);
  return p;
}

// How the test images were ranked, in one sentence.
std::string protocol(const SweepResult& r) {
  const int64_t queries = r.report.rows.empty() ? 0 : r.report.rows[0].self.queries;
  if (r.gallery_images > 0)
    return cat(queries, " queries, each ranked against a separate gallery of ", r.gallery_images,
               " images (relevant: the gallery images of the query's item).");
  return cat(queries, " test images; every query is ranked against all other test images.");
}

// training_curves: whether training_curves.svg was written.
std::string index_html(const SweepResult& r, const ReportInfo& info, bool training_curves) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + plots::xml_escape(info.title) +
       "</title>\n<style>\n"
       "body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }\n"
       "img { border: 1px solid #ddd; margin: 0.5em 0.5em 0.5em 0; max-width: 100%; }\n"
       "pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }\n"
       "table.config td { padding: 1px 12px 1px 0; font-family: monospace; font-size: 13px; }\n"
       "</style>\n</head>\n<body>\n";
  h += "<h1>" + plots::xml_escape(info.title) + "</h1>\n";
  h += "<p>Checkpoint <code>" + plots::xml_escape(info.checkpoint) + "</code>, config <code>" + plots::xml_escape(info.config_file) +
       "</code>. " + protocol(r) + " Cross-test: queries embedded by the "
       "subnetwork, gallery by the parent (capacity 1). Trained capacities use their own BatchNorm statistics; the "
       "others have them re-estimated over training batches. The dashed orange curve evaluates every subnetwork "
       "with the parent's statistics instead.</p>\n";
  if (r.gallery)
    h += "<p>Other gallery: queries by this model's subnetworks, gallery by the parent of <code>" +
         plots::xml_escape(r.gallery->name) + "</code> (purple curve).</p>\n";
  h += "<h2>Compatibility matrix</h2>\n"
       "<a href=\"compat_map.png\"><img src=\"compat_map.svg\" alt=\"mAP compatibility matrix\"></a>\n"
       "<a href=\"compat_r1.png\"><img src=\"compat_r1.svg\" alt=\"Recall@1 compatibility matrix\"></a>\n";
  h += "<h2>Self-test and cross-test</h2>\n"
       "<a href=\"map_vs_capacity.png\"><img src=\"map_vs_capacity.svg\" alt=\"mAP against capacity\"></a>\n"
       "<a href=\"map_vs_macs.png\"><img src=\"map_vs_macs.svg\" alt=\"mAP against MACs\"></a>\n";
  h += "<h2>Training</h2>\n";
  if (training_curves)
    h += "<p>From <code>" + plots::xml_escape(info.metrics_file) +
         "</code>: the loss of the parent and of each trained subnetwork, the metric each epoch was judged by, "
         "the learning rate and the training throughput, per logged step.</p>\n"
         "<a href=\"training_curves.png\"><img src=\"training_curves.svg\" alt=\"training curves\"></a>\n";
  else
    h += "<p>No training curves: " +
         std::string(info.metrics_file.empty() ? "no metrics.jsonl beside the run's config."
                                               : "the run's metrics.jsonl logged no step.") + "</p>\n";
  h += "<h2>Table</h2>\n<pre>" + plots::xml_escape(r.table()) + "</pre>\n<p>Also as <a href=\"eval.json\">eval.json</a> and "
       "<a href=\"eval.txt\">eval.txt</a>.</p>\n";
  h += "<h2>Run config</h2>\n<table class=\"config\">\n";
  if (info.config.is_object())
    for (auto& [key, value] : info.config.items())
      h += "<tr><td>" + plots::xml_escape(key) + "</td><td>" + plots::xml_escape(value.dump()) + "</td></tr>\n";
  h += "</table>\n</body>\n</html>\n";
  return h;
}

}  // namespace

void write_sweep_report(const std::string& folder, const SweepResult& r, const ReportInfo& info) {
  SCPN_CHECK(!r.report.rows.empty(), "write_sweep_report: no capacities evaluated");
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  SCPN_CHECK(std::filesystem::is_directory(folder), "--output ", folder, ": cannot create the folder",
             ec ? " (" + ec.message() + ")" : "");
  const std::string dir = folder + "/";
  nlohmann::json j = r.to_json();
  j["checkpoint"] = info.checkpoint;
  j["config_file"] = info.config_file;
  j["config"] = info.config;
  write_text_atomic(dir + "eval.json", j.dump(2) + "\n");
  write_text_atomic(dir + "eval.txt", r.table());
  plots::write_heatmap(dir + "compat_map", matrix_heatmap(r, "Compatibility: mAP", r.report.matrix.map));
  plots::write_heatmap(dir + "compat_r1", matrix_heatmap(r, "Compatibility: Recall@1", r.report.matrix.recall_at_1));
  plots::write_line_plot(dir + "map_vs_capacity", curves(r, false));
  plots::write_line_plot(dir + "map_vs_macs", curves(r, true));
  bool training_curves = false;
  if (!info.metrics_file.empty()) {
    const TrainingLog log = read_training_log(info.metrics_file);
    training_curves = !log.steps.empty();
    if (training_curves) write_training_curves(dir + "training_curves", log);
  }
  write_text_atomic(dir + "index.html", index_html(r, info, training_curves));
}

}  // namespace scpn::train
