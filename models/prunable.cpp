#include "models/prunable.h"

#include <cmath>

#include "engine/ops/batch_norm.h"
#include "engine/ops/masked_weight.h"
#include "engine/ops/select.h"
#include "engine/ops/sparse_channel.h"

namespace scpn::models {

PrunableConv2d::PrunableConv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride,
                               int64_t padding, bool has_score, Granularity granularity, Generator& gen,
                               DType dtype)
    : granularity_(granularity),
      options_{.stride = stride, .padding = padding},
      weight_(register_parameter("weight", kaiming_uniform({out_channels, in_channels, kernel, kernel},
                                                           std::sqrt(5.0), gen, dtype))) {
  if (!has_score) return;
  if (granularity == Granularity::weight) {
    score_ = &register_parameter("score", kaiming_uniform(weight_.shape(), std::sqrt(5.0), gen, dtype));
  } else {
    // One score per filter, drawn with the bound kaiming-uniform(a = √5) gives the weight: 1/√fan_in.
    double bound = 1.0 / std::sqrt(double(fan_in(weight_.shape())));
    score_ = &register_parameter("score", uniform({out_channels}, -bound, bound, gen, dtype));
  }
}

Tensor PrunableConv2d::mask(double capacity) const {
  check_capacity("PrunableConv2d::mask", capacity);
  SCPN_CHECK(pruned(), "PrunableConv2d::mask: this convolution has no score (it is never pruned)");
  auto it = prepared_.find(capacity_key(capacity));
  if (it != prepared_.end()) return it->second;
  return capacity_masks(score_->detach(), {capacity})[0];
}

void PrunableConv2d::prepare_masks(const std::vector<double>& capacities) {
  clear_masks();
  if (!pruned() || capacities.empty()) return;
  std::vector<Tensor> masks = capacity_masks(score_->detach(), capacities);
  for (size_t i = 0; i < capacities.size(); ++i) {
    const std::string key = capacity_key(capacities[i]);
    prepared_[key] = masks[i];
    if (granularity_ == Granularity::channel) prepared_kept_[key] = kept_index_from_mask(masks[i]);
  }
}

void PrunableConv2d::clear_masks() {
  prepared_.clear();
  prepared_kept_.clear();
}

Tensor PrunableConv2d::kept_filters(double capacity) const {
  SCPN_CHECK(granularity_ == Granularity::channel, "PrunableConv2d::kept_filters: needs channel granularity");
  auto it = prepared_kept_.find(capacity_key(capacity));
  Tensor kept = it != prepared_kept_.end() ? it->second : kept_index_from_mask(mask(capacity));
  // The rank rule keeps at least one filter of finite scores; none kept means the scores are not finite.
  SCPN_CHECK(kept.size(0) > 0, "capacity ", capacity_key(capacity), " keeps none of the ", out_channels(),
             " filters of a ", in_channels(), "->", out_channels(), " convolution: are its scores NaN?");
  return kept;
}

Tensor PrunableConv2d::forward_compact(const Tensor& x, const Tensor& kept_inputs, const Tensor& kept) const {
  Tensor w = weight_;
  if (kept.defined()) {
    SCPN_CHECK(pruned() && granularity_ == Granularity::channel,
               "PrunableConv2d::forward_compact: kept filters need a channel-scored convolution");
    w = gather_filters(weight_, *score_, kept);
  } else if (pruned() && granularity_ == Granularity::weight) {
    throw Error("PrunableConv2d::forward_compact: a weight-granularity convolution has no compact form");
  }
  if (kept_inputs.defined()) w = gather_channels(w, 1, kept_inputs);
  return conv2d(x, w, Tensor(), options_);
}

Tensor PrunableConv2d::forward_with_mask(const Tensor& x, const Tensor& m) const {
  return conv2d(x, masked_weight(weight_, *score_, m), Tensor(), options_);
}

Tensor PrunableConv2d::forward(const Tensor& x, double capacity) const {
  if (!pruned()) return conv2d(x, weight_, Tensor(), options_);
  return forward_with_mask(x, mask(capacity));
}

PrunableBatchNorm::PrunableBatchNorm(int64_t channels, const std::vector<double>& capacities, DType dtype)
    : weight_(register_parameter("weight", ones({channels}, dtype))),
      bias_(register_parameter("bias", zeros({channels}, dtype))),
      running_mean_(register_buffer("running_mean", zeros({channels}, dtype))),
      running_var_(register_buffer("running_var", ones({channels}, dtype))),
      dtype_(dtype) {
  for (double c : capacities) add_capacity(c);
}

void PrunableBatchNorm::add_capacity(double capacity) {
  check_capacity("PrunableBatchNorm::add_capacity", capacity);
  std::string key = capacity_key(capacity);
  if (capacity == 1.0 || per_capacity_.count(key)) return;
  Device d = running_mean_.device();
  Tensor& mean = register_buffer("running_mean@" + key, zeros({channels()}, dtype_, d));
  Tensor& var = register_buffer("running_var@" + key, ones({channels()}, dtype_, d));
  per_capacity_[key] = {&mean, &var};
}

bool PrunableBatchNorm::has_capacity(double capacity) const {
  return capacity == 1.0 || per_capacity_.count(capacity_key(capacity)) != 0;
}

std::pair<Tensor, Tensor> PrunableBatchNorm::running_stats(double capacity, BnStatsMode mode) const {
  if (capacity == 1.0 || mode == BnStatsMode::parent) return {running_mean_, running_var_};
  auto it = per_capacity_.find(capacity_key(capacity));
  if (it == per_capacity_.end())
    throw Error(cat("BatchNorm: no running statistics for capacity ", capacity_key(capacity),
                    " (it was not trained); re-estimate them for this capacity, or evaluate with bn_stats=parent"));
  return {*it->second.first, *it->second.second};
}

BatchNormOptions PrunableBatchNorm::options(const ForwardContext& ctx) const {
  BatchNormOptions opt;
  opt.training = is_training();
  if (ctx.bn_momentum_override > 0) opt.momentum = ctx.bn_momentum_override;
  opt.sync_group = ctx.sync_bn;
  return opt;
}

// Training: batch statistics; the running statistics moved are the parent's for the parent, the
// capacity's own under bn_stats=own when it has them, and none otherwise (the reference's behaviour).
std::pair<Tensor, Tensor> PrunableBatchNorm::stats_to_update(const ForwardContext& ctx) const {
  if (ctx.capacity == 1.0) return {running_mean_, running_var_};
  auto it = per_capacity_.find(capacity_key(ctx.capacity));
  if (ctx.bn_stats == BnStatsMode::own && it != per_capacity_.end()) return {*it->second.first, *it->second.second};
  return {};
}

Tensor PrunableBatchNorm::forward(const Tensor& x, const ForwardContext& ctx, bool relu) const {
  BatchNormOptions opt = options(ctx);
  opt.relu = relu;
  auto [mean, var] = opt.training ? stats_to_update(ctx) : running_stats(ctx.capacity, ctx.bn_stats);
  return batch_norm(x, weight_, bias_, mean, var, opt);
}

Tensor PrunableBatchNorm::forward_compact(const Tensor& x, const Tensor& kept, const ForwardContext& ctx,
                                          bool relu) const {
  if (!kept.defined()) return forward(x, ctx, relu);
  BatchNormOptions opt = options(ctx);
  opt.relu = relu;
  auto [mean, var] = opt.training ? stats_to_update(ctx) : running_stats(ctx.capacity, ctx.bn_stats);
  Tensor kept_mean, kept_var;
  if (mean.defined()) {
    kept_mean = gather_channels(mean, 0, kept);
    kept_var = gather_channels(var, 0, kept);
  }
  Tensor y = batch_norm(x, gather_channels(weight_, 0, kept), gather_channels(bias_, 0, kept), kept_mean, kept_var, opt);
  if (opt.training && mean.defined()) {
    // A pruned channel of the masked path is all zeros: batch mean and variance 0, so its running values
    // shrink by (1 − momentum).
    scatter_channels_(mean, 0, kept, kept_mean, 1.0 - opt.momentum);
    scatter_channels_(var, 0, kept, kept_var, 1.0 - opt.momentum);
  }
  return y;
}

}  // namespace scpn::models
