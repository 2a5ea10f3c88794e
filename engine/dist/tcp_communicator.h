// The CPU communicator: processes (on one machine or several) joined by TCP in a star around rank 0.
// Rank 0 gathers every rank's contribution, checks that all ranks called the same collective (same
// sequence number, kind, name, element count and dtype), reduces in rank order and sends one result back,
// so every rank gets the same bits. It also carries the NCCL communicator's control messages.
#pragma once
#include <memory>
#include <vector>

#include "engine/dist/communicator.h"
#include "engine/dist/launch.h"
#include "engine/dist/socket.h"

namespace scpn::dist {

class TcpCommunicator final : public Communicator {
 public:
  // Rendezvous: rank 0 listens on info.master_port and waits for the other world_size - 1 ranks; the
  // others connect to info.master_addr (retrying until rank 0 is up). All of it within `timeout`.
  TcpCommunicator(const LaunchInfo& info, Seconds timeout);
  ~TcpCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "tcp"; }
  Device device() const override { return kCPU; }

  void all_reduce_sum(const Tensor& t, const std::string& what) override;
  void broadcast(const Tensor& t, int root, const std::string& what) override;
  void all_gather(const Tensor& in, const Tensor& out, const std::string& what) override;
  void barrier(const std::string& what) override;
  std::vector<std::string> all_gather_text(const std::string& text, const std::string& what) override;
  void abort(const std::string& reason) noexcept override;

  Seconds timeout() const override { return timeout_; }
  void set_timeout(Seconds t) override { timeout_ = t; }

  // Who a rank is, for messages: "rank 2 (host node3, pid 4242)".
  std::string describe_rank(int rank) const;

  struct Header;
  struct Collective;

 private:
  // One collective: every rank sends `payload` (may be empty); every rank receives the combined result.
  std::vector<char> run(Collective& c, const void* payload, size_t payload_bytes);
  std::vector<char> gather_and_combine(Collective& c, const void* payload, size_t payload_bytes);
  [[noreturn]] void fail(const std::string& message);

  int rank_ = 0, size_ = 1;
  Seconds timeout_;
  uint64_t seq_ = 0;
  std::vector<Socket> peers_;              // rank 0: peers_[r], r ≥ 1; other ranks: peers_[0] is rank 0
  std::vector<std::string> identities_;    // "host node3, pid 4242" per rank (rank 0 knows all)
  bool failed_ = false;
  std::string failure_;
};

}  // namespace scpn::dist
