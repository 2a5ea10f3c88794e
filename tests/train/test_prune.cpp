// Post-training pruning and the capacity sweep on tiny runs trained here (Fashion-MNIST subset): pruned
// checkpoints compute what the masked model computes and load standalone; the sweep's rows and reports.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "models/features.h"
#include "tests/support/check.h"
#include "tests/train/data_fixtures.h"
#include "train/eval/evaluate.h"
#include "train/eval/model_source.h"
#include "train/eval/prune.h"
#include "train/eval/sweep.h"
#include "train/report/sweep_report.h"
#include "train/report/training_curves.h"
#include "train/trainer.h"
#include "tests/support/skip.h"

using namespace scpn;
using namespace scpn::train;
namespace fs = std::filesystem;

namespace {

bool have_fashion() { return !test::skip_without_fashion_mnist(); }

std::string temp_root() {
  static std::string root = [] {
    std::string r = (fs::temp_directory_path() / cat("scpn_test_prune_", ::getpid())).string();
    fs::remove_all(r);
    fs::create_directories(r);
    return r;
  }();
  return root;
}

// A tiny run per granularity, trained once per process: capacities 0.5 and 0.25 keep their own statistics.
std::string tiny_run(const std::string& granularity) {
  static std::map<std::string, std::string> runs;
  if (auto it = runs.find(granularity); it != runs.end()) return it->second;
  std::string dir = temp_root() + "/run_" + granularity;
  TrainConfig cfg = parse_config("", {"model.base_width=2", "model.feature_dim=8", "data.train_limit=96",
                                      "data.test_limit=40", "train.batch_size=16", "train.epochs=1",
                                      "train.capacities=[0.5,0.25]", "eval.bn_reestimate_batches=2",
                                      "model.granularity=" + granularity, "output.dir=" + dir, "device=cpu"});
  TrainerOptions options;
  options.quiet = true;
  options.evaluate = false;
  Trainer(cfg, options).run();
  return runs[granularity] = dir;
}

struct Loaded {
  ModelSource source;
  std::unique_ptr<models::ResNet> model;
  OpenedData data;
};

Loaded load_run(const std::string& dir) {
  Loaded l;
  l.source = resolve_model_source(dir, "", "");
  l.model = load_source_model(l.source);
  l.data = open_data(l.source, *l.model, true, true);
  return l;
}

// Features of the test images from a freshly loaded copy of the run's model at (capacity, mode), after an
// optional re-estimation with the same batches the pruning used.
Tensor masked_features(const std::string& dir, double capacity, models::BnStatsMode mode, int64_t reestimate = 0) {
  Loaded l = load_run(dir);
  if (reestimate > 0)
    reestimate_bn_stats(*l.model, capacity, reestimate, restarting_reestimation_batches(*l.data.data));
  l.model->eval();
  return models::extract_features(*l.model, l.data.data->test.query_images.images(), {capacity, mode}, 64);
}

Tensor tensor_named(const models::ResNet& model, const std::string& name) {
  for (auto& [n, t] : model.state())
    if (n == name) return t;
  throw Error("no tensor " + name);
}

Tensor pruned_features(const std::string& path, const Tensor& images) {
  std::unique_ptr<models::ResNet> m = models::load_model(path);
  m->eval();
  return models::extract_features(*m, images, {1.0}, 64);
}

}  // namespace

TEST_CASE("a pruned checkpoint computes what the masked model computes at its capacity, in both granularities") {
  if (!have_fashion()) return;
  for (std::string granularity : {"weight", "channel"}) {
    CAPTURE(granularity);
    std::string dir = tiny_run(granularity);
    Loaded l = load_run(dir);
    const Tensor images = l.data.data->test.query_images.images();

    // Trained capacity: its own statistics, by default.
    PruneOptions opt;
    opt.capacity = 0.5;
    opt.reestimate_batches = 2;
    opt.image_size = 28;
    PruneResult r = prune_model(*l.model, opt, l.data.data.get());
    CHECK(r.bn_stats == "own");
    std::string out = dir + "/pruned_050.safetensors";
    save_pruned(out, r, l.source.checkpoint);
    CHECK_CLOSE(pruned_features(out, images), masked_features(dir, 0.5, models::BnStatsMode::own), 1e-5, 1e-4);

    // The side-by-side evaluation: own (exported), re-estimated, parent.
    REQUIRE(r.variants.size() == 3);
    CHECK(r.variants[0].bn_stats == "own");
    CHECK(r.variants[0].exported);
    CHECK(r.variants[1].bn_stats == "re-estimated");
    CHECK(r.variants[2].bn_stats == "parent");
    CHECK(r.variants[0].cross.queries == 40);
    CHECK(r.parent_self.map > 0);
    CHECK(r.complexity.macs < r.parent_complexity.macs);
    CHECK(r.complexity.params < r.parent_complexity.params);

    // The file: a standalone model with the pruning's metadata, and its masks beside it.
    SafetensorsHeader h = read_safetensors_header(out);
    CHECK(h.metadata.at("pruned_capacity") == "0.50");
    CHECK(h.metadata.at("bn_stats") == "own");
    CHECK(h.metadata.at("macs") == std::to_string(r.complexity.macs));
    std::unique_ptr<models::ResNet> pruned = models::load_model(out);
    CHECK(pruned->config().bn_capacities.empty());
    SafetensorsFile masks = read_safetensors(masks_path(out));
    int64_t scored = 0;
    for (auto& [name, conv] : l.model->convs()) {
      if (!conv->pruned()) continue;
      ++scored;
      const Tensor& m = masks.at(name + ".mask");
      if (granularity == "channel") {
        // The compact conv keeps exactly the masked-in filters.
        double kept = 0;
        for (double v : m.to_vector()) kept += v;
        for (auto& [pname, pconv] : pruned->convs())
          if (pname == name) CHECK(pconv->out_channels() == int64_t(kept));
      } else {
        // Masked weights: zero where the mask is 0, the source's weight elsewhere.
        std::vector<double> w = tensor_named(*l.model, name + ".weight").to_vector(), mv = m.to_vector();
        std::vector<double> pw = tensor_named(*pruned, name + ".weight").to_vector();
        REQUIRE(pw.size() == w.size());
        bool ok = true;
        for (size_t i = 0; i < w.size(); ++i) ok &= pw[i] == (mv[i] != 0 ? w[i] : 0.0);
        CHECK(ok);
      }
    }
    CHECK(int64_t(masks.tensors.size()) == scored);
    CHECK_THROWS_WITH_AS(load_source_model({out, l.source.config_file, l.source.config}),
                         doctest::Contains("is already a pruned subnetwork (capacity 0.50)"), Error);

    // eval's path for the written subnetwork: loaded as it is and swept at capacity 1 alone, against the
    // full model's gallery, it gives the figures the pruning measured on the extracted model.
    ModelSource pruned_source{out, l.source.config_file, l.source.config};
    CHECK(pruned_capacity(out) == "0.50");
    CHECK(pruned_capacity(l.source.checkpoint).empty());
    std::unique_ptr<models::ResNet> as_source = load_source_model(pruned_source, /*accept_pruned=*/true);
    SweepOptions sweep;
    sweep.capacities = {1.0};
    sweep.parent_bn_too = false;
    SweepResult swept = run_sweep(*as_source, *l.data.data, sweep, l.model.get(), l.source.checkpoint);
    REQUIRE(swept.report.rows.size() == 1);
    CHECK(swept.report.rows[0].self.map == doctest::Approx(r.variants[0].self.map).epsilon(1e-6));
    REQUIRE(swept.gallery);
    CHECK(swept.gallery->cross[0].map == doctest::Approx(r.variants[0].cross.map).epsilon(1e-6));
    // A compact model's own count is the subnetwork's; masked weights count as the dense layers they fill.
    if (granularity == "channel") CHECK(swept.macs[0] == r.complexity.macs);
  }
}

TEST_CASE("untrained capacities get re-estimated statistics; the parent's on request; c = 1 is the parent") {
  if (!have_fashion()) return;
  std::string dir = tiny_run("weight");
  Loaded l = load_run(dir);
  const Tensor images = l.data.data->test.query_images.images();
  PruneOptions opt;
  opt.capacity = 0.35;
  opt.reestimate_batches = 2;
  opt.image_size = 28;
  PruneResult r = prune_model(*l.model, opt, l.data.data.get());
  CHECK(r.bn_stats == "re-estimated");
  REQUIRE(r.variants.size() == 2);  // no own statistics to show
  CHECK(r.variants[0].bn_stats == "re-estimated");
  CHECK(r.variants[0].exported);
  save_pruned(dir + "/pruned_035.safetensors", r, l.source.checkpoint);
  CHECK_CLOSE(pruned_features(dir + "/pruned_035.safetensors", images),
              masked_features(dir, 0.35, models::BnStatsMode::own, 2), 1e-5, 1e-4);

  Loaded l2 = load_run(dir);
  opt.bn_stats = PruneBnStats::parent;
  opt.evaluate = false;
  PruneResult p = prune_model(*l2.model, opt, nullptr, "no data");  // the parent's statistics need no data
  CHECK(p.bn_stats == "parent");
  CHECK(!p.evaluated);
  save_pruned(dir + "/pruned_035p.safetensors", p, l2.source.checkpoint);
  CHECK_CLOSE(pruned_features(dir + "/pruned_035p.safetensors", images),
              masked_features(dir, 0.35, models::BnStatsMode::parent), 1e-5, 1e-4);

  Loaded l3 = load_run(dir);
  opt = PruneOptions{};
  opt.capacity = 1.0;
  opt.image_size = 28;
  PruneResult full = prune_model(*l3.model, opt, l3.data.data.get());
  CHECK(full.bn_stats == "parent");
  REQUIRE(full.variants.size() == 1);
  CHECK(full.variants[0].cross.map == doctest::Approx(full.parent_self.map).epsilon(1e-6));
  CHECK(full.complexity.macs == full.parent_complexity.macs);
}

TEST_CASE("a weight-granularity pruned checkpoint starts train_scpn --init (configs without per-capacity statistics)") {
  if (!have_fashion()) return;
  std::string dir = tiny_run("weight");
  Loaded l = load_run(dir);
  PruneOptions opt;
  opt.capacity = 0.5;
  opt.evaluate = false;
  opt.image_size = 28;
  std::string out = dir + "/pruned_init.safetensors";
  save_pruned(out, prune_model(*l.model, opt, nullptr), l.source.checkpoint);
  TrainConfig cfg = l.source.config;
  cfg.bn_stats = models::BnStatsMode::parent;
  cfg.output_dir = temp_root() + "/from_pruned";
  TrainerOptions options;
  options.init_checkpoint = out;
  options.quiet = true;
  options.evaluate = false;
  Trainer t(cfg, options);
  std::unique_ptr<models::ResNet> pruned = models::load_model(out);
  CHECK(tensor_named(t.model(), "layer1.0.conv1.weight").to_vector() ==
        tensor_named(*pruned, "layer1.0.conv1.weight").to_vector());
}

TEST_CASE("the sweep: rows for every capacity, the matrix, the other gallery and the report folder") {
  if (!have_fashion()) return;
  std::string dir = tiny_run("weight");
  Loaded l = load_run(dir);
  std::unique_ptr<models::ResNet> other = models::load_model(l.source.checkpoint);  // the same parent: a known answer
  other->eval();
  SweepOptions so;
  so.capacities = {0.35, 0.5};
  so.trained = trained_capacities(l.source.config);
  so.reestimate_batches = 2;
  SweepResult s = run_sweep(*l.model, *l.data.data, so, other.get(), l.source.checkpoint);
  REQUIRE(s.report.rows.size() == 3);
  CHECK(s.report.rows[0].capacity == 1.0);
  CHECK(s.report.rows[1].capacity == 0.5);
  CHECK(s.report.rows[1].bn_source == "own");
  CHECK(s.report.rows[2].bn_source == "re-estimated");
  CHECK(s.is_trained(0.5));
  CHECK(!s.is_trained(0.35));
  REQUIRE(s.report.matrix.map.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(s.report.matrix.map[i][i] == doctest::Approx(s.report.rows[i].self.map));
    CHECK(s.report.matrix.map[i][0] == doctest::Approx(s.report.rows[i].cross.map));
    // The other gallery is this very parent, so its cross-test is the cross-test.
    CHECK(s.gallery->cross[i].map == doctest::Approx(s.report.rows[i].cross.map));
  }
  CHECK(s.macs[0] == s.parent_macs);
  CHECK(s.macs[2] < s.macs[1]);
  CHECK(s.macs[1] < s.macs[0]);

  // prune --capacity 0.35 re-estimates over the same batches as the sweep's row.
  Loaded l2 = load_run(dir);
  PruneOptions opt;
  opt.capacity = 0.35;
  opt.reestimate_batches = 2;
  opt.image_size = 28;
  PruneResult p = prune_model(*l2.model, opt, l2.data.data.get());
  CHECK(p.variants[0].cross.map == doctest::Approx(s.report.rows[2].cross.map).epsilon(1e-6));

  std::string folder = temp_root() + "/report";
  write_sweep_report(folder, s, {"tiny report", l.source.checkpoint, l.source.config_file, l.source.config.to_json(),
                                 training_metrics_beside(l.source.config_file)});
  for (const char* f : {"eval.json", "eval.txt", "index.html", "compat_map.svg", "compat_map.png", "compat_r1.svg",
                        "compat_r1.png", "map_vs_capacity.svg", "map_vs_capacity.png", "map_vs_macs.svg", "map_vs_macs.png",
                        "training_curves.svg", "training_curves.png"})
    CHECK_MESSAGE(fs::exists(folder + "/" + f), f);
  std::ifstream json_in(folder + "/eval.json");
  nlohmann::json j = nlohmann::json::parse(json_in);
  CHECK(j["capacities"].size() == 3);
  CHECK(j["capacities"][2]["bn_statistics"] == "re-estimated");
  CHECK(j["config"]["model.base_width"] == 2);
  CHECK(j["other_gallery"]["checkpoint"] == l.source.checkpoint);
  std::ifstream html_in(folder + "/index.html");
  std::string html((std::istreambuf_iterator<char>(html_in)), std::istreambuf_iterator<char>());
  for (const char* part : {"<img src=\"compat_map.svg\"", "<img src=\"map_vs_capacity.svg\"", "<img src=\"map_vs_macs.svg\"",
                           "<img src=\"training_curves.svg\"", "model.base_width", "self mAP", "tiny report"})
    CHECK_MESSAGE(html.find(part) != std::string::npos, part);
  std::ifstream svg_in(folder + "/compat_map.svg");
  std::string svg((std::istreambuf_iterator<char>(svg_in)), std::istreambuf_iterator<char>());
  size_t cells = 0;
  for (size_t at = svg.find("class=\"cell\""); at != std::string::npos; at = svg.find("class=\"cell\"", at + 1)) ++cells;
  CHECK(cells == 9);
}

TEST_CASE("bad inputs are refused with their messages") {
  std::string root = temp_root();
  CHECK_THROWS_WITH_AS(resolve_model_source("", "", ""),
                       "no model given: pass --run DIR (a train_scpn run folder), or --checkpoint CKPT with --config "
                       "CONFIG.json",
                       Error);
  CHECK_THROWS_WITH_AS(resolve_model_source(root + "/nowhere", "", ""), doctest::Contains("/nowhere: no such folder"), Error);
  fs::create_directories(root + "/unfinished");
  CHECK_THROWS_WITH_AS(resolve_model_source(root + "/unfinished", "", ""),
                       doctest::Contains("/unfinished: no final.safetensors (the run has not finished"), Error);
  const std::string missing = "--checkpoint " + root + "/missing.safetensors: no such file";
  CHECK_THROWS_WITH_AS(resolve_model_source("", root + "/missing.safetensors", ""), missing.c_str(), Error);
  CHECK_THROWS_WITH_AS(parse_prune_bn_stats("mean"), "--bn-stats: 'mean' is not one of own, reestimate, parent", Error);
  CHECK_THROWS_WITH_AS(parse_capacity_list("--capacities", "0.5,abc"),
                       "--capacities: 'abc' is not a number (expected a comma-separated list such as 0.1,0.35,1)", Error);
  CHECK_THROWS_WITH_AS(parse_capacity_list("--capacities", "0.5,0"), "--capacities: capacity 0 is outside (0, 1]", Error);
  CHECK(parse_capacity_list("--capacities", "0.1, 0.35,1") == std::vector<double>{0.1, 0.35, 1.0});
  if (!have_fashion()) return;

  std::string dir = tiny_run("weight");
  Loaded l = load_run(dir);
  CHECK_THROWS_WITH_AS(resolve_model_source("", l.source.checkpoint, ""),
                       "--checkpoint needs --config CONFIG.json (the run's config.json: it names the dataset and the "
                       "image size), or --run DIR",
                       Error);
  PruneOptions opt;
  for (double c : {0.0, 1.5, -0.2}) {
    opt.capacity = c;
    const std::string outside = cat("--capacity: capacity ", c, " is outside (0, 1]");
    CHECK_THROWS_WITH_AS(prune_model(*l.model, opt, l.data.data.get()), outside.c_str(), Error);
  }
  opt.capacity = 0.35;
  opt.bn_stats = PruneBnStats::own;
  opt.source_name = l.source.checkpoint;
  const std::string no_own = "--bn-stats own: " + l.source.checkpoint +
                             " has no BatchNorm statistics for capacity 0.35 (it has: 0.50, 0.25); use --bn-stats "
                             "reestimate or parent";
  CHECK_THROWS_WITH_AS(prune_model(*l.model, opt, l.data.data.get()), no_own.c_str(), Error);
  opt.capacity = 1.0;
  opt.bn_stats = PruneBnStats::reestimate;
  CHECK_THROWS_WITH_AS(prune_model(*l.model, opt, l.data.data.get()),
                       "--bn-stats reestimate: capacity 1 is the parent, whose statistics are trained, not re-estimated",
                       Error);
  opt.capacity = 0.35;
  opt.reestimate_batches = 0;
  CHECK_THROWS_WITH_AS(prune_model(*l.model, opt, l.data.data.get()), "--reestimate-batches: 0 must be >= 1", Error);

  // A checkpoint of another architecture.
  models::ResNetConfig wider = l.model->config();
  wider.base_width = 4;
  Generator gen(1);
  models::save_model(root + "/wider.safetensors", models::ResNet(wider, gen));
  const std::string mismatch = root + "/wider.safetensors does not match " + l.source.config_file +
                               ": model.base_width is 4 in the checkpoint, 2 in the config";
  CHECK_THROWS_WITH_AS(load_source_model(resolve_model_source("", root + "/wider.safetensors", l.source.config_file)),
                       mismatch.c_str(), Error);
  // A gallery model whose features cannot be compared.
  models::ResNetConfig other_dim = l.model->config();
  other_dim.feature_dim = 5;
  models::ResNet other(other_dim, gen);
  other.eval();
  CHECK_THROWS_WITH_AS(run_sweep(*l.model, *l.data.data, SweepOptions{}, &other, "other.safetensors"),
                       "--gallery-checkpoint other.safetensors: its features have 5 dimensions, the evaluated model's 8",
                       Error);

  // An empty dataset: required, it is an error; otherwise an untrained capacity cannot be re-estimated.
  test::TempDir empty("prune_empty");
  for (const char* split : {"train", "t10k"}) {
    test::write_idx(empty.file(cat(split, "-images-idx3-ubyte.gz")), 3, {0, 28, 28}, {});
    test::write_idx(empty.file(cat(split, "-labels-idx1-ubyte.gz")), 1, {0}, {});
  }
  ModelSource empty_source = l.source;
  empty_source.config.data_root = empty.str();
  CHECK_THROWS_WITH_AS(open_data(empty_source, *l.model, true, true), doctest::Contains("contains no images"), Error);
  OpenedData none = open_data(empty_source, *l.model, true, false);
  CHECK(!none.data);
  CHECK(none.error.find("contains no images") != std::string::npos);
  opt = PruneOptions{};
  opt.capacity = 0.35;
  const std::string no_data = "capacity 0.35 has no BatchNorm statistics in the checkpoint (it has: 0.50, 0.25), and "
                              "re-estimating them needs the training data: " + none.error +
                              "; pass --bn-stats parent to use the parent's statistics";
  CHECK_THROWS_WITH_AS(prune_model(*l.model, opt, none.data.get(), none.error), no_data.c_str(), Error);
}
