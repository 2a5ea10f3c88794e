#include "train/eval/evaluate.h"

#include <cstdio>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops/l2_normalize.h"
#include "models/config.h"

namespace scpn::train {

using models::BnStatsMode;
using models::ForwardContext;
using models::ResNet;

Embedding embed(const ResNet& model, const ImageSet& images, const ForwardContext& ctx, int64_t batch_size,
                Progress* progress) {
  SCPN_CHECK(!model.is_training(), "embed: the model must be in eval mode");
  NoGradGuard no_grad;
  const Device device = model.named_parameters().front().second.device();
  const int64_t n = images.size();
  Embedding e;
  e.features = Tensor::empty({n, model.config().feature_dim}, DType::f32);
  e.logits = Tensor::empty({n, model.config().num_classes}, DType::f32);
  images.for_each_batch(batch_size, [&](int64_t begin, const Tensor& batch) {
    const int64_t end = begin + batch.size(0);
    SCPN_CHECK(end <= n, "embed: the image set gave more than its ", n, " images");
    models::ResNetOutput out = model.forward(batch.to(device), ctx);
    e.features.slice(begin, end).copy_(l2_normalize(out.feature).to(kCPU));
    e.logits.slice(begin, end).copy_(out.logits.to(kCPU));
    if (progress) progress->advance(batch.size(0));
  });
  return e;
}

void reestimate_bn_stats(ResNet& model, double capacity, int64_t count, const std::function<Tensor(int64_t)>& next_batch,
                         Progress* progress) {
  models::check_capacity("reestimate_bn_stats", capacity);
  SCPN_CHECK(capacity < 1.0, "reestimate_bn_stats: the parent's statistics are trained, not re-estimated");
  model.add_bn_capacity(capacity);
  const Device device = model.named_parameters().front().second.device();
  model.train();
  NoGradGuard no_grad;
  for (int64_t t = 0; t < count; ++t) {
    // Momentum 1/(t+1) turns the running update into the running mean of the batches seen so far.
    ForwardContext ctx{capacity, BnStatsMode::own, 1.0 / double(t + 1)};
    model.forward(next_batch(t).to(device), ctx);
    if (progress) progress->advance();
  }
  model.eval();
}

SetEmbedding embed_set(const ResNet& model, const RetrievalSet& set, const ForwardContext& ctx, int64_t batch_size,
                       Progress* progress) {
  SCPN_CHECK(set.loaded(), "embed_set: the test set is not loaded");
  SetEmbedding e;
  e.query = embed(model, set.query_images, ctx, batch_size, progress);
  e.gallery = set.one_set() ? e.query : embed(model, set.gallery_images, ctx, batch_size, progress);
  return e;
}

int64_t set_images(const RetrievalSet& set) {
  return set.query_images.size() + (set.one_set() ? 0 : set.gallery_images.size());
}

RetrievalResult retrieve(const RetrievalSet& set, const SetEmbedding& queries, const SetEmbedding& gallery,
                         RetrievalOptions options) {
  options.same_set = set.one_set();
  return evaluate_retrieval(queries.query.features, set.query_labels, gallery.gallery.features,
                            set.gallery_label_list(), options);
}

double set_accuracy(const RetrievalSet& set, const SetEmbedding& e) {
  return set.has_accuracy() ? top1_accuracy(e.query.logits, set.query_labels) : std::nan("");
}

EvalReport evaluate_model(ResNet& model, const RetrievalSet& test, const EvalOptions& options,
                          const std::function<Tensor(int64_t)>& next_train_batch) {
  EvalReport report;
  RetrievalOptions ropt;
  ropt.same_set = test.one_set();
  ropt.recall_k = options.recall_k;
  auto is_trained = [&](double c) {
    if (c == 1.0) return true;
    for (double t : options.trained_capacities)
      if (models::capacity_key(t) == models::capacity_key(c)) return true;
    return false;
  };
  ProgressConsole* console = options.console;
  const std::string& label = options.progress_label;
  const int64_t n = int64_t(options.capacities.size()), queries = test.queries(), images = set_images(test);
  Progress sweep(console, label, n, "capacities");

  model.eval();
  SetEmbedding parent;
  {
    Progress features(console, label + ", parent features", images, "images");
    parent = embed_set(model, test, {1.0}, options.batch_size, &features);
    features.finish();
  }
  std::vector<Tensor> query_features, gallery_features;
  for (int64_t i = 0; i < n; ++i) {
    const double c = options.capacities[size_t(i)];
    models::check_capacity("eval.capacities", c);
    const std::string phase = cat(label, " [", i + 1, "/", n, "] capacity ", models::capacity_key(c), ", ");
    CapacityReport row;
    row.capacity = c;
    row.trained = is_trained(c);
    row.bn_source = c == 1.0 ? "parent" : row.trained ? "own" : "re-estimated";
    const bool parent_bn = options.parent_bn_too && c < 1.0;
    models::PreparedMasks masks(model, {c});  // for the re-estimation and both embeddings (guards do not nest)
    if (!row.trained) {
      Progress reestimation(console, phase + "BN re-estimation", options.bn_reestimate_batches, "batches");
      reestimate_bn_stats(model, c, options.bn_reestimate_batches, next_train_batch, &reestimation);
      reestimation.finish();
    }
    model.eval();
    SetEmbedding e = parent, p;
    if (c < 1.0) {
      Progress features(console, phase + "features", images * (parent_bn ? 2 : 1), "images");
      e = embed_set(model, test, {c, BnStatsMode::own}, options.batch_size, &features);
      if (parent_bn) p = embed_set(model, test, {c, BnStatsMode::parent}, options.batch_size, &features);
      features.finish();
    }
    Progress ranking(console, phase + "ranking", queries * (parent_bn ? 3 : 2), "queries");
    RetrievalOptions ranked = ropt;
    ranked.progress = &ranking;
    row.self = retrieve(test, e, e, ranked);
    row.cross = retrieve(test, e, parent, ranked);
    row.accuracy = set_accuracy(test, e);
    if (parent_bn) {
      row.has_parent_bn = true;
      row.cross_parent_bn = retrieve(test, p, parent, ranked);
      row.accuracy_parent_bn = set_accuracy(test, p);
    }
    ranking.finish();
    query_features.push_back(e.query.features);
    gallery_features.push_back(e.gallery.features);
    report.rows.push_back(row);
    sweep.advance();
  }
  Progress matrix(console, label + ", compatibility matrix", n * n * queries, "queries");
  RetrievalOptions mopt = ropt;
  mopt.progress = &matrix;
  report.matrix = compatibility_matrix(options.capacities, query_features, test.query_labels, options.capacities,
                                       gallery_features, test.gallery_label_list(), mopt);
  matrix.finish();
  sweep.finish();
  if (options.keep_features) report.features = std::move(query_features);
  return report;
}

nlohmann::json retrieval_json(const RetrievalResult& r) {
  nlohmann::json j;
  j["map"] = r.map;
  j["map@" + std::to_string(r.map_cutoff)] = r.map_at_cutoff;
  for (size_t i = 0; i < r.recall_k.size(); ++i) j["recall@" + std::to_string(r.recall_k[i])] = r.recall[i];
  j["queries"] = r.queries;
  j["queries_without_relevant"] = r.no_relevant;
  return j;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j;
  for (auto& r : rows) {
    nlohmann::json row;
    row["capacity"] = r.capacity;
    row["trained"] = r.trained;
    row["bn_statistics"] = r.bn_source;
    row["self"] = retrieval_json(r.self);
    row["cross"] = retrieval_json(r.cross);
    row["accuracy"] = r.accuracy;
    if (r.has_parent_bn) {
      row["parent_bn"] = {{"cross", retrieval_json(r.cross_parent_bn)}, {"accuracy", r.accuracy_parent_bn}};
    }
    j["capacities"].push_back(row);
  }
  j["compatibility"] = {{"query_capacities", matrix.query_capacities},
                        {"gallery_capacities", matrix.gallery_capacities},
                        {"map", matrix.map},
                        {"recall@1", matrix.recall_at_1}};
  return j;
}

std::string EvalReport::table() const {
  std::ostringstream os;
  char line[256];
  bool parent_bn = false;
  for (auto& r : rows) parent_bn |= r.has_parent_bn;
  std::snprintf(line, sizeof line, "%-8s %-8s %-12s %8s %9s %8s %9s %8s", "capacity", "trained", "BN stats", "self mAP",
                "cross mAP", "self R@1", "cross R@1", "accuracy");
  os << line << (parent_bn ? "   | parent BN: cross mAP  accuracy" : "") << "\n";
  for (auto& r : rows) {
    std::snprintf(line, sizeof line, "%-8s %-8s %-12s %8.4f %9.4f %8.4f %9.4f %8s", models::capacity_key(r.capacity).c_str(),
                  r.trained ? "yes" : "no", r.bn_source.c_str(), r.self.map, r.cross.map,
                  r.self.recall.empty() ? 0.0 : r.self.recall[0], r.cross.recall.empty() ? 0.0 : r.cross.recall[0],
                  score_str(r.accuracy).c_str());
    os << line;
    if (r.has_parent_bn) {
      std::snprintf(line, sizeof line, "   |            %9.4f  %8s", r.cross_parent_bn.map, score_str(r.accuracy_parent_bn).c_str());
      os << line;
    }
    os << "\n";
  }
  os << "\ncompatibility matrix (mAP; rows: query capacity, columns: gallery capacity)\n        ";
  for (double g : matrix.gallery_capacities) {
    std::snprintf(line, sizeof line, " %6s", models::capacity_key(g).c_str());
    os << line;
  }
  os << "\n";
  for (size_t i = 0; i < matrix.query_capacities.size(); ++i) {
    std::snprintf(line, sizeof line, "%-8s", models::capacity_key(matrix.query_capacities[i]).c_str());
    os << line;
    for (double v : matrix.map[i]) {
      std::snprintf(line, sizeof line, " %6.3f", v);
      os << line;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace scpn::train
