// train_scpn end to end on small synthetic copies of the paper's retrieval datasets, written by the test:
// In-shop (queries ranked against a gallery split) and GLDv2 (held-out landmarks querying each other).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "models/features.h"
#include "tests/train/data_fixtures.h"
#include "train/eval/prune.h"
#include "train/eval/sweep.h"
#include "train/experiment_data.h"
#include "train/trainer.h"

using namespace scpn;
using namespace scpn::train;

namespace {

// Image k of item (or landmark) i, 24x24 RGB: a colour and a stripe pattern of the item's own under strong
// hashed noise, so that items can be told apart, but not perfectly.
std::vector<unsigned char> item_image(int item, int k) {
  std::vector<unsigned char> px(24 * 24 * 3);
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 24; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t p = size_t((y * 24 + x) * 3 + c);
        uint32_t h = uint32_t(item * 7919 + k * 104729) ^ uint32_t(p * 2654435761u);
        h ^= h >> 13;
        const bool stripe = ((x * (item % 3 + 1) + y * (item / 3 + 1)) / 4) % 2 == 0;
        const int base = 90 + ((item + c) % 3) * 15;
        px[p] = static_cast<unsigned char>(std::min(255, base + (stripe ? 25 : 0) + int(h % 90u)));
      }
  return px;
}

// In-shop: train items 0..5 (4 images each), evaluation items 6..9 (2 queries and 3 gallery images each).
void write_synthetic_inshop(const test::TempDir& dir, const std::string& partition_name, const std::string& image_dir) {
  std::string lines;
  int64_t count = 0;
  auto add = [&](int item, int k, const char* status) {
    const std::string rel = cat("img/item_", item, "/", k, ".png");
    test::write_png(dir.file(image_dir + rel), 24, 24, 3, item_image(item, k));
    lines += cat(rel, " id_", 1000 + item, " ", status, "\n");
    ++count;
  };
  for (int item = 0; item < 6; ++item)
    for (int k = 0; k < 4; ++k) add(item, k, "train");
  for (int item = 6; item < 10; ++item) {
    for (int k = 0; k < 2; ++k) add(item, k, "query");
    for (int k = 2; k < 5; ++k) add(item, k, "gallery");
  }
  test::write_text(dir.file(partition_name), cat(count, "\nimage_name item_id evaluation_status\n", lines));
}

// GLDv2: landmarks 0..9 (ids 500 + 7i, out of order in the csv), 4 images each, at root/a/b/c/<id>.jpg.
void write_synthetic_gldv2(const test::TempDir& dir) {
  std::string csv = "id,url,landmark_id\n";
  for (int k = 0; k < 4; ++k)
    for (int item = 9; item >= 0; --item) {
      const std::string id = cat("f", item, "e", k, "0a1b2c3d");
      test::write_jpeg(dir.file(cat(id[0], "/", id[1], "/", id[2], "/", id, ".jpg")), 24, 24, 3, item_image(item, k), 95);
      csv += cat(id, ",http://example.org/", id, ".jpg,", 500 + 7 * item, "\n");
    }
  test::write_text(dir.file("train.csv"), csv);
}

TrainConfig inshop_config(const std::string& root, const std::string& out) {
  return parse_config("", {"data.dataset=inshop", "data.root=" + root, "data.image_size=16", "data.augment=false",
                           "data.workers=1", "model.base_width=4", "model.feature_dim=8", "train.batch_size=8",
                           "train.epochs=12", "train.capacities=[0.5]", "eval.capacities=[1.0,0.5,0.3]",
                           "eval.bn_reestimate_batches=2", "eval.recall_k=[1,2]", "output.log_every=1",
                           "output.dir=" + out, "device=cpu"});
}

// Mean over queries of average precision against the gallery by cosine similarity, computed naively.
// With same_set, query i is gallery item i and is left out of its own ranking.
double brute_force_map(const Tensor& query, const std::vector<int64_t>& query_labels, const Tensor& gallery,
                       const std::vector<int64_t>& gallery_labels, bool same_set = false) {
  const std::vector<double> q = query.to_vector(), g = gallery.to_vector();
  const size_t d = size_t(query.size(1)), nq = query_labels.size(), ng = gallery_labels.size();
  double sum = 0;
  for (size_t i = 0; i < nq; ++i) {
    std::vector<std::pair<double, size_t>> ranked;
    for (size_t j = 0; j < ng; ++j) {
      if (same_set && j == i) continue;
      double s = 0;
      for (size_t k = 0; k < d; ++k) s += q[i * d + k] * g[j * d + k];
      ranked.emplace_back(-s, j);
    }
    std::sort(ranked.begin(), ranked.end());
    double hits = 0, ap = 0, relevant = 0;
    for (const auto& [neg_sim, j] : ranked) relevant += gallery_labels[j] == query_labels[i];
    for (size_t r = 0; r < ranked.size(); ++r)
      if (gallery_labels[ranked[r].second] == query_labels[i]) ap += ++hits / double(r + 1);
    sum += ap / relevant;
  }
  return sum / double(nq);
}

}  // namespace

// In-shop's query items are not training classes, so there is no accuracy to report for them.
TEST_CASE("inshop: train split trains, queries are ranked against the gallery, no accuracy") {
  test::TempDir dir("inshop_run");
  write_synthetic_inshop(dir, "list_eval_partition.txt", "");
  const std::string root = dir.str(), out = dir.str() + "/run";
  Trainer trainer(inshop_config(root, out), TrainerOptions{.quiet = true});
  CHECK(trainer.model().config().num_classes == 6);  // the train items
  const TrainSummary s = trainer.run();
  CHECK(s.steps == 36);  // 24 train images in batches of 8, 12 epochs (the BatchNorm running statistics settle)

  REQUIRE(s.report.rows.size() == 3);
  for (const CapacityReport& r : s.report.rows) {
    CAPTURE(r.capacity);
    CHECK(r.self.queries == 8);
    CHECK(r.self.evaluated == 8);  // every query has 3 relevant gallery images
    CHECK(r.cross.queries == 8);
    CHECK(std::isnan(r.accuracy));
    CHECK(r.self.map > 0);
    CHECK(r.self.map <= 1);
  }
  CHECK(s.report.matrix.map[0][0] == doctest::Approx(s.report.rows[0].self.map));

  // The parent's row against an independent computation from the model's own features.
  ExperimentData data(inshop_config(root, out));
  data.load_test_set();
  REQUIRE(!data.test.one_set());
  CHECK(data.test.queries() == 8);
  CHECK(data.test.gallery_size() == 12);
  // Every row (the parent, a trained and an untrained capacity, their own statistics) against an
  // independent computation from the model's features of the query and gallery splits.
  for (const CapacityReport& r : s.report.rows) {
    CAPTURE(r.capacity);
    const models::ForwardContext ctx{r.capacity, models::BnStatsMode::own};
    const Tensor fq = models::extract_features(trainer.model(), data.test.query_images.images(), ctx, 5);
    const Tensor fg = models::extract_features(trainer.model(), data.test.gallery_images.images(), ctx, 5);
    const double expected = brute_force_map(fq, data.test.query_labels, fg, data.test.gallery_labels);
    CHECK(r.self.map == doctest::Approx(expected).epsilon(1e-9));
    MESSAGE("capacity ", r.capacity, ": query->gallery mAP ", r.self.map, " (brute force ", expected, ")");
  }

  // The epoch lines carry Recall@1 instead of an accuracy; the report prints '-' for the accuracy.
  std::ifstream metrics(out + "/metrics.jsonl");
  int epoch_lines = 0;
  for (std::string line; std::getline(metrics, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (!j.contains("mean_parent_loss")) continue;
    ++epoch_lines;
    CHECK(j.contains("parent_test_recall@1"));
    CHECK(!j.contains("parent_test_accuracy"));
  }
  CHECK(epoch_lines == 12);
  std::ifstream report_txt(out + "/report.txt");
  std::string header, first_row;
  std::getline(report_txt, header);
  std::getline(report_txt, first_row);
  CAPTURE(first_row);
  CHECK(first_row.size() > 2);
  CHECK(first_row.compare(first_row.size() - 2, 2, " -") == 0);  // the parent's row ends with its accuracy
  CHECK(first_row.find("nan") == std::string::npos);
}

TEST_CASE("inshop: the eval sweep and the pruning evaluation rank queries against the gallery") {
  test::TempDir dir("inshop_tools");
  write_synthetic_inshop(dir, "list_eval_partition.txt", "");
  const std::string root = dir.str();
  Trainer trainer(inshop_config(root, root + "/run"), TrainerOptions{.quiet = true, .evaluate = false});
  trainer.run();
  std::unique_ptr<models::ResNet> model = models::load_model(root + "/run/final.safetensors");
  model->eval();
  ExperimentData data(inshop_config(root, root + "/run"));
  data.load_test_set();

  SweepOptions so;
  so.capacities = {0.5, 0.3};
  so.trained = {0.5};
  so.reestimate_batches = 2;
  so.recall_k = {1};
  so.image_size = 16;
  const SweepResult sweep = run_sweep(*model, data, so);
  REQUIRE(sweep.report.rows.size() == 3);
  CHECK(sweep.report.rows[0].self.queries == 8);
  CHECK(std::isnan(sweep.report.rows[1].accuracy));
  CHECK(sweep.table().find("nan") == std::string::npos);

  // Over eval.in_memory_limit_mb the test images stream from their files on every pass: same report.
  TrainConfig streaming_cfg = inshop_config(root, root + "/run");
  streaming_cfg.in_memory_limit_mb = 0;
  ExperimentData streaming(streaming_cfg);
  streaming.load_test_set();
  CHECK(data.test.in_memory());
  CHECK(!streaming.test.in_memory());
  CHECK(streaming.test.query_labels == data.test.query_labels);
  CHECK(streaming.test.gallery_labels == data.test.gallery_labels);
  CHECK_THROWS_WITH_AS(streaming.test.query_images.images(),
                       "ImageSet: the images are streamed from their files, not held in memory", Error);
  EvalOptions eo;
  eo.capacities = {1.0, 0.5, 0.3};
  eo.trained_capacities = {0.5};
  eo.bn_reestimate_batches = 2;
  eo.batch_size = 5;  // batches that do not divide the sets
  const EvalReport held = evaluate_model(*model, data.test, eo, data.reestimation_batches());
  const EvalReport streamed = evaluate_model(*model, streaming.test, eo, streaming.reestimation_batches());
  REQUIRE(streamed.rows.size() == held.rows.size());
  for (size_t i = 0; i < held.rows.size(); ++i) {
    CAPTURE(held.rows[i].capacity);
    CHECK(streamed.rows[i].self.map == held.rows[i].self.map);
    CHECK(streamed.rows[i].cross.map == held.rows[i].cross.map);
    CHECK(streamed.rows[i].cross_parent_bn.map == held.rows[i].cross_parent_bn.map);
  }
  CHECK(streamed.matrix.map == held.matrix.map);

  PruneOptions po;
  po.capacity = 0.4;
  po.reestimate_batches = 2;
  po.recall_k = {1};
  po.image_size = 16;
  po.source_name = "final.safetensors";
  const PruneResult pruned = prune_model(*model, po, &data, "");
  CHECK(pruned.evaluated);
  CHECK(pruned.test_images == 8);
  CHECK(pruned.gallery_images == 12);
  CHECK(std::isnan(pruned.parent_accuracy));
  CHECK(pruned.summary().find("8 queries against a gallery of 12 images") != std::string::npos);
  CHECK(pruned.summary().find("nan") == std::string::npos);
}

TEST_CASE("inshop: DeepFashion's release layout is found; a folder without a partition file is refused") {
  test::TempDir dir("inshop_layout");
  write_synthetic_inshop(dir, "Eval/list_eval_partition.txt", "Img/");
  ExperimentData data(inshop_config(dir.str(), dir.str() + "/run"));
  CHECK(data.train_set->size() == 24);
  CHECK(data.test_set->size() == 8);
  CHECK(data.gallery_set->size() == 12);


  test::TempDir empty("inshop_empty");
  const std::string expected = cat("data.root ", empty.str(), ": no In-shop list_eval_partition.txt (looked for ",
                                   empty.str(), "/list_eval_partition.txt and ", empty.str(),
                                   "/Eval/list_eval_partition.txt)");
  CHECK_THROWS_WITH_AS(ExperimentData(inshop_config(empty.str(), empty.str() + "/run")), expected.c_str(), Error);
}

TEST_CASE("gldv2: held-out landmarks never train; their images query each other, with mAP@100 reported") {
  test::TempDir dir("gldv2_run");
  write_synthetic_gldv2(dir);
  const std::string root = dir.str(), out = root + "/run";
  TrainConfig cfg = inshop_config(root, out);
  cfg.dataset = DatasetKind::gldv2;  // the same training settings; held_out_classes 0.3: 3 of the 10 landmarks
  ExperimentData data(cfg);
  CHECK(data.train_set->num_classes() == 7);
  CHECK(data.train_set->size() == 28);
  CHECK(data.test_set->num_classes() == 3);
  CHECK(data.test_set->size() == 12);
  CHECK(!data.gallery_set);
  // No image is in both splits.
  std::set<std::string> train_files, test_files;
  for (int64_t i = 0; i < data.train_set->size(); ++i) train_files.insert(data.train_set->describe(i));
  for (int64_t i = 0; i < data.test_set->size(); ++i) test_files.insert(data.test_set->describe(i));
  CHECK(train_files.size() == 28);
  CHECK(test_files.size() == 12);
  for (const std::string& f : test_files) CHECK(train_files.count(f) == 0);

  Trainer trainer(cfg, TrainerOptions{.quiet = true});
  CHECK(trainer.model().config().num_classes == 7);
  const TrainSummary s = trainer.run();
  CHECK(s.steps == 36);  // 28 images in batches of 8 (drop last): 3 per epoch, 12 epochs
  data.load_test_set();
  REQUIRE(data.test.one_set());
  CHECK(!data.test.has_accuracy());
  REQUIRE(s.report.rows.size() == 3);
  for (const CapacityReport& r : s.report.rows) {
    CAPTURE(r.capacity);
    CHECK(r.self.queries == 12);
    CHECK(r.self.evaluated == 12);
    CHECK(std::isnan(r.accuracy));
    const models::ForwardContext ctx{r.capacity, models::BnStatsMode::own};
    const Tensor f = models::extract_features(trainer.model(), data.test.query_images.images(), ctx, 5);
    const double expected = brute_force_map(f, data.test.query_labels, f, data.test.query_labels, true);
    CHECK(r.self.map == doctest::Approx(expected).epsilon(1e-9));
    // Every landmark has 3 other images, fewer than 100: mAP@100 is the full mAP.
    CHECK(r.self.map_at_cutoff == doctest::Approx(r.self.map).epsilon(1e-12));
    MESSAGE("capacity ", r.capacity, ": held-out landmarks mAP ", r.self.map, " (brute force ", expected, ")");
  }
  std::ifstream report(out + "/report.json");
  const nlohmann::json j = nlohmann::json::parse(report);
  CHECK(j.at("capacities").at(0).at("self").contains("map@100"));
  CHECK(j.at("capacities").at(0).at("accuracy").is_null());
}
