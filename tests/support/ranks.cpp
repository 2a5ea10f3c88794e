// Thread-per-rank process groups for the communicator and data-parallel tests (ranks.h).
#include "tests/support/ranks.h"

#include <algorithm>
#include <thread>

#include "engine/dist/socket.h"

namespace scpn::test {

int free_port() {
  dist::Listener probe(0);
  return probe.port();
}

std::vector<RankOutcome> run_ranks(int world, double timeout_s,
                                   const std::function<void(int, dist::TcpCommunicator&)>& body,
                                   const std::vector<int>& absent) {
  dist::LaunchInfo info;
  info.world_size = world;
  info.master_port = free_port();
  std::vector<RankOutcome> outcomes(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    if (std::find(absent.begin(), absent.end(), r) != absent.end()) continue;
    threads.emplace_back([&, r] {
      dist::LaunchInfo mine = info;
      mine.rank = r;
      try {
        dist::TcpCommunicator comm(mine, dist::Seconds(timeout_s));
        body(r, comm);
      } catch (const std::exception& e) {
        outcomes[size_t(r)] = {true, e.what()};
      }
    });
  }
  for (auto& t : threads) t.join();
  return outcomes;
}

}  // namespace scpn::test
