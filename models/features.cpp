// Retrieval features (see features.h): forward in eval mode batch by batch, L2-normalise, gather on the CPU.
#include "models/features.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/ops/l2_normalize.h"
#include "models/checkpoint.h"

namespace scpn::models {

std::string bn_capacities_str(const ResNet& model) {
  std::string out;
  for (double c : checkpoint_config(model).bn_capacities) out += (out.empty() ? "" : ", ") + capacity_key(c);
  return out.empty() ? "none" : out;
}

Tensor extract_features(const ResNet& model, const Tensor& images, const ForwardContext& ctx, int64_t batch_size,
                        const std::function<void(int64_t)>& on_batch) {
  SCPN_CHECK(!model.is_training(),
             "extract_features: the model is in training mode; call eval() first so BatchNorm uses running statistics");
  SCPN_CHECK(batch_size >= 1, "extract_features: batch size ", batch_size, " must be >= 1");
  check_capacity("extract_features", ctx.capacity);
  const ResNetConfig& config = model.config();
  SCPN_CHECK(images.dim() == 4, "extract_features: images ", shape_str(images.shape()), " must be [N, C, H, W]");
  SCPN_CHECK(images.size(1) == config.in_channels, "extract_features: images ", shape_str(images.shape()), " have ",
             images.size(1), " channels, the model expects ", config.in_channels);
  SCPN_CHECK(is_floating(images.dtype()), "extract_features: images have dtype ", dtype_name(images.dtype()),
             ", a float dtype is expected");
  if (ctx.bn_stats == BnStatsMode::own && ctx.capacity < 1.0 && !model.batch_norms().empty())
    SCPN_CHECK(model.batch_norms().front().second->has_capacity(ctx.capacity),
               "extract_features: the model has no BatchNorm statistics for capacity ", capacity_key(ctx.capacity),
               " (it has: ", bn_capacities_str(model), "); use bn_stats=parent or re-estimate them");

  // A copy, not a reference: named_parameters() returns a temporary list.
  const Tensor first = model.named_parameters().front().second;
  const DType dtype = first.dtype();
  const Device device = first.device();
  const int64_t n = images.size(0);
  Tensor features = Tensor::empty({n, config.feature_dim}, dtype);
  NoGradGuard no_grad;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    Tensor batch = images.slice(begin, end);
    if (batch.dtype() != dtype) batch = batch.to(dtype);
    if (batch.device() != device) batch = batch.to(device);
    Tensor y = l2_normalize(model.forward(batch, ctx).feature);
    features.slice(begin, end).copy_(y);
    if (on_batch) on_batch(end);
  }
  return features;
}

}  // namespace scpn::models
