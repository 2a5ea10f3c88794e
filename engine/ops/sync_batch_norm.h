// Synchronised batch norm: training-mode batch norm whose statistics are those of the whole data-parallel
// batch (every rank's), so N ranks with B/N samples each normalise exactly as one process with B would.
// Reached through batch_norm() with BatchNormOptions::sync_group set.
#pragma once
#include "engine/ops/batch_norm.h"

namespace scpn {

// Forward: every rank's per-channel count, mean and biased variance are gathered and combined (in double,
// the same way on every rank) into the group's mean and variance; the running statistics move with those
// (unbiased with the group's count), so they stay equal on every rank. Backward: with g = this rank's dL/dy, Σg and Σ g·xhat are summed over the
// group and dx = γ·invstd·(g - Σg/M - xhat·Σ(g·xhat)/M), M the global count; dγ and dβ stay this rank's
// sums (the data-parallel gradient reduction adds them up). Every rank must call it in the same order.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& options, dist::Communicator& group);

}  // namespace scpn
