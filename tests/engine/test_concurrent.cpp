// run_concurrently (engine/concurrent.h): every job runs once, at most `at_once` at a time on distinct
// threads whose kernels are single-threaded; a failed job's exception reaches the caller after all jobs
// have finished; the caller's thread count is untouched.
#include <doctest/doctest.h>

#include <omp.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/concurrent.h"
#include "engine/devices.h"

using namespace scpn;

namespace {
// Two CPU threads for the test's lifetime, whatever the machine has: the jobs must overlap even on one core.
struct TwoThreads {
  int before = cpu_threads();
  TwoThreads() { set_cpu_threads(2); }
  ~TwoThreads() { set_cpu_threads(before); }
};
}  // namespace

TEST_CASE("run_concurrently: every job once, two at a time on two threads, kernels single-threaded inside") {
  TwoThreads two;
  constexpr int64_t kJobs = 5;
  std::vector<std::atomic<int>> runs(kJobs);
  std::atomic<int> running{0}, most_running{0};
  std::mutex m;
  std::set<int> thread_numbers;
  std::vector<int> inner_threads(kJobs, -1);
  run_concurrently(kJobs, 2, [&](int64_t i) {
    const int now = ++running;
    for (int seen = most_running; now > seen && !most_running.compare_exchange_weak(seen, now);) {
    }
    runs[size_t(i)]++;
    inner_threads[size_t(i)] = omp_get_max_threads();  // what a kernel's parallel region would get
    {
      std::lock_guard<std::mutex> lock(m);
      thread_numbers.insert(omp_get_thread_num());
    }
    // Long enough that the other thread picks up a job meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
  });
  for (int64_t i = 0; i < kJobs; ++i) {
    CHECK(runs[size_t(i)] == 1);
    CHECK(inner_threads[size_t(i)] == 1);
  }
  CHECK(most_running == 2);
  CHECK(thread_numbers == std::set<int>{0, 1});
  CHECK(cpu_threads() == 2);  // the caller's setting is its own again
}

TEST_CASE("run_concurrently: one at a time runs in order on the caller's thread with its thread count") {
  TwoThreads two;
  std::vector<int64_t> order;
  run_concurrently(4, 1, [&](int64_t i) {
    order.push_back(i);
    CHECK(omp_get_max_threads() == 2);
    CHECK_FALSE(omp_in_parallel());
  });
  CHECK(order == std::vector<int64_t>{0, 1, 2, 3});
  run_concurrently(0, 2, [&](int64_t) { FAIL("no job to run"); });
}

TEST_CASE("run_concurrently: a failing job's error reaches the caller after the other jobs have run") {
  TwoThreads two;
  std::vector<std::atomic<int>> runs(6);
  auto job = [&](int64_t i) {
    runs[size_t(i)]++;
    if (i == 2) throw std::runtime_error("job 2 failed");
    if (i == 4) throw std::runtime_error("job 4 failed");
  };
  CHECK_THROWS_WITH_AS(run_concurrently(6, 2, job), "job 2 failed", std::runtime_error);
  for (auto& r : runs) CHECK(r == 1);
}
