// The doctest main shared by every test executable: takes the op harness's --checks, runs the cases, then
// exits with the skip code when every case that ran skipped itself (tests/support/skip.h).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tests/support/op_harness.h"
#include "tests/support/skip.h"

namespace scpn::test {

namespace {

std::set<std::string>& skipped_cases() {
  static std::set<std::string> names;
  return names;
}

int& cases_started() {
  static int count = 0;
  return count;
}

// Counts the test cases that start (a listener sees every case, whatever the reporter).
struct CaseCounter : doctest::IReporter {
  explicit CaseCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++cases_started(); }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

void skip_test_case(const std::string& reason) {
  std::printf("skipped: %s\n", reason.c_str());
  std::fflush(stdout);
  MESSAGE("skipped: " << reason);
  skipped_cases().insert(doctest::getContextOptions()->currentTest
                             ? std::string(doctest::getContextOptions()->currentTest->m_name)
                             : std::string("?"));
}

bool skip_without_fashion_mnist() {
  if (std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) return false;
  skip_test_case("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
  return true;
}

}  // namespace scpn::test

DOCTEST_REGISTER_LISTENER("scpn_case_counter", 1, scpn::test::CaseCounter);

int main(int argc, char** argv) {
  // --checks=... selects the op harness's checks (tests/support/op_harness.h); the rest is doctest's.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--checks=", 0) == 0) {
      try {
        scpn::test::select_op_checks(arg.substr(9));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  doctest::Context context(int(args.size()), args.data());
  const int failures = context.run();
  if (failures != 0 || context.shouldExit()) return failures;
  const int skipped = int(scpn::test::skipped_cases().size());
  const int started = scpn::test::cases_started();
  if (started == 0) {
    std::printf("no test case ran (a filter that matches nothing?)\n");
    return 1;
  }
  if (skipped > 0 && skipped >= started) {
    std::printf("all %d test case(s) skipped\n", started);
    return scpn::test::kSkipExitCode;
  }
  if (skipped > 0) std::printf("%d of %d test case(s) skipped\n", skipped, started);
  return 0;
}
