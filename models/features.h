// Retrieval features of a batch of images at one capacity (SCPN_METHOD.md §6): the projector BatchNorm's
// output, L2-normalised. The core of tools/extract_features; tested by tests/models/test_features.cpp.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/tensor.h"
#include "models/resnet.h"

namespace scpn::models {

// images: [N, C, H, W] with C = the model's in_channels, any float dtype (converted to the model's dtype
// batch by batch), on any device (moved to the model's). The model must be in eval mode (BatchNorm then
// uses running statistics, so the batch size does not change the result). Runs forward at ctx.capacity
// under ctx.bn_stats, batch_size images at a time, without recording autograd.
// Returns [N, D] on the CPU in the model's dtype: y[n] = feature[n] / max(‖feature[n]‖₂, 1e-12).
// Errors: training mode, batch_size < 1, a capacity outside (0, 1], images of another rank or channel count,
// and (bn_stats = own) a capacity below 1 whose BatchNorm statistics the model does not have.
// on_batch (optional) is called after each batch with the number of images done so far, for progress.
Tensor extract_features(const ResNet& model, const Tensor& images, const ForwardContext& ctx = {},
                        int64_t batch_size = 64, const std::function<void(int64_t images_done)>& on_batch = {});

// "0.80, 0.60": the capacities whose own BatchNorm statistics the model has (checkpoint_config's
// bn_capacities), for messages; "none" when there are none.
std::string bn_capacities_str(const ResNet& model);

}  // namespace scpn::models
