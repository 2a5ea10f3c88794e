// Runs N ranks of a process group as threads of one process, each with its own TCP communicator joined
// at a free loopback port, and collects what each rank returned or threw.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/dist/tcp_communicator.h"

namespace scpn::test {

struct RankOutcome {
  bool threw = false;
  std::string error;  // the exception's message when it threw
};

// A TCP port that was free a moment ago.
int free_port();

// Starts `world` threads; thread r builds TcpCommunicator(rank r of world, 127.0.0.1:port, timeout) and
// runs body(r, comm). A rank in `absent` starts no thread (its peers see it missing).
std::vector<RankOutcome> run_ranks(int world, double timeout_s,
                                   const std::function<void(int rank, dist::TcpCommunicator& comm)>& body,
                                   const std::vector<int>& absent = {});

}  // namespace scpn::test
