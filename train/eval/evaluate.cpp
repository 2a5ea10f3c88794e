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

Embedding embed(const ResNet& model, const ImageSet& images, const ForwardContext& ctx, int64_t batch_size) {
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
  });
  return e;
}

void reestimate_bn_stats(ResNet& model, double capacity, int64_t count, const std::function<Tensor(int64_t)>& next_batch) {
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
  }
  model.eval();
}

SetEmbedding embed_set(const ResNet& model, const RetrievalSet& set, const ForwardContext& ctx, int64_t batch_size) {
  SCPN_CHECK(set.loaded(), "embed_set: the test set is not loaded");
  SetEmbedding e;
  e.query = embed(model, set.query_images, ctx, batch_size);
  e.gallery = set.one_set() ? e.query : embed(model, set.gallery_images, ctx, batch_size);
  return e;
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

  model.eval();
  SetEmbedding parent = embed_set(model, test, {1.0}, options.batch_size);
  std::vector<Tensor> query_features, gallery_features;
  for (double c : options.capacities) {
    models::check_capacity("eval.capacities", c);
    CapacityReport row;
    row.capacity = c;
    row.trained = is_trained(c);
    row.bn_source = c == 1.0 ? "parent" : row.trained ? "own" : "re-estimated";
    if (!row.trained) reestimate_bn_stats(model, c, options.bn_reestimate_batches, next_train_batch);
    model.eval();
    SetEmbedding e = c == 1.0 ? parent : embed_set(model, test, {c, BnStatsMode::own}, options.batch_size);
    row.self = retrieve(test, e, e, ropt);
    row.cross = retrieve(test, e, parent, ropt);
    row.accuracy = set_accuracy(test, e);
    if (options.parent_bn_too && c < 1.0) {
      SetEmbedding p = embed_set(model, test, {c, BnStatsMode::parent}, options.batch_size);
      row.has_parent_bn = true;
      row.cross_parent_bn = retrieve(test, p, parent, ropt);
      row.accuracy_parent_bn = set_accuracy(test, p);
    }
    query_features.push_back(e.query.features);
    gallery_features.push_back(e.gallery.features);
    report.rows.push_back(row);
  }
  report.matrix = compatibility_matrix(options.capacities, query_features, test.query_labels, options.capacities,
                                       gallery_features, test.gallery_label_list(), ropt);
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
