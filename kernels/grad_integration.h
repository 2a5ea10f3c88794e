// Contract of the gradient-integration family: the conflict-aware merge of K task gradients of one prunable
// tensor into its final gradient (SCPN_METHOD.md §4 step 3), and the global-norm clip of a list of
// gradients (torch.nn.utils.clip_grad_norm_).
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// K = number of tasks (parent + subnetworks); a compile-time bound keeps descriptors plain structs that
// copy to a device in one transfer.
inline constexpr int kMaxIntegrationTasks = 16;

// How a task's gradient is projected when several partners conflict with it on one row.
//   last:  hᵢ[r] = gᵢ[r] − dᵣ/(‖gⱼ[r]‖² + 1e-8) · gⱼ[r], dᵣ = ⟨gᵢ[r], gⱼ[r]⟩, always from the ORIGINAL gᵢ[r];
//          of the partners j ≠ i with dᵣ < 0, the last one in the order π decides (the reference's code).
//   chain: PCGrad: hᵢ[r] starts at gᵢ[r]; for each j ≠ i in π, dᵣ = ⟨hᵢ[r], gⱼ[r]⟩ with the CURRENT hᵢ[r];
//          if dᵣ < 0, hᵢ[r] −= dᵣ/(‖gⱼ[r]‖² + 1e-8) · gⱼ[r].
enum class ConflictSemantics : uint8_t { last, chain };

// How the projected gradients are weighted.
//   cosine: aᵢ = ((1 + cos(hᵢ, gᵢ)) / 2)^γ over the whole tensor, wᵢ = aᵢ / (Σₖ aₖ + 1e-8), where
//           cos(h, g) = ⟨h, g⟩ / (max(‖h‖, 1e-8) · max(‖g‖, 1e-8)) (torch.nn.functional.cosine_similarity);
//   none:   wᵢ = 1/K.
enum class TaskWeighting : uint8_t { cosine, none };

// One tensor P with numel = rows · row_len elements, its K task gradients and its output.
// rows = output filters for per-filter integration of a 4-D tensor, else 1 (one row = the whole tensor).
struct GradIntegrationTensor {
  int64_t rows = 1;
  int64_t row_len = 0;
  const void* grads[kMaxIntegrationTasks] = {};  // gᵢ, i < K: contiguous, numel elements each
  int32_t order[kMaxIntegrationTasks] = {};      // π: a permutation of 0..K−1
  void* out = nullptr;                           // numel elements, overwritten; may be one of grads
};

// The method's defaults (SCPN_METHOD.md): the engine's IntegrationOptions, and so the config, take them
// from here.
inline constexpr ConflictSemantics kDefaultConflictSemantics = ConflictSemantics::last;
inline constexpr TaskWeighting kDefaultTaskWeighting = TaskWeighting::cosine;
inline constexpr double kDefaultIntegrationGamma = 0.5;

// One call handles a whole list of tensors, so that a backend can fuse them into one launch over all
// prunable parameters.
struct GradIntegrationArgs {
  int32_t tasks = 0;  // K, 1..kMaxIntegrationTasks
  ConflictSemantics semantics = kDefaultConflictSemantics;
  TaskWeighting weighting = kDefaultTaskWeighting;
  double gamma = kDefaultIntegrationGamma;
  const GradIntegrationTensor* tensors = nullptr;  // host memory; data pointers on the call's device
  int64_t count = 0;
  // Optional diagnostics, in memory of the call's device (may be null):
  double* weights = nullptr;          // [count, K]: each tensor's wᵢ
  int64_t* projected_rows = nullptr;  // [count]: (task i, row r) pairs where hᵢ[r] ≠ gᵢ[r] (some dᵣ < 0)
};

// For every tensor: P.grad = out = K · Σᵢ wᵢ hᵢ, overwriting `out`. Dots and norms accumulate in double.
// With no conflicting pair (every dᵣ ≥ 0) hᵢ = gᵢ; then `none` gives exactly Σᵢ gᵢ and `cosine` gives
// K/(K + 1e-8) · Σᵢ gᵢ (every cos = 1, aᵢ = 1), the plain sum up to a relative 1e-8/K.
//
// How it is computed (on both backends): every hᵢ[r] is a linear combination Σₖ Aᵣ[i,k]·gₖ[r],
// and everything the rules need is the per-row Gram matrix Gᵣ[a,b] = ⟨gₐ[r], g_b[r]⟩. So: pass 1 reads
// the K gradients once and builds Gᵣ (partial sums over fixed 4096-element chunks of a row, added in chunk
// order, so results do not depend on the thread count); a small per-row step applies the rule to Gᵣ to get
// Aᵣ, and ⟨hᵢ, gᵢ⟩, ‖hᵢ‖², ‖gᵢ‖² summed over rows give the weights; pass 2 reads the gradients again and
// writes out[r] = Σₖ βᵣ[k]·gₖ[r] with βᵣ[k] = K·Σᵢ wᵢ·Aᵣ[i,k]. Each output element is written after every
// gradient's element at the same index was read, so `out` may alias a gradient buffer.
using GradIntegrateFn = void(const ExecContext&, DType, const GradIntegrationArgs&);

// ---- the global-norm clip ------------------------------------------------------------------------------
// A list of contiguous buffers of one dtype; `sizes` and `buffers` are host arrays of `count` entries.
struct GradListArgs {
  const int64_t* sizes = nullptr;
  void* const* buffers = nullptr;
  int64_t count = 0;
};

// sum_squares[t] = Σ buffers[t][e]² in double; `sum_squares` is `count` doubles in the call's device
// memory, overwritten.
using GradSumSquaresFn = void(const ExecContext&, DType, const GradListArgs&, double* sum_squares);

// buffers[t][e] *= factor, in place, for every buffer of the list.
using GradScaleFn = void(const ExecContext&, DType, const GradListArgs&, double factor);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/grad_integration.cpp
GradIntegrateFn grad_integrate;
GradSumSquaresFn grad_sum_squares;
GradScaleFn grad_scale;
}  // namespace cpu

namespace cuda {  // kernels/cuda/grad_integration.cu
GradIntegrateFn grad_integrate;
GradSumSquaresFn grad_sum_squares;
GradScaleFn grad_scale;
}  // namespace cuda

}  // namespace scpn
