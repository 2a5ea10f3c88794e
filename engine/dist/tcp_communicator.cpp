// The TCP star (tcp_communicator.h). Every message is a fixed header followed by its payload. Rank 0 reads
// all ranks at once with poll(), so a rank that dies is noticed at once (end of stream) and a rank that
// never arrives is named when the timeout passes; on any failure rank 0 sends every other rank an abort
// message carrying the reason, so all ranks report the same cause.
#include "engine/dist/tcp_communicator.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace scpn::dist {

namespace {

constexpr uint32_t kMagic = 0x5C9D'7C01;  // also rejects strangers connecting to the port
constexpr size_t kWhatLength = 96;
// A non-zero rank waits this much longer than rank 0 for a result, so rank 0's diagnosis (which names
// the rank at fault) reaches it before its own timeout fires.
constexpr Seconds kFollowerGrace{5.0};

enum class Kind : uint8_t { hello, welcome, all_reduce, broadcast, all_gather, barrier, text, result, abort };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::hello: return "hello";
    case Kind::welcome: return "welcome";
    case Kind::all_reduce: return "all_reduce";
    case Kind::broadcast: return "broadcast";
    case Kind::all_gather: return "all_gather";
    case Kind::barrier: return "barrier";
    case Kind::text: return "all_gather_text";
    case Kind::result: return "result";
    case Kind::abort: return "abort";
  }
  return "?";
}

Deadline deadline_after(Seconds s) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(s);
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// Texts as one buffer: count, then (length, bytes) each.
std::vector<char> pack_texts(const std::vector<std::string>& texts) {
  size_t bytes = 8;
  for (const auto& t : texts) bytes += 8 + t.size();
  std::vector<char> out(bytes);
  char* at = out.data();
  auto put = [&](const void* p, size_t n) {
    std::memcpy(at, p, n);
    at += n;
  };
  const uint64_t count = texts.size();
  put(&count, 8);
  for (const auto& t : texts) {
    const uint64_t n = t.size();
    put(&n, 8);
    put(t.data(), n);
  }
  return out;
}

std::vector<std::string> unpack_texts(const std::vector<char>& in) {
  size_t at = 0;
  auto get = [&] {
    SCPN_CHECK(at + 8 <= in.size(), "malformed text message");
    uint64_t v;
    std::memcpy(&v, in.data() + at, 8);
    at += 8;
    return v;
  };
  std::vector<std::string> out(get());
  for (auto& t : out) {
    const uint64_t n = get();
    SCPN_CHECK(at + n <= in.size(), "malformed text message");
    t.assign(in.data() + at, n);
    at += n;
  }
  return out;
}

template <class T>
void add_into(char* acc, const char* x, size_t bytes) {
  T* a = reinterpret_cast<T*>(acc);
  const T* b = reinterpret_cast<const T*>(x);
  const size_t n = bytes / sizeof(T);
  for (size_t i = 0; i < n; ++i) a[i] += b[i];
}

void add_into(DType dtype, char* acc, const char* x, size_t bytes) {
  switch (dtype) {
    case DType::f32: return add_into<float>(acc, x, bytes);
    case DType::f64: return add_into<double>(acc, x, bytes);
    case DType::i32: return add_into<int32_t>(acc, x, bytes);
    case DType::i64: return add_into<int64_t>(acc, x, bytes);
    default: throw Error(cat("all_reduce_sum: dtype ", dtype_name(dtype), " is not supported (f32, f64, i32, i64)"));
  }
}

}  // namespace

struct TcpCommunicator::Header {
  uint32_t magic = kMagic;
  Kind kind = Kind::hello;
  uint8_t dtype = 0;
  uint16_t unused = 0;
  int32_t rank = 0;
  int32_t arg = 0;  // broadcast: the root; hello: the world size
  uint64_t seq = 0;
  uint64_t count = 0;          // elements of the collective's tensor
  uint64_t payload_bytes = 0;  // bytes following the header
  char what[kWhatLength] = {};

  void set_what(const std::string& s) {
    std::memset(what, 0, sizeof what);
    std::memcpy(what, s.data(), std::min(s.size(), sizeof what - 1));
  }
  std::string what_str() const { return std::string(what, strnlen(what, sizeof what)); }
};

// What one call is, for the headers and for messages.
struct TcpCommunicator::Collective {
  Kind kind;
  DType dtype = DType::u8;
  uint64_t count = 0;
  int32_t arg = 0;
  std::string what;
  uint64_t seq = 0;

  std::string describe() const {
    std::string s = cat(kind_name(kind), " '", what, "'");
    if (kind == Kind::all_reduce || kind == Kind::broadcast || kind == Kind::all_gather)
      s += cat(" (", count, " ", dtype_name(dtype), ")");
    return s + cat(" [collective #", seq, "]");
  }
};

TcpCommunicator::TcpCommunicator(const LaunchInfo& info, Seconds timeout)
    : rank_(info.rank), size_(info.world_size), timeout_(timeout) {
  SCPN_CHECK(size_ >= 1 && rank_ >= 0 && rank_ < size_, "TCP communicator: rank ", rank_, " of ", size_);
  const Deadline deadline = deadline_after(timeout);
  const std::string me = cat("host ", host_name(), ", pid ", ::getpid());
  identities_.assign(size_, "");
  identities_[rank_] = me;
  if (size_ == 1) return;
  Header hello;
  hello.kind = Kind::hello;
  hello.rank = rank_;
  hello.arg = size_;
  const std::string where = cat(info.master_addr, ":", info.master_port);
  try {
    if (rank_ == 0) {
      Listener listener(info.master_port);
      peers_.resize(size_);
      for (int joined = 1; joined < size_;) {
        Socket s = listener.accept(deadline);
        Header h;
        s.recv_all(&h, sizeof h, deadline);
        if (h.magic != kMagic || h.kind != Kind::hello) continue;  // not one of ours
        std::string id(h.payload_bytes, '\0');
        s.recv_all(id.data(), id.size(), deadline);
        SCPN_CHECK(h.arg == size_, "rank ", h.rank, " (", id, ") was started with world size ", h.arg,
                   " but rank 0 with ", size_);
        SCPN_CHECK(h.rank > 0 && h.rank < size_, "a process (", id, ") joined as rank ", h.rank,
                   ", outside 1..", size_ - 1);
        SCPN_CHECK(!peers_[h.rank].valid(), "two processes joined as rank ", h.rank, ": ", identities_[h.rank],
                   " and ", id);
        identities_[h.rank] = id;
        peers_[h.rank] = std::move(s);
        ++joined;
      }
      const std::vector<char> ids = pack_texts(identities_);
      Header welcome;
      welcome.kind = Kind::welcome;
      welcome.payload_bytes = ids.size();
      for (int r = 1; r < size_; ++r) {
        peers_[r].send_all(&welcome, sizeof welcome, deadline);
        peers_[r].send_all(ids.data(), ids.size(), deadline);
      }
    } else {
      peers_.push_back(Socket::connect(info.master_addr, info.master_port, deadline));
      hello.payload_bytes = me.size();
      peers_[0].send_all(&hello, sizeof hello, deadline);
      peers_[0].send_all(me.data(), me.size(), deadline);
      // Longer than rank 0 waits for the others, so that its diagnosis arrives first.
      const Deadline welcome_deadline = deadline_after(timeout + kFollowerGrace);
      Header welcome;
      peers_[0].recv_all(&welcome, sizeof welcome, welcome_deadline);
      SCPN_CHECK(welcome.magic == kMagic && (welcome.kind == Kind::welcome || welcome.kind == Kind::abort), "rank 0 at ",
                 where, " answered with an unexpected message");
      std::vector<char> ids(welcome.payload_bytes);
      peers_[0].recv_all(ids.data(), ids.size(), welcome_deadline);
      if (welcome.kind == Kind::abort) throw CollectiveError(std::string(ids.begin(), ids.end()));
      identities_ = unpack_texts(ids);
    }
  } catch (const TransferTimeout& e) {
    const std::string missing = [&] {
      if (rank_ != 0) return std::string();
      std::string m;
      for (int r = 1; r < size_; ++r)
        if (!peers_[r].valid()) m += cat(m.empty() ? "" : ", ", r);
      return cat(" (missing: rank ", m, ")");
    }();
    const std::string message = cat("rendezvous of ", size_, " ranks at ", where, " did not complete within ",
                                    timeout.count(), " s", missing, ": ", e.what());
    abort(message);  // the ranks that did join learn why
    throw CollectiveError(message);
  } catch (const PeerClosed& e) {
    const std::string message = cat("rendezvous of ", size_, " ranks at ", where, ": ", rank_ == 0 ? "a rank" : "rank 0",
                                    " closed its connection (", e.what(), ")");
    abort(message);
    throw CollectiveError(message);
  }
}

TcpCommunicator::~TcpCommunicator() = default;

std::string TcpCommunicator::describe_rank(int rank) const {
  const std::string& id = identities_.at(size_t(rank));
  return id.empty() ? cat("rank ", rank) : cat("rank ", rank, " (", id, ")");
}

void TcpCommunicator::fail(const std::string& message) {
  abort(message);
  throw CollectiveError(message);
}

void TcpCommunicator::abort(const std::string& reason) noexcept {
  if (failed_) return;
  failed_ = true;
  failure_ = reason;
  try {
    Header h;
    h.kind = Kind::abort;
    h.rank = rank_;
    h.payload_bytes = reason.size();
    const Deadline soon = deadline_after(Seconds(1));
    for (auto& p : peers_) {
      if (!p.valid()) continue;
      try {
        p.send_all(&h, sizeof h, soon);
        p.send_all(reason.data(), reason.size(), soon);
      } catch (...) {
      }
      ::shutdown(p.fd(), SHUT_WR);
    }
  } catch (...) {
  }
}

std::vector<char> TcpCommunicator::run(Collective& c, const void* payload, size_t payload_bytes) {
  c.seq = seq_++;
  if (failed_) throw CollectiveError(cat("the group has already failed: ", failure_));
  if (size_ == 1) {
    std::vector<char> self(static_cast<const char*>(payload), static_cast<const char*>(payload) + payload_bytes);
    return c.kind == Kind::text ? pack_texts({std::string(self.begin(), self.end())}) : self;
  }
  if (rank_ == 0) return gather_and_combine(c, payload, payload_bytes);

  Header h;
  h.kind = c.kind;
  h.dtype = uint8_t(c.dtype);
  h.rank = rank_;
  h.arg = c.arg;
  h.seq = c.seq;
  h.count = c.count;
  h.payload_bytes = payload_bytes;
  h.set_what(c.what);
  Socket& root = peers_[0];
  const Deadline deadline = deadline_after(timeout_);
  const Deadline reply_deadline = deadline_after(timeout_ + kFollowerGrace);
  Header reply;
  try {
    root.send_all(&h, sizeof h, deadline);
    root.send_all(payload, payload_bytes, deadline);
    root.recv_all(&reply, sizeof reply, reply_deadline);
  } catch (const TransferTimeout&) {
    fail(cat(describe_rank(0), " did not complete ", c.describe(), " within ", timeout_.count(), " s (",
             describe_rank(rank_), " waited)"));
  } catch (const PeerClosed&) {
    // Rank 0 may have sent its reason just before closing.
    Header late;
    try {
      root.recv_all(&late, sizeof late, deadline_after(Seconds(0.2)));
    } catch (...) {
      late.kind = Kind::hello;
    }
    if (late.kind != Kind::abort)
      fail(cat(describe_rank(0), " closed its connection during ", c.describe(), " (its process ended?)"));
    reply = late;
  }
  std::vector<char> body(reply.payload_bytes);
  try {
    root.recv_all(body.data(), body.size(), reply_deadline);
  } catch (const std::exception& e) {
    fail(cat("receiving the result of ", c.describe(), " from ", describe_rank(0), ": ", e.what()));
  }
  if (reply.kind == Kind::abort) {
    failed_ = true;
    failure_ = std::string(body.begin(), body.end());
    throw CollectiveError(failure_);
  }
  SCPN_CHECK(reply.magic == kMagic && reply.kind == Kind::result && reply.seq == c.seq,
             "rank 0 answered ", c.describe(), " with an unexpected message");
  return body;
}

std::vector<char> TcpCommunicator::gather_and_combine(Collective& c, const void* payload, size_t payload_bytes) {
  struct Incoming {
    Header header;
    size_t header_got = 0;
    std::vector<char> body;
    size_t body_got = 0;
    bool done = false;
  };
  std::vector<Incoming> in(size_);
  in[0].done = true;
  const Deadline deadline = deadline_after(timeout_);
  for (;;) {
    std::vector<int> fds, ranks;
    for (int r = 1; r < size_; ++r)
      if (!in[r].done) {
        fds.push_back(peers_[r].fd());
        ranks.push_back(r);
      }
    if (fds.empty()) break;
    const int ready = wait_readable(fds.data(), fds.size(), deadline);
    if (ready < 0) {
      std::string late;
      for (int r : ranks) late += cat(late.empty() ? "" : ", ", describe_rank(r));
      fail(cat(late, " did not reach ", c.describe(), " within ", timeout_.count(), " s"));
    }
    const int r = ranks[size_t(ready)];
    Incoming& m = in[r];
    try {
      if (m.header_got < sizeof(Header)) {
        m.header_got += peers_[r].recv_some(reinterpret_cast<char*>(&m.header) + m.header_got,
                                            sizeof(Header) - m.header_got);
        if (m.header_got == sizeof(Header)) {
          if (m.header.magic != kMagic) fail(cat(describe_rank(r), " sent a malformed message during ", c.describe()));
          m.body.resize(m.header.payload_bytes);
        }
      } else {
        m.body_got += peers_[r].recv_some(m.body.data() + m.body_got, m.body.size() - m.body_got);
      }
    } catch (const PeerClosed&) {
      fail(cat(describe_rank(r), " closed its connection during ", c.describe(), " (its process ended?)"));
    }
    if (m.header_got == sizeof(Header) && m.body_got == m.body.size()) {
      m.done = true;
      const Header& h = m.header;
      if (h.kind == Kind::abort)
        fail(cat(describe_rank(r), " stopped: ", std::string(m.body.begin(), m.body.end())));
      Collective theirs{h.kind, DType(h.dtype), h.count, h.arg, h.what_str(), h.seq};
      const bool same = h.kind == c.kind && h.seq == c.seq && theirs.what == c.what.substr(0, kWhatLength - 1) &&
                        h.arg == c.arg && (c.kind == Kind::text || (h.dtype == uint8_t(c.dtype) && h.count == c.count));
      if (!same)
        fail(cat("mismatched collectives: ", describe_rank(r), " called ", theirs.describe(), " while ",
                 describe_rank(0), " called ", c.describe()));
    }
  }

  // Combine in rank order, so the result does not depend on arrival order.
  std::vector<char> result;
  const char* mine = static_cast<const char*>(payload);
  switch (c.kind) {
    case Kind::all_reduce:
      result.assign(mine, mine + payload_bytes);
      for (int r = 1; r < size_; ++r) add_into(c.dtype, result.data(), in[r].body.data(), result.size());
      break;
    case Kind::broadcast:
      result = c.arg == 0 ? std::vector<char>(mine, mine + payload_bytes) : in[c.arg].body;
      break;
    case Kind::all_gather:
      result.assign(mine, mine + payload_bytes);
      for (int r = 1; r < size_; ++r) result.insert(result.end(), in[r].body.begin(), in[r].body.end());
      break;
    case Kind::text: {
      std::vector<std::string> texts{std::string(mine, mine + payload_bytes)};
      for (int r = 1; r < size_; ++r) texts.emplace_back(in[r].body.begin(), in[r].body.end());
      result = pack_texts(texts);
      break;
    }
    default: break;  // barrier: nothing
  }
  Header reply;
  reply.kind = Kind::result;
  reply.seq = c.seq;
  reply.payload_bytes = result.size();
  const Deadline send_deadline = deadline_after(timeout_);
  for (int r = 1; r < size_; ++r) {
    try {
      peers_[r].send_all(&reply, sizeof reply, send_deadline);
      peers_[r].send_all(result.data(), result.size(), send_deadline);
    } catch (const PeerClosed&) {
      fail(cat(describe_rank(r), " closed its connection during ", c.describe(), " (its process ended?)"));
    } catch (const TransferTimeout&) {
      fail(cat(describe_rank(r), " did not take the result of ", c.describe(), " within ", timeout_.count(), " s"));
    }
  }
  return result;
}

namespace {

void check_tensor(const char* op, const Tensor& t) {
  SCPN_CHECK(t.defined(), op, ": undefined tensor");
  SCPN_CHECK(t.device().is_cpu(), op, ": the TCP communicator works on CPU tensors, got one on ",
             t.device().str());
}

}  // namespace

void TcpCommunicator::all_reduce_sum(const Tensor& t, const std::string& what) {
  check_tensor("all_reduce_sum", t);
  Collective c{Kind::all_reduce, t.dtype(), uint64_t(t.numel()), 0, what};
  const std::vector<char> sum = run(c, t.raw_data(), t.nbytes());
  std::memcpy(t.raw_data(), sum.data(), t.nbytes());
}

void TcpCommunicator::broadcast(const Tensor& t, int root, const std::string& what) {
  check_tensor("broadcast", t);
  SCPN_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " is not a rank of ", size_);
  Collective c{Kind::broadcast, t.dtype(), uint64_t(t.numel()), root, what};
  const std::vector<char> data = run(c, t.raw_data(), rank_ == root ? t.nbytes() : 0);
  SCPN_CHECK(data.size() == t.nbytes(), "broadcast '", what, "': received ", data.size(), " bytes, expected ",
             t.nbytes());
  std::memcpy(t.raw_data(), data.data(), t.nbytes());
}

void TcpCommunicator::all_gather(const Tensor& in, const Tensor& out, const std::string& what) {
  check_tensor("all_gather", in);
  check_tensor("all_gather", out);
  SCPN_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size_, "all_gather '", what,
             "': out must hold ", size_, " × ", in.numel(), " ", dtype_name(in.dtype()), ", got ", shape_str(out.shape()),
             " ", dtype_name(out.dtype()));
  Collective c{Kind::all_gather, in.dtype(), uint64_t(in.numel()), 0, what};
  const std::vector<char> data = run(c, in.raw_data(), in.nbytes());
  std::memcpy(out.raw_data(), data.data(), out.nbytes());
}

void TcpCommunicator::barrier(const std::string& what) {
  Collective c{Kind::barrier, DType::u8, 0, 0, what};
  run(c, nullptr, 0);
}

std::vector<std::string> TcpCommunicator::all_gather_text(const std::string& text, const std::string& what) {
  Collective c{Kind::text, DType::u8, 0, 0, what};
  return unpack_texts(run(c, text.data(), text.size()));
}

}  // namespace scpn::dist
