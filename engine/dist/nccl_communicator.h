// The GPU communicator: NCCL moves the tensors, device to device; a TCP star (tcp_communicator.h) is the
// control plane. It broadcasts NCCL's unique id at start-up, checks before every collective that all
// ranks are making the same call, and carries aborts, so a dead or mismatched rank is named instead of
// leaving NCCL waiting forever. Built with the CUDA backend when NCCL is found.
#pragma once
#include <memory>

#include "engine/dist/communicator.h"
#include "engine/dist/tcp_communicator.h"

namespace scpn::dist {

class NcclCommunicator final : public Communicator {
 public:
  // One process per GPU: `device` is this rank's cuda:N (launchers give LOCAL_RANK).
  NcclCommunicator(const LaunchInfo& info, Device device, Seconds timeout);
  ~NcclCommunicator() override;

  int rank() const override { return control_->rank(); }
  int size() const override { return control_->size(); }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return device_; }

  void all_reduce_sum(const Tensor& t, const std::string& what) override;
  void broadcast(const Tensor& t, int root, const std::string& what) override;
  void all_gather(const Tensor& in, const Tensor& out, const std::string& what) override;
  void barrier(const std::string& what) override;
  std::vector<std::string> all_gather_text(const std::string& text, const std::string& what) override;
  void abort(const std::string& reason) noexcept override;

  Seconds timeout() const override { return control_->timeout(); }
  void set_timeout(Seconds t) override { control_->set_timeout(t); }

  struct Impl;

 private:
  // Checks over the control plane that every rank is about to make this call; throws naming the one
  // that is not.
  void agree(const char* kind, const Tensor& t, const std::string& what);
  // Waits for the queued NCCL work, polling so that the timeout holds; aborts NCCL when it passes.
  void wait(const std::string& description);

  std::unique_ptr<TcpCommunicator> control_;
  Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scpn::dist
