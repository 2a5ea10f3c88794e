// train_scpn's device path (train/trainer.cpp, train/eval/evaluate.cpp) on cuda:0: the whole job follows
// the CPU run from the same config in parity mode, and a GPU checkpoint resumes on the CPU. Skips without
// a CUDA device.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cuda/runtime.h"
#include "models/checkpoint.h"
#include "models/extract.h"
#include "models/features.h"
#include "tests/support/parity.h"
#include "tests/support/check.h"
#include "tests/train/data_fixtures.h"
#include "train/trainer.h"

using namespace scpn;
using namespace scpn::train;

namespace {

// Ten classes of 28x28 images in Fashion-MNIST's IDX format, so the suite needs no data set installed:
// class c is a bright band at rows 2c..2c+3 over hashed noise, so a few steps already separate them and
// the evaluation has something to rank.
void write_synthetic_fashion(const test::TempDir& dir, uint32_t train_count, uint32_t test_count) {
  auto write_split = [&](const std::string& split, uint32_t count, uint32_t salt) {
    std::vector<unsigned char> pixels, labels;
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t label = i % 10;
      labels.push_back(static_cast<unsigned char>(label));
      for (uint32_t p = 0; p < 28 * 28; ++p) {
        uint32_t h = (i * 2654435761u) ^ (p * 2246822519u) ^ salt;
        h ^= h >> 15;
        h *= 2654435761u;
        const uint32_t row = p / 28;
        const bool band = row >= 2 * label && row < 2 * label + 4;
        pixels.push_back(static_cast<unsigned char>((band ? 170u : 0u) + (h >> 24) % 60u));
      }
    }
    test::write_idx(dir.file(split + "-images-idx3-ubyte.gz"), 3, {count, 28, 28}, pixels);
    test::write_idx(dir.file(split + "-labels-idx1-ubyte.gz"), 1, {count}, labels);
  };
  write_split("train", train_count, 0x1234);
  write_split("t10k", test_count, 0x9876);
}

// 64 training images in batches of 16: 4 steps per epoch, 2 epochs. `chain` integration: f32 rounding
// cannot flip which partner decides a row (see tests/gpu/test_training_step.cpp).
TrainConfig config(const std::string& data, const std::string& out, const std::string& device,
                   std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"model.base_width=4", "model.feature_dim=8", "data.root=" + data, "data.train_limit=64",
                                "data.test_limit=40", "data.workers=1", "train.batch_size=16", "train.epochs=2",
                                "train.capacities=[0.5,0.25]", "integration.semantics=chain",
                                "eval.capacities=[1.0,0.5,0.3]", "eval.bn_reestimate_batches=2", "eval.recall_k=[1]",
                                "output.log_every=1", "output.dir=" + out, "device=" + device};
  o.insert(o.end(), extra.begin(), extra.end());
  return parse_config("", o);
}

// parent_loss of every step line of a run's metrics.jsonl, in order.
std::vector<double> parent_losses(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("parent_loss")) out.push_back(j.at("parent_loss").get<double>());
  }
  return out;
}

double worst_relative(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), 1e-30));
  return worst;
}

// Every parameter and buffer of `actual` against the same-named one of `expected` (which may hold more:
// BatchNorm statistics the final evaluation re-estimated); returns the largest absolute difference.
double compare_states(const Trainer& actual, const Trainer& expected, double atol, double rtol) {
  std::map<std::string, Tensor> by_name;
  for (const auto& [name, t] : expected.model().state()) by_name[name] = t;
  double worst = 0;
  for (const auto& [name, t] : actual.model().state()) {
    CAPTURE(name);
    auto it = by_name.find(name);
    REQUIRE(it != by_name.end());
    const test::CloseReport r = test::compare(t.to(kCPU), it->second.to(kCPU), atol, rtol);
    INFO(r.message);
    CHECK(r.ok);
    worst = std::max(worst, r.max_abs);
  }
  return worst;
}

}  // namespace

TEST_CASE("train_scpn on cuda:0 follows the CPU run: losses, weights, evaluation; a GPU checkpoint resumes on the CPU") {
  SCPN_REQUIRE_CUDA();
  cuda::ParityModeGuard parity;
  test::TempDir dir("gpu_trainer");
  write_synthetic_fashion(dir, 64, 40);  // the IDX files at the top; the run folders beside them
  const std::string root = dir.str();
  const TrainerOptions quiet{.quiet = true};

  Trainer cpu(config(root, root + "/cpu", "cpu"), quiet);
  Trainer gpu(config(root, root + "/gpu", "cuda:0"), quiet);
  for (const auto& [name, t] : gpu.model().state()) {
    CAPTURE(name);
    CHECK(t.device() == cuda_device(0));
  }
  const TrainSummary sc = cpu.run(), sg = gpu.run();
  CHECK(sg.steps == 8);
  CHECK(sc.steps == 8);

  // Steps: the first loss is a forward from identical weights; later ones follow SGD from there.
  const std::vector<double> lc = parent_losses(root + "/cpu"), lg = parent_losses(root + "/gpu");
  REQUIRE(lc.size() == 8);
  REQUIRE(lg.size() == 8);
  CHECK(lg[0] == doctest::Approx(lc[0]).epsilon(1e-4));
  const double worst_loss = worst_relative(lg, lc);
  CHECK(worst_loss < 5e-3);
  const double worst_weight = compare_states(gpu, cpu, 2e-3, 2e-2);

  // The evaluation ran on the device (features gathered on the host): same rows, close figures.
  REQUIRE(sg.report.rows.size() == 3);
  REQUIRE(sc.report.rows.size() == 3);
  double worst_map = 0;
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(sc.report.rows[i].capacity);
    CHECK(sg.report.rows[i].bn_source == sc.report.rows[i].bn_source);
    CHECK(sg.report.rows[i].cross.queries == 40);
    worst_map = std::max(worst_map, std::fabs(sg.report.rows[i].self.map - sc.report.rows[i].self.map));
    worst_map = std::max(worst_map, std::fabs(sg.report.rows[i].cross.map - sc.report.rows[i].cross.map));
  }
  CHECK(worst_map < 0.02);

  // Post-training pruning of the GPU-trained model on the GPU (what tools/prune and tools/extract_features
  // do with --device cuda:0) against the same model loaded on the CPU: the subnetwork at an untrained
  // capacity with the parent's statistics, and its features.
  double worst_feature = 0;
  {
    models::save_model(root + "/gpu_model.safetensors", gpu.model());
    std::unique_ptr<models::ResNet> on_cpu = models::load_model(root + "/gpu_model.safetensors");
    on_cpu->eval();
    Generator gen(3);
    const Tensor images = normal({6, 1, 28, 28}, 0, 1, gen);
    models::ExtractedModel cut_gpu = models::extract_subnetwork(gpu.model(), 0.4, models::BnStatsMode::parent);
    models::ExtractedModel cut_cpu = models::extract_subnetwork(*on_cpu, 0.4, models::BnStatsMode::parent);
    REQUIRE(cut_gpu.masks.size() == cut_cpu.masks.size());
    for (size_t i = 0; i < cut_cpu.masks.size(); ++i) {
      CAPTURE(cut_cpu.masks[i].first);
      CHECK(cut_gpu.masks[i].second.to_vector() == cut_cpu.masks[i].second.to_vector());
    }
    cut_gpu.model->eval();
    cut_cpu.model->eval();
    const Tensor fg = models::extract_features(*cut_gpu.model, images, {1.0}, 4);
    const Tensor fc = models::extract_features(*cut_cpu.model, images, {1.0}, 4);
    CHECK(fg.device() == kCPU);
    const test::CloseReport r = test::compare(fg, fc, 1e-4, 1e-3);
    INFO(r.message);
    CHECK(r.ok);
    worst_feature = r.max_abs;
  }

  // A run stopped on the GPU after 3 steps (mid-epoch) and resumed on the CPU ends where the CPU run ends.
  {
    Trainer first(config(root, root + "/moved", "cuda:0", {"train.steps=3"}), TrainerOptions{.quiet = true, .evaluate = false});
    CHECK(first.run().steps == 3);
  }
  TrainerOptions resume{.resume = true, .quiet = true, .evaluate = false};
  Trainer second(config(root, root + "/moved", "cpu"), resume);
  CHECK(second.run().steps == 8);
  const double worst_moved = compare_states(second, cpu, 2e-3, 2e-2);

  std::printf("parity train_scpn cuda:0 vs cpu (8 steps, parity mode): parent loss step 1 cpu %.8g gpu %.8g, worst loss "
              "rel. error %.3g, worst weight abs. error %.3g, worst mAP difference %.3g, pruned subnetwork (0.4) features worst abs. error %.3g; resumed on the CPU from a GPU "
              "checkpoint: worst weight abs. error %.3g\n",
              lc[0], lg[0], worst_loss, worst_weight, worst_map, worst_feature, worst_moved);
}
