// A TCP connection with deadlines: every send and receive waits at most until a given time point, so a
// dead or stuck peer turns into an error instead of a hang. Used by the rendezvous and the TCP
// communicator; the failures are typed so the communicator can name the rank behind them.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

#include "engine/error.h"

namespace scpn::dist {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// The peer closed the connection (its process ended) or reset it.
struct PeerClosed : Error {
  using Error::Error;
};
// The deadline passed before the transfer completed.
struct TransferTimeout : Error {
  using Error::Error;
};

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Connects to host:port, retrying refused connections (the listener may not be up yet) until the
  // deadline.
  static Socket connect(const std::string& host, int port, Deadline deadline);

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close();

  void send_all(const void* data, size_t bytes, Deadline deadline);
  void recv_all(void* data, size_t bytes, Deadline deadline);
  // Reads what has arrived, up to `bytes`, without waiting; returns the count (0: nothing yet).
  // Throws PeerClosed at end of stream.
  size_t recv_some(void* data, size_t bytes);

 private:
  int fd_ = -1;
};

// A listening socket on all interfaces.
class Listener {
 public:
  explicit Listener(int port);  // port 0: any free port (see port())
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int port() const { return port_; }
  Socket accept(Deadline deadline);

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Waits until one of `fds` is readable or the deadline passes; returns its index, or -1 on timeout.
int wait_readable(const int* fds, size_t count, Deadline deadline);

}  // namespace scpn::dist
