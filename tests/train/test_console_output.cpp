// train_scpn, eval, prune and extract_features run as a user runs them, their output captured through a
// pipe (not a terminal) on a tiny Fashion-MNIST run: every phase ends with a line whose count reaches its
// total, report.json holds each phase's seconds, the report's training curves have a loss series per
// trained task, and --quiet prints nothing but errors.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "kernels/common/error.h"
#include "tests/support/skip.h"
#include "tests/support/xml.h"

using namespace scpn;
namespace fs = std::filesystem;

namespace {

#if defined(SCPN_TRAIN_SCPN) && defined(SCPN_EVAL) && defined(SCPN_PRUNE) && defined(SCPN_EXTRACT_FEATURES)
constexpr bool kHaveTools = true;
const std::string kTrain = SCPN_TRAIN_SCPN, kEval = SCPN_EVAL, kPrune = SCPN_PRUNE, kExtract = SCPN_EXTRACT_FEATURES;
#else
constexpr bool kHaveTools = false;
const std::string kTrain, kEval, kPrune, kExtract;
#endif

bool skip_here() {
  if (!kHaveTools) {
    test::skip_test_case("built without the tools (SCPN_BUILD_TOOLS=OFF)");
    return true;
  }
  return test::skip_without_fashion_mnist();
}

struct Ran {
  int status = -1;
  std::string output;  // stdout and stderr together, as a log file gets them
};

Ran run(const std::string& command) {
  Ran r;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) out.push_back(text.substr(at, nl - at));
  return out;
}

// A phase's final line: "<phase>: <done>/<total> <unit> in <time> (<rate>)".
struct FinalLine {
  int64_t done = 0, total = 0;
  std::string unit;
};
std::map<std::string, FinalLine> final_lines(const std::string& output) {
  static const std::regex final_re(R"(^(.+): (\d+)/(\d+) ([a-z]+) in ([0-9.]+s|\d+m\d\ds|\d+h\d\dm) \(.+\)$)");
  std::map<std::string, FinalLine> out;
  for (const std::string& line : lines_of(output)) {
    std::smatch m;
    if (!std::regex_match(line, m, final_re)) continue;
    CHECK_MESSAGE(out.count(m[1]) == 0, "two final lines for ", m[1].str());
    out[m[1]] = {std::stoll(m[2]), std::stoll(m[3]), m[4]};
  }
  return out;
}

// The phases a tool must report, each with its total.
void check_phases(const std::string& output, const std::vector<std::pair<std::string, FinalLine>>& expected) {
  const std::map<std::string, FinalLine> found = final_lines(output);
  CAPTURE(output);
  CHECK(found.size() == expected.size());
  for (const auto& [phase, want] : expected) {
    CAPTURE(phase);
    auto it = found.find(phase);
    REQUIRE(it != found.end());
    CHECK(it->second.unit == want.unit);
    CHECK(it->second.total == want.total);
    CHECK(it->second.done == it->second.total);
  }
}

std::string temp_root() {
  static const std::string root = [] {
    std::string r = (fs::temp_directory_path() / cat("scpn_test_console_", ::getpid())).string();
    fs::remove_all(r);
    fs::create_directories(r);
    return r;
  }();
  return root;
}

// 96 training images in batches of 16 (6 steps per epoch), 40 test images; capacities 0.5 and 0.25 trained,
// 0.3 re-estimated over 2 batches.
const char* kTiny =
    " model.base_width=2 model.feature_dim=8 data.train_limit=96 data.test_limit=40 train.batch_size=16"
    " train.capacities=[0.5,0.25] eval.capacities=[1.0,0.5,0.3] eval.bn_reestimate_batches=2 device=cpu";

// The run trained once per process (two epochs), with what it printed.
const Ran& trained_run() {
  static const Ran ran = run(kTrain + kTiny + " train.epochs=2 output.dir=" + temp_root() + "/run");
  return ran;
}

}  // namespace

TEST_CASE("train_scpn in a log: every phase ends with its count at the total, report.json has the phases' seconds") {
  if (skip_here()) return;
  const Ran& r = trained_run();
  CAPTURE(r.output);
  REQUIRE(r.status == 0);
  const std::string c = "final evaluation [";
  check_phases(r.output, {{"decoding the test set", {40, 40, "images"}},
                          {"training", {192, 192, "images"}},  // 12 steps of 16
                          {"epoch 0 evaluation, features", {40, 40, "images"}},
                          {"epoch 1 evaluation, features", {40, 40, "images"}},
                          {"final evaluation, parent features", {40, 40, "images"}},
                          {c + "1/3] capacity 1.00, ranking", {80, 80, "queries"}},       // self and cross
                          {c + "2/3] capacity 0.50, features", {80, 80, "images"}},       // own and parent BN
                          {c + "2/3] capacity 0.50, ranking", {120, 120, "queries"}},     // and parent-BN cross
                          {c + "3/3] capacity 0.30, BN re-estimation", {2, 2, "batches"}},
                          {c + "3/3] capacity 0.30, features", {80, 80, "images"}},
                          {c + "3/3] capacity 0.30, ranking", {120, 120, "queries"}},
                          {"final evaluation, compatibility matrix", {360, 360, "queries"}},  // 3 x 3 x 40
                          {"final evaluation", {3, 3, "capacities"}}});
  CHECK(r.output.find("\nepoch 1: parent_test_accuracy ") != std::string::npos);
  CHECK(r.output.find("\r") == std::string::npos);  // no terminal redraws in a log
  CHECK(r.output.find("capacity trained  BN stats") != std::string::npos);

  std::ifstream in(temp_root() + "/run/report.json");
  const nlohmann::json report = nlohmann::json::parse(in);
  for (const char* key : {"capacities", "compatibility", "config", "steps"}) CHECK_MESSAGE(report.contains(key), key);
  CHECK(report["steps"] == 12);
  const nlohmann::json& seconds = report.at("phase_seconds");
  REQUIRE(seconds.at("epoch_evaluations").size() == 2);
  for (const auto& s : seconds.at("epoch_evaluations")) CHECK(s.get<double>() > 0);
  CHECK(seconds.at("training").get<double>() > 0);
  CHECK(seconds.at("final_evaluation").get<double>() > 0);
  CHECK(seconds.at("test_set_decoding").get<double>() >= 0);
}

TEST_CASE("eval, prune and extract_features in a log: their phases, and the report's curves per trained task") {
  if (skip_here()) return;
  REQUIRE(trained_run().status == 0);
  const std::string dir = temp_root() + "/run";

  Ran e = run(kEval + " --run " + dir + " --capacities 0.3 --reestimate-batches 2 --device cpu");
  REQUIRE(e.status == 0);
  check_phases(e.output, {{"decoding the test set", {40, 40, "images"}},
                          {"evaluation, parent features", {40, 40, "images"}},
                          {"evaluation [1/2] capacity 1.00, ranking", {80, 80, "queries"}},
                          {"evaluation [2/2] capacity 0.30, BN re-estimation", {2, 2, "batches"}},
                          {"evaluation [2/2] capacity 0.30, features", {80, 80, "images"}},
                          {"evaluation [2/2] capacity 0.30, ranking", {120, 120, "queries"}},
                          {"evaluation, compatibility matrix", {160, 160, "queries"}},  // 2 x 2 x 40
                          {"evaluation", {2, 2, "capacities"}}});
  CHECK(e.output.find("eval: wrote " + dir + "/eval/index.html") != std::string::npos);
  // The curves of the run: the parent and the two trained capacities.
  std::ifstream svg_in(dir + "/eval/training_curves.svg");
  const std::string svg((std::istreambuf_iterator<char>(svg_in)), std::istreambuf_iterator<char>());
  const std::vector<test::XmlElement> doc = test::parse_xml(svg);
  CHECK(test::with_class_inside(doc, "losses", "series").size() == 3);
  CHECK(test::with_class_inside(doc, "epoch-metric", "point").size() == 2);

  Ran p = run(kPrune + " --run " + dir + " --capacity 0.35 --reestimate-batches 2 --device cpu --output " + dir +
              "/p.safetensors");
  REQUIRE(p.status == 0);
  check_phases(p.output, {{"decoding the test set", {40, 40, "images"}},
                          {"prune 0.35, features (parent model)", {40, 40, "images"}},
                          {"prune 0.35, ranking (parent model)", {40, 40, "queries"}},
                          {"prune 0.35, BN re-estimation", {2, 2, "batches"}},
                          {"prune 0.35, cutting the subnetwork", {1, 1, "subnetworks"}},
                          {"prune 0.35, features (parent BN)", {40, 40, "images"}},
                          {"prune 0.35, ranking (parent BN)", {80, 80, "queries"}},
                          {"prune 0.35, features (extracted subnetwork)", {40, 40, "images"}},
                          {"prune 0.35, ranking (extracted subnetwork)", {80, 80, "queries"}}});
  CHECK(p.output.find("BatchNorm statistics: re-estimated over 2 training batches") != std::string::npos);

  // Five images of the model's input size through the parent, two at a time.
  const std::string images = dir + "/images.safetensors";
  Tensor batch = Tensor::empty({5, 1, 28, 28}, DType::f32);
  for (int64_t i = 0; i < batch.numel(); ++i) batch.data<float>()[i] = float(i % 17) / 17.0f - 0.5f;
  save_safetensors(images, {{"images", batch}});
  Ran f = run(kExtract + " --checkpoint " + dir + "/final.safetensors --input " + images +
              " --capacity 1 --batch-size 2 --device cpu --output " + dir + "/features.safetensors");
  REQUIRE(f.status == 0);
  check_phases(f.output, {{"extract_features, features", {5, 5, "images"}}});
}

TEST_CASE("--quiet: train_scpn and the tools print nothing, and still print their errors") {
  if (skip_here()) return;
  REQUIRE(trained_run().status == 0);
  const std::string dir = temp_root() + "/run", quiet_dir = temp_root() + "/quiet";
  const Ran train = run(kTrain + kTiny + " train.epochs=1 --quiet output.dir=" + quiet_dir);
  CHECK(train.status == 0);
  CHECK(train.output == "");
  CHECK(fs::exists(quiet_dir + "/report.json"));

  const Ran e = run(kEval + " --run " + dir + " --capacities 0.3 --reestimate-batches 2 --device cpu --quiet --output " +
                    quiet_dir + "/eval");
  CHECK(e.status == 0);
  CHECK(e.output == "");
  CHECK(fs::exists(quiet_dir + "/eval/training_curves.svg"));
  const Ran p = run(kPrune + " --run " + dir + " --capacity 0.35 --reestimate-batches 2 --device cpu --quiet --output " +
                    quiet_dir + "/p.safetensors");
  CHECK(p.status == 0);
  CHECK(p.output == "");
  CHECK(fs::exists(quiet_dir + "/p.safetensors"));
  const std::string images = quiet_dir + "/images.safetensors";
  save_safetensors(images, {{"images", Tensor::empty({3, 1, 28, 28}, DType::f32)}});
  const Ran f = run(kExtract + " --checkpoint " + dir + "/final.safetensors --input " + images +
                    " --capacity 1 --device cpu --quiet --output " + quiet_dir + "/features.safetensors");
  CHECK(f.status == 0);
  CHECK(f.output == "");
  CHECK(fs::exists(quiet_dir + "/features.safetensors"));

  // Errors: one line each, exit status 1.
  const Ran bad_train = run(kTrain + " --quiet train.nonsense=1");
  CHECK(bad_train.status == 1);
  CHECK(lines_of(bad_train.output).size() == 1);
  CHECK(bad_train.output.rfind("train_scpn: error: ", 0) == 0);
  const Ran bad_eval = run(kEval + " --quiet --run " + quiet_dir + "/nowhere");
  CHECK(bad_eval.status == 1);
  CHECK(bad_eval.output == "eval: error: --run " + quiet_dir + "/nowhere: no such folder\n");
  const Ran bad_prune = run(kPrune + " --quiet --run " + dir + " --capacity 0 --output " + quiet_dir + "/q.safetensors");
  CHECK(bad_prune.status == 1);
  CHECK(bad_prune.output == "prune: error: --capacity: capacity 0 is outside (0, 1]\n");
  const Ran bad_extract = run(kExtract + " --quiet=yes");
  CHECK(bad_extract.status == 1);
  CHECK(bad_extract.output == "extract_features: error: --quiet takes no value\n");
}
