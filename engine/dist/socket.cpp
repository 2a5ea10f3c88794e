// POSIX TCP sockets with deadlines (socket.h): poll() bounds every wait.
#include "engine/dist/socket.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace scpn::dist {

namespace {

int ms_until(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : int(std::min<long long>(left, 1 << 30));
}

// Blocks until fd is ready for `events` or the deadline passes (false).
bool wait_for(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_until(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throw Error(cat("poll: ", std::strerror(errno)));
  }
}

void set_no_delay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

Socket::~Socket() { close(); }

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Socket Socket::connect(const std::string& host, int port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string last_error;
  for (;;) {
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (rc != 0) {
      last_error = cat("cannot resolve host '", host, "': ", ::gai_strerror(rc));
    } else {
      for (addrinfo* a = found; a; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          ::freeaddrinfo(found);
          set_no_delay(fd);
          return Socket(fd);
        }
        last_error = std::strerror(errno);
        ::close(fd);
      }
      ::freeaddrinfo(found);
    }
    if (Clock::now() >= deadline)
      throw TransferTimeout(cat("could not connect to ", host, ":", port, " (", last_error, ")"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Socket::send_all(const void* data, size_t bytes, Deadline deadline) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    if (!wait_for(fd_, POLLOUT, deadline)) throw TransferTimeout("timed out sending");
    const ssize_t n = ::send(fd_, p, bytes, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EPIPE || errno == ECONNRESET) throw PeerClosed("connection closed by the peer");
      throw Error(cat("send: ", std::strerror(errno)));
    }
    p += n;
    bytes -= size_t(n);
  }
}

size_t Socket::recv_some(void* data, size_t bytes) {
  for (;;) {
    const ssize_t n = ::recv(fd_, data, bytes, MSG_DONTWAIT);
    if (n > 0) return size_t(n);
    if (n == 0) throw PeerClosed("connection closed by the peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == ECONNRESET) throw PeerClosed("connection reset by the peer");
    throw Error(cat("recv: ", std::strerror(errno)));
  }
}

void Socket::recv_all(void* data, size_t bytes, Deadline deadline) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    if (!wait_for(fd_, POLLIN, deadline)) throw TransferTimeout("timed out receiving");
    const size_t n = recv_some(p, bytes);
    p += n;
    bytes -= n;
  }
}

Listener::Listener(int port) {
  fd_ = ::socket(AF_INET6, SOCK_STREAM, 0);
  const bool v6 = fd_ >= 0;
  if (!v6) fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  SCPN_CHECK(fd_ >= 0, "cannot create a socket: ", std::strerror(errno));
  int one = 1, zero = 0;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(uint16_t(port));
    rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(uint16_t(port));
    rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(fd_, 1024) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd_);
    throw Error(cat("cannot listen on port ", port, ": ", reason,
                    port != 0 ? " (another job may be using it: choose another MASTER_PORT)" : ""));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

Socket Listener::accept(Deadline deadline) {
  for (;;) {
    if (!wait_for(fd_, POLLIN, deadline)) throw TransferTimeout("timed out waiting for connections");
    const int fd = ::accept(fd_, nullptr, nullptr);
    if (fd >= 0) {
      set_no_delay(fd);
      return Socket(fd);
    }
    if (errno != EINTR && errno != ECONNABORTED) throw Error(cat("accept: ", std::strerror(errno)));
  }
}

int wait_readable(const int* fds, size_t count, Deadline deadline) {
  std::vector<pollfd> p(count);
  for (size_t i = 0; i < count; ++i) p[i] = {fds[i], POLLIN, 0};
  for (;;) {
    const int n = ::poll(p.data(), p.size(), ms_until(deadline));
    if (n == 0) return -1;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(cat("poll: ", std::strerror(errno)));
    }
    for (size_t i = 0; i < count; ++i)
      if (p[i].revents) return int(i);
  }
}

}  // namespace scpn::dist
