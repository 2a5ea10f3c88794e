// Data-parallel training over a communicator: every rank runs the same step on its shard of the batch,
// and before anything nonlinear uses them (clipping, the conflict-aware integration) each gradient set is
// averaged over the ranks, in buckets over the flattened gradients. Since every rank then integrates and
// steps with the same bits, the parameters stay identical on every rank without being sent again.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/dist/communicator.h"

namespace scpn::train {

struct DataParallelOptions {
  int64_t bucket_bytes = 25 << 20;  // gradients are averaged in collectives of at most this size
};

class DataParallel {
 public:
  // params: every trained tensor, in one order shared by all ranks; buffers: BatchNorm running statistics.
  DataParallel(dist::Communicator& comm, std::vector<Tensor> params, std::vector<Tensor> buffers,
               DataParallelOptions options = {});

  dist::Communicator& comm() const { return comm_; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }

  // Averages over ranks the gradients a slot holds for `params` (a parameter without a gradient in the
  // slot must have none on every rank: the element counts would differ, a mismatch that names the rank).
  void average(GradientSlot& slot, const std::string& what);
  // The same for the parameters' .grad().
  void average_grads(const std::string& what);
  // Averages the BatchNorm running statistics (per-rank batch norm moves them with each rank's shard).
  void average_buffers(const std::string& what);
  // The mean over ranks of each value (losses, for the log).
  std::vector<double> average_values(const std::vector<double>& values, const std::string& what);

  // Whether `flag` is set on any rank (a stop request, so that every rank stops after the same step).
  bool any(bool flag, const std::string& what);

  // Start of training: rank 0's parameters and buffers on every rank (the same seed already gives the
  // same initialisation; this also covers weights loaded on rank 0 only).
  void broadcast_state(const std::string& what);
  // Fails on every rank, naming the ranks, unless every rank reports the same text (the resolved config).
  void require_same(const std::string& text, const std::string& what);

 private:
  // Averages the given tensors in place, in buckets.
  void average_tensors(const std::vector<Tensor>& tensors, const std::string& what);

  dist::Communicator& comm_;
  std::vector<Tensor> params_, buffers_;
  DataParallelOptions options_;
};

}  // namespace scpn::train
