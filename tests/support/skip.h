// Honest skips: a test case that cannot run here (no CUDA device, a data set not installed) calls
// skip_test_case(reason). When every test case an executable ran skipped, it exits with kSkipExitCode,
// which CTest reports as "Not Run (skipped)" (SKIP_RETURN_CODE in tests/CMakeLists.txt), not as passed.
#pragma once
#include <string>

namespace scpn::test {

inline constexpr int kSkipExitCode = 77;

// Prints "skipped: <reason>" and records the current test case as skipped; the caller then returns.
void skip_test_case(const std::string& reason);

// True (after skipping the test case) when Fashion-MNIST is not installed.
bool skip_without_fashion_mnist();

}  // namespace scpn::test
