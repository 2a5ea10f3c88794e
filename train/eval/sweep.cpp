// The capacity sweep (see sweep.h): evaluate_model over the sorted capacities, complexity per capacity,
// the other model's gallery, and the sweep as JSON and as a text table.
#include "train/eval/sweep.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "models/complexity.h"
#include "train/eval/model_source.h"

namespace scpn::train {

namespace {

bool same_capacity(double a, double b) { return models::capacity_key(a) == models::capacity_key(b); }

double recall_at_1(const RetrievalResult& r) { return r.recall.empty() ? 0.0 : r.recall[0]; }

}  // namespace

bool SweepResult::is_trained(double capacity) const {
  if (capacity == 1.0) return true;
  return std::any_of(trained.begin(), trained.end(), [&](double t) { return same_capacity(t, capacity); });
}

SweepResult run_sweep(models::ResNet& model, const ExperimentData& data, const SweepOptions& options,
                      const models::ResNet* gallery_model, const std::string& gallery_name) {
  SCPN_CHECK(data.test.loaded(), "run_sweep: the test set is not loaded");
  // Descending, 1 first, each capacity once.
  std::vector<double> capacities{1.0};
  std::set<std::string> seen{models::capacity_key(1.0)};
  for (double c : options.capacities) {
    models::check_capacity("--capacities", c);
    if (seen.insert(models::capacity_key(c)).second) capacities.push_back(c);
  }
  std::sort(capacities.begin(), capacities.end(), std::greater<double>());
  if (gallery_model) {
    const models::ResNetConfig &a = model.config(), &b = gallery_model->config();
    SCPN_CHECK(b.in_channels == a.in_channels, "--gallery-checkpoint ", gallery_name, ": the model takes ", b.in_channels,
               "-channel images, the evaluated model ", a.in_channels);
    SCPN_CHECK(b.feature_dim == a.feature_dim, "--gallery-checkpoint ", gallery_name, ": its features have ", b.feature_dim,
               " dimensions, the evaluated model's ", a.feature_dim);
  }

  SweepResult r;
  r.trained = options.trained;
  r.image_size = options.image_size;
  r.gallery_images = data.test.one_set() ? 0 : data.test.gallery_size();
  EvalOptions eo;
  eo.capacities = capacities;
  eo.trained_capacities = capacities_with_own_stats(model);
  eo.bn_reestimate_batches = options.reestimate_batches;
  eo.parent_bn_too = options.parent_bn_too;
  eo.recall_k = options.recall_k;
  eo.batch_size = options.batch_size;
  eo.keep_features = gallery_model != nullptr;
  eo.console = options.console;
  eo.progress_label = options.progress_label;
  r.report = evaluate_model(model, data.test, eo, restarting_reestimation_batches(data));

  for (double c : capacities) {
    models::Complexity cx = models::count_complexity(model, c, options.image_size, options.image_size);
    r.params.push_back(cx.params);
    r.macs.push_back(cx.macs);
    if (c == 1.0) r.parent_params = cx.params, r.parent_macs = cx.macs;
  }

  if (gallery_model) {
    SCPN_CHECK(!gallery_model->is_training(), "run_sweep: the gallery model must be in eval mode");
    const std::string label = options.progress_label + ", other gallery";
    Progress features(options.console, label + " features", set_images(data.test), "images");
    const SetEmbedding other = embed_set(*gallery_model, data.test, {1.0}, options.batch_size, &features);
    features.finish();
    Progress ranking(options.console, label + " ranking", data.test.queries() * int64_t(1 + r.report.features.size()),
                     "queries");
    RetrievalOptions ropt;
    ropt.recall_k = options.recall_k;
    ropt.progress = &ranking;
    GalleryComparison g;
    g.name = gallery_name;
    g.self = retrieve(data.test, other, other, ropt);
    g.accuracy = set_accuracy(data.test, other);
    // Each capacity's query features (kept by evaluate_model) against the other model's gallery.
    for (const Tensor& f : r.report.features) {
      SetEmbedding queries;
      queries.query.features = f;
      g.cross.push_back(retrieve(data.test, queries, other, ropt));
    }
    ranking.finish();
    r.gallery = std::move(g);
    r.report.features.clear();
  }
  return r;
}

nlohmann::json SweepResult::to_json() const {
  nlohmann::json j = report.to_json();
  for (size_t i = 0; i < report.rows.size(); ++i) {
    nlohmann::json& row = j["capacities"][i];
    row["trained_capacity"] = is_trained(report.rows[i].capacity);
    row["params"] = params[i];
    row["macs"] = macs[i];
    row["macs_ratio"] = parent_macs ? double(macs[i]) / double(parent_macs) : 0.0;
    if (gallery) row["cross_other_gallery"] = retrieval_json(gallery->cross[i]);
  }
  j["trained_capacities"] = trained;
  j["image_size"] = image_size;
  j["test_images"] = report.rows.empty() ? 0 : report.rows[0].self.queries;  // the queries
  if (gallery_images > 0) j["gallery_images"] = gallery_images;
  if (gallery)
    j["other_gallery"] = {{"checkpoint", gallery->name}, {"self", retrieval_json(gallery->self)}, {"accuracy", gallery->accuracy}};
  return j;
}

std::string SweepResult::table() const {
  std::ostringstream os;
  char line[320];
  bool parent_bn = std::any_of(report.rows.begin(), report.rows.end(), [](const CapacityReport& r) { return r.has_parent_bn; });
  std::snprintf(line, sizeof line, "%-8s %-7s %-12s %10s %9s %6s %8s %9s %8s %9s %8s", "capacity", "trained", "BN stats",
                "params", "MMACs", "MACs%", "self mAP", "cross mAP", "self R@1", "cross R@1", "accuracy");
  os << line << (parent_bn ? " | parent BN: cross mAP accuracy" : "") << (gallery ? " | other gallery: mAP   R@1" : "")
     << "\n";
  for (size_t i = 0; i < report.rows.size(); ++i) {
    const CapacityReport& r = report.rows[i];
    std::snprintf(line, sizeof line, "%-8s %-7s %-12s %10lld %9.3f %5.1f%% %8.4f %9.4f %8.4f %9.4f %8s",
                  models::capacity_key(r.capacity).c_str(), is_trained(r.capacity) ? "yes" : "no", r.bn_source.c_str(),
                  (long long)params[i], macs[i] / 1e6, parent_macs ? 100.0 * double(macs[i]) / double(parent_macs) : 0.0,
                  r.self.map, r.cross.map, recall_at_1(r.self), recall_at_1(r.cross), score_str(r.accuracy).c_str());
    os << line;
    if (parent_bn) {
      if (r.has_parent_bn)
        std::snprintf(line, sizeof line, " |            %9.4f %8s", r.cross_parent_bn.map, score_str(r.accuracy_parent_bn).c_str());
      else
        std::snprintf(line, sizeof line, " |            %9s %8s", "-", "-");
      os << line;
    }
    if (gallery) {
      std::snprintf(line, sizeof line, " |               %6.4f %6.4f", gallery->cross[i].map, recall_at_1(gallery->cross[i]));
      os << line;
    }
    os << "\n";
  }
  if (gallery) {
    std::snprintf(line, sizeof line, "other gallery: %s (self mAP %.4f, R@1 %.4f, accuracy %s)\n", gallery->name.c_str(),
                  gallery->self.map, recall_at_1(gallery->self), score_str(gallery->accuracy).c_str());
    os << line;
  }
  const CompatibilityMatrix& m = report.matrix;
  auto matrix = [&](const char* what, const std::vector<std::vector<double>>& values) {
    os << "\ncompatibility matrix, " << what << " (rows: query capacity, columns: gallery capacity)\n        ";
    for (double g : m.gallery_capacities) {
      std::snprintf(line, sizeof line, " %6s", models::capacity_key(g).c_str());
      os << line;
    }
    os << "\n";
    for (size_t i = 0; i < m.query_capacities.size(); ++i) {
      std::snprintf(line, sizeof line, "%-8s", models::capacity_key(m.query_capacities[i]).c_str());
      os << line;
      for (double v : values[i]) {
        std::snprintf(line, sizeof line, " %6.3f", v);
        os << line;
      }
      os << "\n";
    }
  };
  matrix("mAP", m.map);
  matrix("Recall@1", m.recall_at_1);
  return os.str();
}

}  // namespace scpn::train
