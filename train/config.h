// train_scpn's typed configuration. Every key is declared once in train/config.cpp's table (name, type,
// default, allowed range, one line of documentation), from which docs/config.md is generated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/ops/grad_integration.h"
#include "models/config.h"
#include "models/prunable.h"
#include "train/data/loader.h"
#include "train/non_finite.h"
#include "train/scpn/step.h"

namespace scpn::train {

// The enumerated choices that have no type elsewhere. Their spellings, the ones config files use, live
// in train/config.cpp's table alone; to_string gives them back.
enum class Arch { resnet18, resnet34, resnet50 };  // the names models::ResNetConfig::named takes
enum class DatasetKind { fashion_mnist, image_folder, inshop, gldv2 };
enum class LrSchedule { multistep, cosine };  // stepped per epoch | per step

const char* to_string(Arch);
const char* to_string(DatasetKind);
const char* to_string(LrSchedule);
const char* to_string(TrainMode);

struct TrainConfig {
  // model
  Arch arch = Arch::resnet18;
  models::Stem stem = models::Stem::small;
  int64_t base_width = 12;
  int64_t feature_dim = 128;
  models::Granularity granularity = models::Granularity::weight;
  bool compact_subnets = true;  // channel granularity: subnetwork passes on compact tensors
  // data
  DatasetKind dataset = DatasetKind::fashion_mnist;
  std::string data_root = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 4800;  // 0 = all
  int64_t test_limit = 2000;
  double held_out_classes = 0.3;  // gldv2: fraction of landmarks kept out of training for retrieval
  int64_t image_size = 28;
  bool augment = true;
  int64_t workers = 2;
  data::BadImagePolicy bad_images = data::BadImagePolicy::fail;
  int64_t max_skipped = 100;
  // training
  TrainMode mode = TrainMode::scpn;
  std::vector<double> capacities = {0.8, 0.6, 0.4, 0.2};
  int64_t extra_random_capacities = 0;
  models::BnStatsMode bn_stats = models::BnStatsMode::own;
  int64_t epochs = 2;
  int64_t steps = 0;  // 0 = epochs × batches per epoch
  int64_t batch_size = 64;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  LrSchedule schedule = LrSchedule::multistep;
  std::vector<int64_t> milestones = {};
  double lr_gamma = 0.1;
  int64_t warmup_steps = 0;
  double task_clip_norm = 100;
  double clip_norm = 100;
  double label_smoothing = 0;
  int64_t concurrent_passes = 0;  // CPU: passes of a step side by side (0 = auto; train/scpn/step.h)
  IntegrationOptions integration;  // the integration.* keys; their defaults are IntegrationOptions'
  uint64_t seed = 42;
  NonFinitePolicy non_finite = NonFinitePolicy::stop;
  int64_t max_skipped_steps = 10;
  // evaluation
  std::vector<double> eval_capacities = {1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1};
  int64_t bn_reestimate_batches = 20;
  int64_t in_memory_limit_mb = 4096;  // test images up to this size stay in host memory; larger ones stream
  bool eval_parent_bn = true;  // also report subnetworks with the parent's statistics
  std::vector<int64_t> recall_k = {1, 2, 4, 8};
  // output
  std::string output_dir = "runs/default";
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;  // steps; 0 = at each epoch end only
  bool save_final = true;
  std::string device = "auto";
  // data-parallel training (docs/distributed.md); used when a launcher starts several processes
  std::string dist_backend = "auto";
  double dist_timeout_s = 300;
  bool dist_sync_bn = true;
  int64_t dist_bucket_mb = 25;
  // debugging and reliability checks (docs/reliability.md)
  bool detect_non_finite = false;
  int64_t inject_nan_step = 0;  // 0 = never
  bool sample_log = false;
  int64_t checkpoint_pause_ms = 0;

  nlohmann::json to_json() const;  // flat {"train.lr": 0.1, ...}
};

// The deepest nesting a config file or a KEY=VALUE value may have: every key is at most "section.key",
// so anything deeper is a mistake, and refusing it while parsing keeps a hostile file from exhausting
// memory or the stack.
inline constexpr int kMaxConfigDepth = 16;

// Defaults ← config file (nested or flat JSON) ← KEY=VALUE overrides (values parsed as JSON when they
// are valid JSON, else taken as strings). Unknown keys, wrong types, out-of-range values and nesting
// deeper than kMaxConfigDepth are rejected before any work: scpn::Error naming the key (and the file).
TrainConfig parse_config(const std::string& config_file, const std::vector<std::string>& overrides);
TrainConfig config_from_json(const nlohmann::json& flat_or_nested, const std::string& source);

// docs/config.md as text (`train_scpn --config-doc`): every key with its type, default and description;
// a test checks that the committed file is current.
std::string config_reference_markdown();

}  // namespace scpn::train
