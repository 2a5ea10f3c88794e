// Post-training pruning (see prune.h). The order of the work matters: a re-estimation overwrites the
// capacity's own statistics in the model, so everything that needs the trained ones (extracting with
// them, evaluating them) happens first.
#include "train/eval/prune.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "models/features.h"
#include "train/eval/evaluate.h"
#include "train/eval/model_source.h"

namespace scpn::train {

using models::BnStatsMode;

PruneBnStats parse_prune_bn_stats(const std::string& text) {
  if (text == "own") return PruneBnStats::own;
  if (text == "reestimate") return PruneBnStats::reestimate;
  if (text == "parent") return PruneBnStats::parent;
  throw Error(cat("--bn-stats: '", text, "' is not one of own, reestimate, parent"));
}

PruneResult prune_model(models::ResNet& model, const PruneOptions& options, const ExperimentData* data,
                        const std::string& data_error) {
  const double c = options.capacity;
  models::check_capacity("--capacity", c);
  SCPN_CHECK(options.reestimate_batches >= 1, "--reestimate-batches: ", options.reestimate_batches, " must be >= 1");
  SCPN_CHECK(options.image_size >= 1, "prune_model: image size ", options.image_size, " must be >= 1");
  const std::string key = models::capacity_key(c);
  models::PreparedMasks masks(model, {c});  // every forward and the extraction below are at c
  const bool has_own = c == 1.0 || model.batch_norms().empty() || model.batch_norms().front().second->has_capacity(c);

  PruneBnStats choice = options.bn_stats;
  if (choice == PruneBnStats::automatic) choice = has_own ? PruneBnStats::own : PruneBnStats::reestimate;
  if (c == 1.0 && choice == PruneBnStats::parent) choice = PruneBnStats::own;  // the same statistics
  if (choice == PruneBnStats::own)
    SCPN_CHECK(has_own, "--bn-stats own: ", options.source_name, " has no BatchNorm statistics for capacity ", key,
               " (it has: ", models::bn_capacities_str(model), "); use --bn-stats reestimate or parent");
  if (choice == PruneBnStats::reestimate) {
    SCPN_CHECK(c < 1.0, "--bn-stats reestimate: capacity 1 is the parent, whose statistics are trained, not re-estimated");
    if (!data) {
      if (options.bn_stats == PruneBnStats::automatic)
        throw Error(cat("capacity ", key, " has no BatchNorm statistics in ", options.source_name, " (it has: ",
                        models::bn_capacities_str(model), "), and re-estimating them needs the training data: ",
                        data_error, "; pass --bn-stats parent to use the parent's statistics"));
      throw Error(cat("--bn-stats reestimate needs the training data: ", data_error));
    }
  }
  const bool evaluate = options.evaluate && data;
  if (evaluate)
    SCPN_CHECK(data->test.loaded(), "prune_model: the test set is not loaded (ExperimentData::load_test_set)");

  model.eval();
  PruneResult r;
  r.capacity = c;
  r.granularity = model.config().granularity;
  r.bn_stats = c == 1.0 ? "parent" : choice == PruneBnStats::own ? "own" : choice == PruneBnStats::parent ? "parent" : "re-estimated";
  r.complexity = models::count_complexity(model, c, options.image_size, options.image_size);
  r.parent_complexity = models::count_complexity(model, 1.0, options.image_size, options.image_size);

  const std::string label = "prune " + key + ", ";
  const int64_t queries = evaluate ? data->test.queries() : 0;
  RetrievalOptions ropt;
  ropt.recall_k = options.recall_k;
  auto embed_phase = [&](const models::ResNet& m, const models::ForwardContext& ctx, const std::string& what) {
    Progress features(options.console, label + "features (" + what + ")", set_images(data->test), "images");
    SetEmbedding e = embed_set(m, data->test, ctx, options.batch_size, &features);
    features.finish();
    return e;
  };
  SetEmbedding parent;
  // `what` names the phase, as the features' phase before it.
  auto measure = [&](const SetEmbedding& e, const std::string& name, const std::string& what) {
    Progress ranking(options.console, label + "ranking (" + what + ")", 2 * queries, "queries");
    RetrievalOptions ranked = ropt;
    ranked.progress = &ranking;
    PruneVariant v;
    v.bn_stats = name;
    v.exported = name == r.bn_stats;
    v.self = retrieve(data->test, e, e, ranked);
    v.cross = retrieve(data->test, e, parent, ranked);
    v.accuracy = set_accuracy(data->test, e);
    ranking.finish();
    return v;
  };
  auto extract = [&](BnStatsMode stats) {
    Progress cutting(options.console, label + "cutting the subnetwork", 1, "subnetworks");
    r.subnet = models::extract_subnetwork(model, c, stats);
    cutting.advance();
    cutting.finish();
  };
  std::optional<PruneVariant> own, reestimated, parent_stats;
  if (evaluate) {
    parent = embed_phase(model, {1.0}, "parent model");
    {
      Progress ranking(options.console, label + "ranking (parent model)", queries, "queries");
      RetrievalOptions ranked = ropt;
      ranked.progress = &ranking;
      r.parent_self = retrieve(data->test, parent, parent, ranked);
      ranking.finish();
    }
    r.parent_accuracy = set_accuracy(data->test, parent);
    r.test_images = data->test.queries();
    r.gallery_images = data->test.one_set() ? 0 : data->test.gallery_size();
    r.evaluated = true;
    // The trained statistics, before a re-estimation replaces them.
    if (c < 1.0 && has_own && choice != PruneBnStats::own)
      own = measure(embed_phase(model, {c, BnStatsMode::own}, "own BN"), "own", "own BN");
  }
  if (choice != PruneBnStats::reestimate) extract(choice == PruneBnStats::parent ? BnStatsMode::parent : BnStatsMode::own);
  if (c < 1.0 && (choice == PruneBnStats::reestimate || evaluate)) {
    Progress reestimation(options.console, label + "BN re-estimation", options.reestimate_batches, "batches");
    reestimate_bn_stats(model, c, options.reestimate_batches, restarting_reestimation_batches(*data), &reestimation);
    reestimation.finish();
    if (choice == PruneBnStats::reestimate) {
      extract(BnStatsMode::own);
      r.reestimate_batches = options.reestimate_batches;
    } else {
      reestimated = measure(embed_phase(model, {c, BnStatsMode::own}, "re-estimated BN"), "re-estimated", "re-estimated BN");
    }
  }
  if (evaluate) {
    if (c < 1.0 && choice != PruneBnStats::parent)
      parent_stats = measure(embed_phase(model, {c, BnStatsMode::parent}, "parent BN"), "parent", "parent BN");
    // The exported variant is measured on the extracted model itself: the file's model, not the masked one.
    r.subnet.model->eval();
    PruneVariant exported =
        measure(embed_phase(*r.subnet.model, {1.0}, "extracted subnetwork"), r.bn_stats, "extracted subnetwork");
    if (r.bn_stats == "own") own = exported;
    else if (r.bn_stats == "re-estimated") reestimated = exported;
    else parent_stats = exported;
    for (auto* v : {&own, &reestimated, &parent_stats})
      if (*v) r.variants.push_back(**v);
  }
  return r;
}

namespace {

std::string thousands(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %%", whole ? 100.0 * double(part) / double(whole) : 0.0);
  return buf;
}

double recall_at_1(const RetrievalResult& r) { return r.recall.empty() ? 0.0 : r.recall[0]; }

}  // namespace

std::string PruneResult::summary() const {
  std::ostringstream os;
  char line[256];
  os << "  BatchNorm statistics: " << bn_stats;
  if (bn_stats == "re-estimated") os << " over " << reestimate_batches << " training batches (exact averages)";
  os << "\n";
  const models::Complexity &s = complexity, &p = parent_complexity;
  os << "  parameters  " << thousands(s.params) << " of " << thousands(p.params) << " (" << percent(s.params, p.params)
     << " of the parent)\n";
  std::snprintf(line, sizeof line, "  MACs        %.3f M of %.3f M (%s of the parent), %lld x %lld input\n", s.macs / 1e6,
                p.macs / 1e6, percent(s.macs, p.macs).c_str(), (long long)s.height, (long long)s.width);
  os << line;
  if (!evaluated) return os.str();
  if (gallery_images > 0)
    os << "evaluation: " << test_images << " queries against a gallery of " << gallery_images
       << " images (cross: subnetwork queries against the parent's gallery)\n";
  else
    os << "evaluation on " << test_images << " test images (cross: subnetwork queries against the parent's gallery)\n";
  std::snprintf(line, sizeof line, "  %-16s %8s %9s %8s %9s %8s\n", "BN statistics", "self mAP", "cross mAP", "self R@1",
                "cross R@1", "accuracy");
  os << line;
  std::snprintf(line, sizeof line, "  %-16s %8.4f %9s %8.4f %9s %8s\n", "parent model", parent_self.map, "-",
                recall_at_1(parent_self), "-", score_str(parent_accuracy).c_str());
  os << line;
  for (const PruneVariant& v : variants) {
    std::snprintf(line, sizeof line, "  %-16s %8.4f %9.4f %8.4f %9.4f %8s\n",
                  (v.bn_stats + (v.exported ? " *" : "")).c_str(), v.self.map, v.cross.map, recall_at_1(v.self),
                  recall_at_1(v.cross), score_str(v.accuracy).c_str());
    os << line;
  }
  os << "  * the statistics the written subnetwork holds (measured on the extracted model)\n";
  return os.str();
}

nlohmann::json PruneResult::to_json() const {
  nlohmann::json j;
  j["capacity"] = capacity;
  j["granularity"] = models::to_string(granularity);
  j["bn_statistics"] = bn_stats;
  if (bn_stats == "re-estimated") j["reestimate_batches"] = reestimate_batches;
  j["params"] = complexity.params;
  j["macs"] = complexity.macs;
  j["parent_params"] = parent_complexity.params;
  j["parent_macs"] = parent_complexity.macs;
  j["image_size"] = {complexity.height, complexity.width};
  if (evaluated) {
    nlohmann::json e;
    e["test_images"] = test_images;
    if (gallery_images > 0) e["gallery_images"] = gallery_images;
    e["parent"] = {{"self", retrieval_json(parent_self)}, {"accuracy", parent_accuracy}};
    for (const PruneVariant& v : variants)
      e["variants"].push_back({{"bn_statistics", v.bn_stats},
                               {"exported", v.exported},
                               {"self", retrieval_json(v.self)},
                               {"cross", retrieval_json(v.cross)},
                               {"accuracy", v.accuracy}});
    j["evaluation"] = e;
  }
  return j;
}

std::string masks_path(const std::string& path) {
  const std::string ext = ".safetensors";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + ".masks" + ext;
  return path + ".masks" + ext;
}

void save_pruned(const std::string& path, const PruneResult& result, const std::string& source_checkpoint) {
  SCPN_CHECK(result.subnet.model, "save_pruned: no subnetwork (prune_model first)");
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  SCPN_CHECK(folder.empty() || std::filesystem::is_directory(folder), "--output: folder '", folder.string(),
             "' does not exist");
  const std::string key = models::capacity_key(result.capacity);
  SafetensorsMetadata meta = {{kPrunedCapacityKey, key},
                              {"granularity", models::to_string(result.granularity)},
                              {"bn_stats", result.bn_stats},
                              {"source", source_checkpoint},
                              {"params", std::to_string(result.complexity.params)},
                              {"macs", std::to_string(result.complexity.macs)},
                              {"parent_params", std::to_string(result.parent_complexity.params)},
                              {"parent_macs", std::to_string(result.parent_complexity.macs)}};
  if (result.bn_stats == "re-estimated") meta["reestimate_batches"] = std::to_string(result.reestimate_batches);
  models::save_model(path, *result.subnet.model, meta);
  std::vector<NamedTensor> masks;
  for (auto& [name, m] : result.subnet.masks) masks.push_back({name, m});
  if (!masks.empty())
    save_safetensors(masks_path(path), masks, {{kPrunedCapacityKey, key}, {"checkpoint", path}, {"source", source_checkpoint}});
}

}  // namespace scpn::train
