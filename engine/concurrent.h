// Independent pieces of CPU work side by side, one thread each. The CPU kernels split every op over all
// cores; on few cores and small tensors that costs barriers and idle waits in each of thousands of ops a
// step. Work that falls into independent pieces (the SCPN step's passes: train/scpn/step.cpp) can run as
// whole pieces on their own cores instead, each with single-threaded kernels.
// Tests: tests/engine/test_concurrent.cpp.
#pragma once
#include <cstdint>
#include <functional>

namespace scpn {

// Runs job(0) … job(count − 1), at most `at_once` at a time, each on its own CPU thread whose kernels run
// single-threaded; returns when all have finished. Jobs are handed out in index order as threads free up.
// A job that throws does not stop the others; once all have finished, the exception of the lowest-numbered
// failed job is rethrown. at_once ≤ 1 runs the jobs one after another on the calling thread with the
// kernels' usual thread count. Jobs must not share mutable state. The CPU kernels' results do not depend
// on their thread count, so a job computes the same bits either way.
void run_concurrently(int64_t count, int at_once, const std::function<void(int64_t)>& job);

}  // namespace scpn
