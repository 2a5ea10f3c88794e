// The TCP communicator with 2 and 4 ranks (threads of this process): every collective against an
// independent computation, the same bits on every rank, and each failure (mismatched call, dead rank,
// late rank, abort, incomplete rendezvous) ending every rank with a message that names the rank at fault.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/support/ranks.h"

using namespace scpn;
using scpn::test::run_ranks;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Rank r's contribution: values that make float addition order-dependent, so a reduction that did not run
// in rank order on every rank would show.
std::vector<double> contribution(int rank, int n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[size_t(i)] = (rank % 2 ? 1e7 : 1.0) * (0.1 + 0.37 * i) + rank * 1e-3;
  return v;
}

}  // namespace

TEST_CASE("all_reduce_sum adds in rank order and gives every rank the same bits") {
  for (int world : {2, 4}) {
    CAPTURE(world);
    const int n = 1000;
    std::vector<std::vector<float>> results(static_cast<size_t>(world));
    auto outcomes = run_ranks(world, 10, [&](int rank, dist::TcpCommunicator& comm) {
      CHECK(comm.rank() == rank);
      CHECK(comm.size() == world);
      Tensor t = from_vector(contribution(rank, n), {n}, DType::f32);
      comm.all_reduce_sum(t, "sum");
      results[size_t(rank)].assign(t.data<float>(), t.data<float>() + n);
    });
    for (auto& o : outcomes) REQUIRE_MESSAGE(!o.threw, o.error);
    for (int i = 0; i < n; ++i) {
      float expected = 0;
      for (int r = 0; r < world; ++r) expected += float(contribution(r, n)[size_t(i)]);
      REQUIRE(std::memcmp(&results[0][size_t(i)], &expected, sizeof(float)) == 0);
    }
    for (int r = 1; r < world; ++r) CHECK(std::memcmp(results[0].data(), results[size_t(r)].data(), n * 4) == 0);
  }
}

TEST_CASE("broadcast, all_gather, all_gather_text and barrier") {
  const int world = 4;
  std::mutex m;
  auto outcomes = run_ranks(world, 10, [&](int rank, dist::TcpCommunicator& comm) {
    Tensor b = from_vector({double(rank), double(rank) * 2}, {2}, DType::f64);
    comm.broadcast(b, 2, "from rank 2");
    Tensor in = from_vector({double(rank * 10), double(rank * 10 + 1)}, {2}, DType::i64);
    Tensor out = Tensor::empty({world, 2}, DType::i64);
    comm.all_gather(in, out, "gather");
    comm.barrier("barrier");
    const auto texts = comm.all_gather_text(cat("rank", rank, std::string(size_t(rank) * 100, 'x')), "text");
    std::lock_guard<std::mutex> lock(m);
    CHECK(b.to_vector() == std::vector<double>{2, 4});
    CHECK(out.to_vector() == std::vector<double>{0, 1, 10, 11, 20, 21, 30, 31});
    REQUIRE(texts.size() == size_t(world));
    for (int r = 0; r < world; ++r) CHECK(texts[size_t(r)] == cat("rank", r, std::string(size_t(r) * 100, 'x')));
  });
  for (auto& o : outcomes) CHECK_MESSAGE(!o.threw, o.error);
}

TEST_CASE("one rank is a group of its own") {
  dist::LaunchInfo info;
  dist::TcpCommunicator comm(info, dist::Seconds(1));
  Tensor t = from_vector({1.5, 2.5}, {2}, DType::f32);
  comm.all_reduce_sum(t, "x");
  CHECK(t.to_vector() == std::vector<double>{1.5, 2.5});
  CHECK(comm.all_gather_text("a", "t") == std::vector<std::string>{"a"});
}

TEST_CASE("mismatched collectives end every rank with a message naming the rank and both calls") {
  SUBCASE("a different element count") {
    auto outcomes = run_ranks(4, 10, [&](int rank, dist::TcpCommunicator& comm) {
      Tensor t = zeros({rank == 3 ? 5 : 4});
      comm.all_reduce_sum(t, "gradients, bucket 0");
    });
    for (auto& o : outcomes) {
      REQUIRE(o.threw);
      CHECK_MESSAGE(contains(o.error, "mismatched collectives: rank 3 (host "), o.error);
      CHECK_MESSAGE(contains(o.error, "called all_reduce 'gradients, bucket 0' (5 f32) [collective #0] while rank 0"),
                    o.error);
      CHECK_MESSAGE(contains(o.error, "called all_reduce 'gradients, bucket 0' (4 f32) [collective #0]"), o.error);
    }
  }
  SUBCASE("a rank at a different step") {
    auto outcomes = run_ranks(2, 10, [&](int rank, dist::TcpCommunicator& comm) {
      Tensor t = zeros({4});
      comm.all_reduce_sum(t, cat("step ", rank == 1 ? 8 : 7, " gradients"));
    });
    for (auto& o : outcomes) {
      REQUIRE(o.threw);
      CHECK_MESSAGE(contains(o.error, "rank 1 (host "), o.error);
      CHECK_MESSAGE(contains(o.error, "called all_reduce 'step 8 gradients' (4 f32)"), o.error);
      CHECK_MESSAGE(contains(o.error, "called all_reduce 'step 7 gradients' (4 f32)"), o.error);
    }
  }
  SUBCASE("a different kind of collective") {
    auto outcomes = run_ranks(2, 10, [&](int rank, dist::TcpCommunicator& comm) {
      Tensor t = zeros({4});
      if (rank == 1) comm.barrier("sync");
      else comm.all_reduce_sum(t, "sync");
    });
    for (auto& o : outcomes) {
      REQUIRE(o.threw);
      CHECK_MESSAGE(contains(o.error, "called barrier 'sync' [collective #0] while rank 0"), o.error);
    }
  }
}

TEST_CASE("a rank that dies ends the others at once, naming it") {
  const auto start = std::chrono::steady_clock::now();
  auto outcomes = run_ranks(4, 30, [&](int rank, dist::TcpCommunicator& comm) {
    Tensor t = zeros({8});
    comm.all_reduce_sum(t, "step 0");
    if (rank == 2) return;  // its communicator closes its connection, as a killed process's would
    comm.all_reduce_sum(t, "step 1");
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 10);  // detected from the closed connection, not by waiting out the 30 s timeout
  CHECK(!outcomes[2].threw);
  for (int r : {0, 1, 3}) {
    REQUIRE(outcomes[size_t(r)].threw);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error,
                           "rank 2 (host "), outcomes[size_t(r)].error);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error,
                           "closed its connection during all_reduce 'step 1' (8 f32) [collective #1] (its process ended?)"),
                  outcomes[size_t(r)].error);
  }
}

TEST_CASE("a rank that does not arrive within the timeout is named; it learns why when it arrives") {
  auto outcomes = run_ranks(3, 0.5, [&](int rank, dist::TcpCommunicator& comm) {
    Tensor t = zeros({8});
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    comm.all_reduce_sum(t, "step 0");
  });
  for (int r : {0, 2}) {
    REQUIRE(outcomes[size_t(r)].threw);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error, "rank 1 (host "), outcomes[size_t(r)].error);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error,
                           "did not reach all_reduce 'step 0' (8 f32) [collective #0] within 0.5 s"),
                  outcomes[size_t(r)].error);
  }
  REQUIRE(outcomes[1].threw);
  CHECK_MESSAGE(contains(outcomes[1].error, "did not reach all_reduce 'step 0'"), outcomes[1].error);
}

TEST_CASE("abort carries the reason and the rank to every other rank") {
  auto outcomes = run_ranks(4, 10, [&](int rank, dist::TcpCommunicator& comm) {
    Tensor t = zeros({8});
    if (rank == 3) {
      comm.abort("training diverged: the loss is nan at step 12");
      return;
    }
    comm.all_reduce_sum(t, "step 12");
  });
  for (int r : {0, 1, 2}) {
    REQUIRE(outcomes[size_t(r)].threw);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error, "rank 3 (host "), outcomes[size_t(r)].error);
    CHECK_MESSAGE(contains(outcomes[size_t(r)].error, "stopped: training diverged: the loss is nan at step 12"),
                  outcomes[size_t(r)].error);
  }
}

TEST_CASE("a rendezvous that misses a rank names it") {
  auto outcomes = run_ranks(3, 0.5, [&](int, dist::TcpCommunicator&) {}, {2});
  REQUIRE(outcomes[0].threw);
  CHECK_MESSAGE(contains(outcomes[0].error, "rendezvous of 3 ranks at 127.0.0.1:"), outcomes[0].error);
  CHECK_MESSAGE(contains(outcomes[0].error, "did not complete within 0.5 s (missing: rank 2)"), outcomes[0].error);
  REQUIRE(outcomes[1].threw);  // rank 1 joined; rank 0 tells it why the group never formed
  CHECK_MESSAGE(contains(outcomes[1].error, "rendezvous of 3 ranks at 127.0.0.1:"), outcomes[1].error);
  CHECK_MESSAGE(contains(outcomes[1].error, "(missing: rank 2)"), outcomes[1].error);
}
