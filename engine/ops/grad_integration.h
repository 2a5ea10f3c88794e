// The conflict-aware gradient integration's front end (SCPN_METHOD.md §4 step 3): from the K per-task
// gradient slots of the prunable parameters to each parameter's .grad, through the grad_integration kernels.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/autograd.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "kernels/grad_integration.h"

namespace scpn {

enum class IntegrationGranularity : uint8_t {
  filter,  // a 4-D tensor is viewed as rows = output filters (the reference's PROJ_BY_KERNEL); others: one row
  tensor,  // one row = the whole tensor, whatever its rank
};

struct IntegrationOptions {
  ConflictSemantics semantics = kDefaultConflictSemantics;
  TaskWeighting weighting = kDefaultTaskWeighting;
  double gamma = kDefaultIntegrationGamma;
  IntegrationGranularity granularity = IntegrationGranularity::filter;
  // true: every tensor uses the order π = 0, 1, …, K−1 (for checks against an external implementation);
  // false: one seeded random permutation per tensor.
  bool fixed_order = false;
};

struct IntegrationStats {
  int64_t task_rows = 0;       // Σ over tensors of K · rows: the (task, row) pairs examined
  int64_t projected_rows = 0;  // those where a conflict changed the task's gradient
  // [tensors × K], row-major: each tensor's weights wᵢ (1/K everywhere with weighting `none`).
  std::vector<double> weights;
  // [tensors × K]: the order π used for each tensor.
  std::vector<int32_t> orders;
};

// For each parameter P (index p) with task gradients gᵢ = task_grads[i].get(P), i = 0..K−1 (task 0 =
// the parent), writes P.grad = K · Σᵢ wᵢ hᵢ, where
//   - rows: output filters when P is 4-D and granularity is `filter`, else one row = the whole tensor;
//   - π: one permutation of 0..K−1 per tensor (drawn as draw_task_order does, parameters in list order),
//     or 0..K−1 when fixed_order;
//   - hᵢ: gᵢ with each conflicting row projected (dᵣ = ⟨gᵢ[r], gⱼ[r]⟩ < 0, j ≠ i, taken in the order π):
//       last:  hᵢ[r] = gᵢ[r] − dᵣ/(‖gⱼ[r]‖² + 1e-8)·gⱼ[r] from the original gᵢ[r]; the last such j decides;
//       chain: the same step applied cumulatively to the current hᵢ[r], its dot recomputed (PCGrad);
//   - wᵢ: cosine: aᵢ = ((1 + cos(hᵢ, gᵢ))/2)^γ over the whole tensor, wᵢ = aᵢ/(Σa + 1e-8); none: 1/K.
// No conflicts → the plain sum of the task gradients: exactly with `none`, and K/(K + 1e-8)·Σᵢ gᵢ with
// `cosine` (every cosine is 1), i.e. up to a relative 1e-8/K.
// .grad is overwritten in place when it already has P's shape, dtype and device (a flat gradient arena
// stays in use), else replaced by a new tensor. Every task must hold a gradient of P's shape, dtype and
// device; errors name the parameter's index and shape and the task. K = task_grads.size(), 1..16.
// The generator advances by philox_uniform_blocks(K) blocks per parameter unless fixed_order.
IntegrationStats integrate_gradients(const std::vector<Tensor>& params, const std::vector<GradientSlot>& task_grads,
                                     const IntegrationOptions& options, Generator& gen);

// A uniformly random permutation of 0..K−1 from the Philox stream: Fisher–Yates with the words of the
// next philox_uniform_blocks(K) blocks at gen.offset (word t = uniform element t), swapping position
// i = K−1..1 with floor(uᵢ·(i+1)), uᵢ = word K−1−i. Advances gen.offset past those blocks.
std::vector<int32_t> draw_task_order(int32_t K, Generator& gen);

}  // namespace scpn
