// The prunable building blocks (SCPN_METHOD.md §2, §3, §5): a masked convolution, a BatchNorm with
// statistics per capacity, and the ForwardContext that says which subnetwork a forward computes.
#pragma once
#include <map>
#include <string>

#include "engine/nn/module.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/conv2d.h"
#include "models/config.h"

namespace scpn::dist {
class Communicator;
}

namespace scpn::models {

enum class BnStatsMode {
  own,     // ours: each trained capacity normalises (eval) and updates (training) its own statistics
  parent,  // the reference: subnetworks use the parent's statistics in eval and update nothing in training
};

// Which subnetwork a forward computes and how BatchNorm treats its statistics.
struct ForwardContext {
  double capacity = 1.0;  // 1 = the dense parent
  BnStatsMode bn_stats = BnStatsMode::own;
  // Re-estimation of a capacity's statistics: > 0 replaces BatchNorm's momentum (1/(t+1) at batch t gives
  // exact averages over the batches seen).
  double bn_momentum_override = 0.0;
  // Channel granularity: compute a subnetwork on compact copies of the filters it keeps (sparse-channel
  // compute, docs/sparse_channel.md); false: on masked dense tensors, the reference path. Same outputs,
  // gradients and statistics to float rounding; the compact path does about the subnetwork's share of
  // the work. Weight granularity is always masked.
  bool compact_channels = true;
  // Data-parallel training with synchronised batch norm: training-mode statistics over every rank's batch.
  dist::Communicator* sync_bn = nullptr;
};

// A bias-free convolution holding its weight W and, when it is pruned, a learnable score S; at capacity c it
// convolves with W_eff = M(c) ⊙ W, M from the per-layer top-c rule on |S|, with straight-through gradients
// to S. Score shape: W's (weight granularity) or [K] (channel granularity).
class PrunableConv2d : public nn::Module {
 public:
  // has_score = false: a plain convolution that is never masked (the residual stream in channel granularity).
  PrunableConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                 bool has_score, Granularity granularity, Generator& gen, DType dtype = DType::f32);

  // The 0/1 mask at capacity c (all ones at c = 1): from the prepared masks when prepare_masks() covered c,
  // otherwise ranked now from the current scores. Shape of the score.
  Tensor mask(double capacity) const;
  // Ranks |S| once and keeps the masks of all these capacities until clear_masks() (the SCPN step calls
  // this once per step, after which scores change).
  void prepare_masks(const std::vector<double>& capacities);
  void clear_masks();

  Tensor forward(const Tensor& x, double capacity) const;
  // Forward with an explicit mask (the block reuses a channel mask for the following BatchNorm).
  Tensor forward_with_mask(const Tensor& x, const Tensor& mask) const;

  // Channel granularity: the filters kept at capacity c as an i32 index on the weight's device (from the
  // prepared masks when prepare_masks() covered c).
  Tensor kept_filters(double capacity) const;
  // The compact convolution: only the input channels `kept_inputs` lists (undefined: all) and the filters
  // `kept` lists (undefined: all; otherwise with the straight-through gradient to the score). x holds
  // exactly those input channels; the output holds those filters.
  Tensor forward_compact(const Tensor& x, const Tensor& kept_inputs, const Tensor& kept) const;

  bool pruned() const { return score_ != nullptr; }
  Granularity granularity() const { return granularity_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& score() const { return *score_; }  // only when pruned()
  int64_t in_channels() const { return weight_.size(1); }
  int64_t out_channels() const { return weight_.size(0); }
  int64_t kernel() const { return weight_.size(2); }
  const Conv2dOptions& options() const { return options_; }

 private:
  Granularity granularity_;
  Conv2dOptions options_;
  Tensor& weight_;
  Tensor* score_ = nullptr;
  std::map<std::string, Tensor> prepared_;
  std::map<std::string, Tensor> prepared_kept_;  // channel granularity: kept_filters() of the prepared masks
};

// BatchNorm whose affine γ, β are shared by every capacity while running statistics are kept per trained
// capacity ("running_mean@0.80"), besides the parent's ("running_mean").
class PrunableBatchNorm : public nn::Module {
 public:
  PrunableBatchNorm(int64_t channels, const std::vector<double>& capacities, DType dtype = DType::f32);
  // relu: max(·, 0) of the result, fused into the normalisation where the device can (engine/ops/batch_norm.h).
  Tensor forward(const Tensor& x, const ForwardContext& ctx, bool relu = false) const;
  // BatchNorm of the channels `kept` lists (undefined: all, = forward): x holds those channels; γ, β and
  // the statistics are gathered. A training forward that moves running statistics writes the kept ones
  // back and decays the others by (1 − momentum), as the masked path's all-zero channels would.
  Tensor forward_compact(const Tensor& x, const Tensor& kept, const ForwardContext& ctx, bool relu = false) const;

  // Registers (zeroed mean, unit variance) statistics for a capacity that has none yet.
  void add_capacity(double capacity);
  bool has_capacity(double capacity) const;  // 1.0 always
  // The running statistics a forward at `capacity` would use in eval mode under `mode`.
  std::pair<Tensor, Tensor> running_stats(double capacity, BnStatsMode mode) const;
  int64_t channels() const { return weight_.size(0); }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor& weight_;
  Tensor& bias_;
  Tensor& running_mean_;
  Tensor& running_var_;
  // The running statistics a training forward at ctx moves (both undefined: none).
  std::pair<Tensor, Tensor> stats_to_update(const ForwardContext& ctx) const;
  BatchNormOptions options(const ForwardContext& ctx) const;

  std::map<std::string, std::pair<Tensor*, Tensor*>> per_capacity_;  // capacity_key → (mean, var)
  DType dtype_;
};

}  // namespace scpn::models
