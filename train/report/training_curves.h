// The training curves of a run, read back from its metrics.jsonl (written by train/run_log.h) and drawn as
// one picture of stacked panels (train/report/plots.h): the parent's and every subnetwork's loss, the
// per-epoch metric, the learning rate and images/s. Tested by tests/train/test_training_curves.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/report/plots.h"

namespace scpn::train {

struct TrainingLog {
  struct Step {
    int64_t step = 0, epoch = 0;
    double lr = 0, parent_loss = 0, images_per_s = 0;
    std::vector<double> capacities, subnet_losses;  // same length: the step's subnetworks and their losses
  };
  struct Epoch {
    int64_t epoch = 0;
    double mean_parent_loss = 0;
    std::string metric;  // "parent_test_accuracy", "parent_test_recall@1"
    double value = 0;
  };
  std::vector<Step> steps;    // ascending step; a step logged twice (a resumed run) keeps its later line
  std::vector<Epoch> epochs;  // ascending epoch, likewise
};

// Reads a metrics.jsonl. Errors name the file and line: a line that is not a JSON object, a step line
// without one of its keys or with capacities and subnet_losses of different lengths, a line that is
// neither a step nor an epoch line.
TrainingLog read_training_log(const std::string& path);

// The metrics.jsonl in the folder of a run's config.json (train_scpn writes both there), or "" when there
// is none.
std::string training_metrics_beside(const std::string& config_file);

struct CurvePanel {
  std::string name;  // the SVG group's class: "losses", "epoch-metric", "learning-rate", "throughput"
  plots::LinePlot plot;
};
// The panels, top to bottom: losses (the parent, one series per capacity present in every step line, and
// the mean over the other — extra random — capacities when there are any), the per-epoch metric (when an
// epoch finished), the learning rate and images/s, against the step (the metric: against the epoch).
// Long curves are averaged over consecutive steps down to at most max_points points.
std::vector<CurvePanel> training_curve_panels(const TrainingLog& log, size_t max_points = 600);

// The panels stacked into one picture, each in a group whose class is its name; errors when the log has
// no step.
std::string training_curves_svg(const TrainingLog& log);
plots::Image training_curves_image(const TrainingLog& log);
// Writes <stem>.svg and <stem>.png atomically.
void write_training_curves(const std::string& stem, const TrainingLog& log);

}  // namespace scpn::train
