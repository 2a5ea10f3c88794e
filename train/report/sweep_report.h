// The report folder of an evaluation sweep (train/eval/sweep.h), written by tools/eval: the results as JSON
// and a text table, the compatibility heatmaps, mAP curves and training curves as SVG and PNG
// (train/report/plots.h, training_curves.h), and an HTML page that shows them with the run's config.
// Tested by tests/train/test_prune.cpp and tests/train/test_training_curves.cpp.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "train/eval/sweep.h"

namespace scpn::train {

// What the report page says about its origin.
struct ReportInfo {
  std::string title;        // the page's heading
  std::string checkpoint, config_file;
  nlohmann::json config;    // the run's flat config (TrainConfig::to_json)
  std::string metrics_file;  // the run's metrics.jsonl (training_metrics_beside); empty: no training curves
};

// Writes into `folder` (created if needed): eval.json, eval.txt, compat_map.{svg,png}, compat_r1.{svg,png},
// map_vs_capacity.{svg,png}, map_vs_macs.{svg,png}, training_curves.{svg,png} (with a metrics file that
// logged a step) and index.html, each atomically.
void write_sweep_report(const std::string& folder, const SweepResult& result, const ReportInfo& info);

}  // namespace scpn::train
