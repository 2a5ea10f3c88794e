// The model, optimizer and step options a TrainConfig describes, in one place: train_scpn and the step
// benchmark (tools/bench_step) build exactly the same training step from the same keys.
#pragma once
#include <memory>

#include "engine/optim/sgd.h"
#include "models/resnet.h"
#include "train/config.h"
#include "train/scpn/step.h"

namespace scpn::train {

// The network of model.* for images of `in_channels` channels and `num_classes` classes, with a
// BatchNorm statistics set per trained capacity when train.bn_stats is `own`.
models::ResNetConfig model_config(const TrainConfig& cfg, int64_t in_channels, int64_t num_classes);

// SGD with train.lr, train.momentum and train.weight_decay, the projector's and classifier's biases
// exempt from weight decay. Build it after the model has moved to its device (it keeps parameter handles).
std::unique_ptr<SGD> make_optimizer(const TrainConfig& cfg, const models::ResNet& model);

// train.mode, train.capacities, clip norms, BatchNorm statistics mode, integration.* and friends.
StepOptions step_options(const TrainConfig& cfg);

}  // namespace scpn::train
