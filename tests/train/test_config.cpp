// train_scpn's configuration: defaults, files, KEY=VALUE overrides, and every kind of bad input rejected
// with a message naming the key; docs/config.md must be the generated reference.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "kernels/common/error.h"
#include "train/config.h"

using namespace scpn;
using namespace scpn::train;

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = "/tmp/scpn_test_config_" + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("defaults are valid and overrides apply in order: defaults, file, command line") {
  TrainConfig d = parse_config("", {});
  CHECK(d.mode == TrainMode::scpn);
  CHECK(d.capacities == std::vector<double>{0.8, 0.6, 0.4, 0.2});
  std::string file = write_temp("a.json", R"({"train": {"lr": 0.05, "epochs": 3}, "model.base_width": 8})");
  TrainConfig c = parse_config(file, {"train.lr=0.01", "train.capacities=[0.5,0.25]", "train.mode=sum", "data.augment=false"});
  CHECK(c.lr == 0.01);
  CHECK(c.epochs == 3);
  CHECK(c.base_width == 8);
  CHECK(c.capacities == std::vector<double>{0.5, 0.25});
  CHECK(c.mode == TrainMode::sum);
  CHECK_FALSE(c.augment);
  // The resolved config round-trips through its JSON form.
  TrainConfig again = config_from_json(c.to_json(), "resolved");
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("bad configs are rejected naming the key") {
  CHECK_THROWS_WITH_AS(parse_config("", {"train.learning_rate=0.1"}),
                       "command line: unknown key 'train.learning_rate' (docs/config.md lists every key)", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.epochs=2.5"}), "command line: train.epochs: expected a integer, got 2.5", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.lr=fast"}), "command line: train.lr: expected a number, got \"fast\"", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.capacities=[0.5,0]"}),
                       "command line: train.capacities: [0.5,0] contains capacity 0, outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.capacities=[1.5]"}),
                       "command line: train.capacities: [1.5] contains capacity 1.5, outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.mode=fancy"}),
                       "command line: train.mode: \"fancy\" is not one of scpn, sum, parent", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.batch_size=1"}), "command line: train.batch_size: 1 must be >= 2", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"lr"}), "argument 'lr': expected KEY=VALUE", Error);
  CHECK_THROWS_WITH_AS(parse_config("/nonexistent/x.json", {}), "/nonexistent/x.json: cannot open the config file", Error);
  std::string bad = write_temp("bad.json", "{\"train\": {\"lr\": }");
  CHECK_THROWS_WITH_AS(parse_config(bad, {}), doctest::Contains((bad + ": not valid JSON").c_str()), Error);
  std::string unknown = write_temp("unknown.json", R"({"train": {"lr": 0.1, "epoch": 3}})");
  std::string expected = unknown + ": unknown key 'train.epoch' (docs/config.md lists every key)";
  CHECK_THROWS_WITH_AS(parse_config(unknown, {}), expected.c_str(), Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"device=tpu"}), "command line: device: 'tpu' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"device=cuda:"}), "command line: device: 'cuda:' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"device=cuda:-1"}),
                       "command line: device: 'cuda:-1' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)", Error);
  // The form only: a device of another machine is checked where the run starts.
  CHECK(parse_config("", {"device=cuda:7"}).device == "cuda:7");
}

TEST_CASE("every spelling of an enumerated key is read into the typed config and written back") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> choices = {
      {"model.arch", {"resnet18", "resnet34", "resnet50"}},
      {"model.stem", {"small", "imagenet", "imagenet_nopool"}},
      {"model.granularity", {"weight", "channel"}},
      {"data.dataset", {"fashion_mnist", "image_folder", "inshop", "gldv2"}},
      {"data.bad_images", {"fail", "skip"}},
      {"train.mode", {"scpn", "sum", "parent"}},
      {"train.bn_stats", {"own", "parent"}},
      {"train.schedule", {"multistep", "cosine"}},
      {"integration.semantics", {"last", "chain"}},
      {"integration.weighting", {"cosine", "none"}},
      {"integration.granularity", {"filter", "tensor"}},
  };
  for (auto& [key, values] : choices)
    for (auto& v : values) {
      CAPTURE(key);
      CAPTURE(v);
      CHECK(parse_config("", {key + "=" + v}).to_json().at(key) == v);
    }
  TrainConfig c = parse_config("", {"integration.semantics=chain", "integration.weighting=none", "integration.gamma=2",
                                    "integration.granularity=tensor", "integration.fixed_order=true"});
  CHECK(c.integration.semantics == ConflictSemantics::chain);
  CHECK(c.integration.weighting == TaskWeighting::none);
  CHECK(c.integration.gamma == 2);
  CHECK(c.integration.granularity == IntegrationGranularity::tensor);
  CHECK(c.integration.fixed_order);
}

TEST_CASE("docs/config.md is the generated reference (regenerate: train_scpn --config-doc > docs/config.md)") {
  std::ifstream in("docs/config.md");
  REQUIRE_MESSAGE(in.good(), "docs/config.md is missing");
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == config_reference_markdown());
}

TEST_CASE("every recipe in configs/ is valid, and configs/default.json is the embedded default") {
  int count = 0;
  for (const char* f : {"configs/default.json", "configs/fashion_mnist_full.json", "configs/resnet18_224_imagefolder.json",
                        "configs/resnet50_224_imagefolder.json"}) {
    CAPTURE(f);
    CHECK_NOTHROW(parse_config(f, {}));
    ++count;
  }
  CHECK(count == 4);
  CHECK(parse_config("configs/default.json", {}).to_json() == TrainConfig().to_json());
}

TEST_CASE("resource bounds: config files and values nested deeper than kMaxConfigDepth are refused while parsing") {
  auto nested = [](int levels, const std::string& open, const std::string& close) {
    std::string text;
    for (int i = 0; i < levels; ++i) text += open;
    text += "1";
    for (int i = 0; i < levels; ++i) text += close;
    return text;
  };
  // Sixteen levels pass the limit (and fail as the unknown key they are); seventeen do not.
  std::string deep_key = "a";
  for (int i = 1; i < kMaxConfigDepth; ++i) deep_key += ".a";
  std::string ok = write_temp("depth16.json", nested(kMaxConfigDepth, "{\"a\": ", "}"));
  CHECK_THROWS_WITH_AS(parse_config(ok, {}), (ok + ": unknown key '" + deep_key + "' (docs/config.md lists every key)").c_str(),
                       Error);
  std::string deep = write_temp("depth17.json", nested(kMaxConfigDepth + 1, "{\"a\": ", "}"));
  CHECK_THROWS_WITH_AS(parse_config(deep, {}), (deep + ": nested deeper than the limit of 16 levels").c_str(), Error);
  // A hundred thousand levels: refused at the seventeenth, without recursing through the rest.
  std::string hostile = write_temp("depth100k.json", nested(100000, "{\"a\": ", "}"));
  CHECK_THROWS_WITH_AS(parse_config(hostile, {}), (hostile + ": nested deeper than the limit of 16 levels").c_str(), Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.capacities=" + nested(100000, "[", "]")}),
                       "argument 'train.capacities': nested deeper than the limit of 16 levels", Error);
}

TEST_CASE("fuzz regression: an argument that is not UTF-8 is refused naming it, not by the JSON printer") {
  // Found by tools/fuzz/fuzz_config: the bare word became a string value, and the first message that
  // printed it threw the JSON library's own exception instead of ours.
  CHECK_THROWS_WITH_AS(parse_config("", {"train.steps=\"r\xd2\x9b\x9e\x93"}),
                       "argument \"train.steps=\\\"r\xd2\x9b\xef\xbf\xbd\xef\xbf\xbd\": not valid UTF-8", Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"output.dir=runs/\xff"}), "argument \"output.dir=runs/\xef\xbf\xbd\": not valid UTF-8",
                       Error);
}

TEST_CASE("fuzz regression: an argument with a control character is refused with it escaped") {
  // Found by tools/fuzz/fuzz_config: a NUL inside an argument ended the C string of the message there.
  CHECK_THROWS_WITH_AS(parse_config("", {std::string("t\0x=1", 5)}), "argument \"t\\u0000x=1\": contains a control character",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.lr=0.1\t"}), "argument \"train.lr=0.1\\t\": contains a control character",
                       Error);
}

TEST_CASE("fuzz regression: a refusal of the keys' consistency names the file or the command line") {
  // Found by tools/fuzz/fuzz_config: the checks across keys (milestones, recall_k, device, mode) ran after
  // the per-key ones and their messages did not say where the value came from.
  std::string file = write_temp("recall.json", R"({"eval": {"recall_k": [1, 0]}})");
  CHECK_THROWS_WITH_AS(parse_config(file, {}), (file + ": eval.recall_k: 0 must be >= 1").c_str(), Error);
  CHECK_THROWS_WITH_AS(parse_config("", {"train.milestones=[5,3]"}),
                       "command line: train.milestones: must be strictly increasing", Error);
  file = write_temp("device.json", R"({"device": "tpu"})");
  CHECK_THROWS_WITH_AS(parse_config(file, {}),
                       (file + ": device: 'tpu' is not a device (expected auto, cpu or cuda:N, e.g. cuda:0)").c_str(), Error);
}

TEST_CASE("corpus regression: a config number too large for JSON is refused naming the file") {
  // Found with the mutated safetensors headers: the JSON library reports 1e999 as out of range, not as a
  // parse error, and that exception named no file.
  std::string file = write_temp("huge_number.json", R"({"train": {"lr": 1e999}})");
  CHECK_THROWS_WITH_AS(parse_config(file, {}), doctest::Contains((file + ": not valid JSON ([json.exception.out_of_range.406]").c_str()),
                       Error);
}
