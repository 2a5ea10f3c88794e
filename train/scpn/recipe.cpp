#include "train/scpn/recipe.h"

namespace scpn::train {

models::ResNetConfig model_config(const TrainConfig& cfg, int64_t in_channels, int64_t num_classes) {
  models::ResNetConfig mc = models::ResNetConfig::named(to_string(cfg.arch));
  mc.stem = cfg.stem;
  mc.in_channels = in_channels;
  mc.base_width = cfg.base_width;
  mc.feature_dim = cfg.feature_dim;
  mc.num_classes = num_classes;
  mc.granularity = cfg.granularity;
  if (cfg.bn_stats == models::BnStatsMode::own && cfg.mode != TrainMode::parent) mc.bn_capacities = cfg.capacities;
  return mc;
}

std::unique_ptr<SGD> make_optimizer(const TrainConfig& cfg, const models::ResNet& model) {
  SgdOptions decay{.momentum = cfg.momentum, .weight_decay = cfg.weight_decay};
  SgdOptions no_decay{.momentum = cfg.momentum, .weight_decay = 0};
  return std::make_unique<SGD>(
      std::vector<SgdGroup>{{model.decay_parameters(), decay, 1.0}, {model.no_decay_parameters(), no_decay, 1.0}},
      cfg.lr);
}

StepOptions step_options(const TrainConfig& cfg) {
  StepOptions so;
  so.mode = cfg.mode;
  so.capacities = cfg.mode == TrainMode::parent ? std::vector<double>{} : cfg.capacities;
  so.extra_random_capacities = cfg.extra_random_capacities;
  so.bn_stats = cfg.bn_stats;
  so.task_clip_norm = cfg.task_clip_norm;
  so.clip_norm = cfg.clip_norm;
  so.label_smoothing = cfg.label_smoothing;
  so.compact_subnets = cfg.compact_subnets;
  so.concurrent_passes = cfg.concurrent_passes;
  so.integration = cfg.integration;
  return so;
}

}  // namespace scpn::train
