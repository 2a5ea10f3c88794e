// The train_scpn job end to end on a tiny Fashion-MNIST subset: the same seed gives the same run, a run
// resumed after N steps equals an uninterrupted one bit for bit, the run folder holds what it should, and
// bad configs or missing data are rejected with their messages.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/devices.h"
#include "engine/safetensors.h"
#include "train/trainer.h"
#include "tests/support/skip.h"

using namespace scpn;
using namespace scpn::train;
namespace fs = std::filesystem;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist";

TrainConfig tiny(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"model.base_width=2", "model.feature_dim=8", "data.train_limit=96", "data.test_limit=40",
                                "train.batch_size=16", "train.epochs=2", "train.capacities=[0.5,0.25]",
                                "eval.capacities=[1.0,0.5,0.3]", "eval.bn_reestimate_batches=2", "output.log_every=1",
                                "output.dir=" + dir, "device=cpu"};  // the CPU path, also on a GPU machine
  o.insert(o.end(), extra.begin(), extra.end());
  return parse_config("", o);
}

std::vector<std::vector<double>> weights(const Trainer& t) {
  std::vector<std::vector<double>> out;
  for (auto& [name, p] : t.model().state()) out.push_back(p.to_vector());
  return out;
}

}  // namespace

TEST_CASE("same seed, same run; resume after N steps equals the uninterrupted run bit for bit") {
  if (test::skip_without_fashion_mnist()) return;
  std::string root = (fs::temp_directory_path() / "scpn_test_trainer").string();
  fs::remove_all(root);
  TrainerOptions quiet{.quiet = true, .evaluate = false};

  Trainer full(tiny(root + "/full"), quiet);
  TrainSummary s_full = full.run();
  CHECK(s_full.steps == 12);
  Trainer again(tiny(root + "/again"), quiet);
  again.run();
  CHECK(weights(full) == weights(again));

  // Stop after 5 steps (mid-epoch), then resume to the end.
  Trainer first(tiny(root + "/resumed", {"train.steps=5"}), quiet);
  CHECK(first.run().steps == 5);
  TrainerOptions resume = quiet;
  resume.resume = true;
  Trainer second(tiny(root + "/resumed"), resume);
  CHECK(second.run().steps == 12);
  CHECK(weights(second) == weights(full));

  // A changed training key cannot resume.
  CHECK_THROWS_WITH_AS(Trainer(tiny(root + "/resumed", {"train.lr=0.2"}), resume),
                       doctest::Contains("cannot resume: train.lr was 0.1 in the run, now 0.2"), Error);

  for (const char* f : {"config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "final.safetensors"})
    CHECK_MESSAGE(fs::exists(root + "/full/" + f), f);
  std::ifstream metrics(root + "/full/metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(metrics, l);) ++lines;
  CHECK(lines == 12 + 2);  // one per step (log_every=1) and one per epoch
}

TEST_CASE("the final evaluation reports every capacity, re-estimating the untrained ones") {
  if (test::skip_without_fashion_mnist()) return;
  std::string dir = (fs::temp_directory_path() / "scpn_test_trainer_eval").string();
  fs::remove_all(dir);
  Trainer t(tiny(dir, {"train.epochs=1"}), TrainerOptions{.quiet = true});
  TrainSummary s = t.run();
  REQUIRE(s.report.rows.size() == 3);
  CHECK(s.report.rows[0].bn_source == "parent");
  CHECK(s.report.rows[1].bn_source == "own");
  CHECK(s.report.rows[2].bn_source == "re-estimated");
  for (auto& r : s.report.rows) {
    CHECK(r.self.map > 0);
    CHECK(r.self.map <= 1);
    CHECK(r.cross.queries == 40);
  }
  CHECK(s.report.matrix.map.size() == 3);
  CHECK(s.report.matrix.map[0][0] == doctest::Approx(s.report.rows[0].self.map));
  CHECK(fs::exists(dir + "/report.json"));
  CHECK(fs::exists(dir + "/report.txt"));
}

TEST_CASE("missing data and impossible settings are rejected before training") {
  CHECK_THROWS_WITH_AS(Trainer(tiny("/tmp/scpn_bad", {"data.root=/nonexistent/fmnist"}), TrainerOptions{.quiet = true}),
                       doctest::Contains("/nonexistent/fmnist"), Error);
  // A device past the last one (cuda:0 on a machine without a GPU) is refused with the reason.
  const int missing = cuda_device_count();
  const std::string expected =
      missing == 0 ? cat("device: cuda:0 requested, but no CUDA device is usable (", no_cuda_device_reason(), ")")
                   : cat("device: cuda:", missing, " requested, but only ", missing, " CUDA device(s) are visible (cuda:0 to cuda:",
                         missing - 1, ")");
  CHECK_THROWS_WITH_AS(Trainer(tiny("/tmp/scpn_bad", {cat("device=cuda:", missing)}), TrainerOptions{.quiet = true}),
                       expected.c_str(), Error);
  if (fs::exists(std::string(kFashion) + "/train-images-idx3-ubyte.gz")) {
    CHECK_THROWS_WITH_AS(Trainer(tiny("/tmp/scpn_bad", {"data.train_limit=8"}), TrainerOptions{.quiet = true}),
                         cat("data.root ", kFashion, ": the training set has 8 images, fewer than train.batch_size = 16").c_str(),
                         Error);
    TrainerOptions resume{.resume = true, .quiet = true};
    fs::remove_all("/tmp/scpn_bad_resume");
    CHECK_THROWS_WITH_AS(Trainer(tiny("/tmp/scpn_bad_resume"), resume),
                         "--resume: no checkpoint at /tmp/scpn_bad_resume/last.safetensors", Error);
  }
}

TEST_CASE("resume: a key newer than the checkpoint counts as its default; a changed one is refused") {
  if (test::skip_without_fashion_mnist()) return;
  const std::string dir = (fs::temp_directory_path() / "scpn_test_trainer_newer_key").string();
  fs::remove_all(dir);
  TrainerOptions quiet{.quiet = true, .evaluate = false};
  Trainer(tiny(dir, {"train.steps=3"}), quiet).run();
  const std::string last = dir + "/last.safetensors";
  // Rewrites the checkpoint's saved config as an older (or different) run would have written it.
  auto rewrite_saved_config = [&](const std::function<void(nlohmann::json&)>& edit) {
    SafetensorsFile file = read_safetensors(last);
    nlohmann::json saved = nlohmann::json::parse(file.metadata.at("train_config"));
    edit(saved);
    file.metadata["train_config"] = saved.dump();
    save_safetensors(last, file.tensors, file.metadata);
  };
  TrainerOptions resume = quiet;
  resume.resume = true;

  rewrite_saved_config([](nlohmann::json& j) { j["data.held_out_classes"] = 0.5; });
  CHECK_THROWS_WITH_AS(Trainer(tiny(dir), resume),
                       doctest::Contains("cannot resume: data.held_out_classes was 0.5 in the run, now 0.3"), Error);
  rewrite_saved_config([](nlohmann::json& j) { j.erase("data.held_out_classes"); });  // a checkpoint from before the key
  Trainer resumed(tiny(dir), resume);
  CHECK(resumed.run().steps == 12);
}
