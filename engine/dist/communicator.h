// The communicator: what data-parallel training needs from a group of processes (rank, world size,
// all-reduce, broadcast, all-gather, barrier, abort). Two implementations: TCP between processes on the CPU
// (tcp_communicator.h) and NCCL between GPUs (nccl_communicator.h); connect.h picks one.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace scpn::dist {

// Every collective waits at most this long for the other ranks; a rank that has not arrived by then ends
// the job with an error naming it and the collective.
using Seconds = std::chrono::duration<double>;

// A collective failed: a rank died, timed out, aborted, or called a different collective. Every rank
// that sees it throws one, with a message naming the rank at fault and the collective.
struct CollectiveError : Error {
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "tcp", "nccl"
  virtual Device device() const = 0;         // where the tensors of collectives live

  // Every call below is collective: all ranks make the same calls in the same order, with tensors of the
  // same shape and dtype (checked: a mismatch is a CollectiveError naming the rank). `what` names the
  // collective in errors ("gradients of subnetwork 0.4, bucket 2"). Tensors are contiguous, on device().

  // t ← Σ over ranks of t (in place). Every rank gets the same bits.
  virtual void all_reduce_sum(const Tensor& t, const std::string& what) = 0;
  // t ← root's t on every rank.
  virtual void broadcast(const Tensor& t, int root, const std::string& what) = 0;
  // out[r] ← rank r's `in`; out has shape [size(), in.shape...].
  virtual void all_gather(const Tensor& in, const Tensor& out, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
  // Rank r's text, on every rank (small control messages: configuration fingerprints, metrics).
  virtual std::vector<std::string> all_gather_text(const std::string& text, const std::string& what) = 0;

  // Ends the group after a failure on this rank: the other ranks' current or next collective throws a
  // CollectiveError carrying `reason` and this rank's number. Safe to call more than once; never throws.
  virtual void abort(const std::string& reason) noexcept = 0;

  // The time limit of one collective; `barrier` and `all_gather_text` can be given a longer one for
  // waits that include work on one rank (rank 0's evaluation).
  virtual Seconds timeout() const = 0;
  virtual void set_timeout(Seconds t) = 0;
};

// Runs `f` with the communicator's timeout raised to at least `t`, then restores it.
class LongerTimeout {
 public:
  LongerTimeout(Communicator& c, Seconds t) : c_(c), saved_(c.timeout()) {
    if (t > saved_) c_.set_timeout(t);
  }
  ~LongerTimeout() { c_.set_timeout(saved_); }
  LongerTimeout(const LongerTimeout&) = delete;
  LongerTimeout& operator=(const LongerTimeout&) = delete;

 private:
  Communicator& c_;
  Seconds saved_;
};

}  // namespace scpn::dist
