// Model checkpoints (models/checkpoint.h): bit-exact save → load round trips, bad checkpoints refused with
// their exact message and the live model untouched, and torchvision-named state dicts loaded.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "tests/support/check.h"

using namespace scpn;
using namespace scpn::models;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / cat("scpn_test_checkpoint_", ::getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A ResNet-18 (or 34) small enough for a test: widths 4/8/16/32, 3x3 stem, D = 8, 5 classes, statistics
// for capacities 0.8 and 0.5.
ResNetConfig tiny_config(const std::string& arch = "resnet18", Granularity g = Granularity::weight) {
  ResNetConfig c = ResNetConfig::named(arch);
  c.stem = Stem::small;
  c.base_width = 4;
  c.feature_dim = 8;
  c.num_classes = 5;
  c.granularity = g;
  c.bn_capacities = {0.8, 0.5};
  return c;
}

// Every tensor random (variances positive), so a tensor left at its initial value or swapped with another
// cannot pass for loaded.
void randomise(const ResNet& model, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, t] : model.state()) {
    bool var = name.find("running_var") != std::string::npos;
    t.copy_(uniform(t.shape(), var ? 0.5 : -1.0, var ? 1.5 : 1.0, gen, t.dtype()));
  }
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.raw_data()), t.nbytes()); }

std::map<std::string, std::string> snapshot(const ResNet& model) {
  std::map<std::string, std::string> out;
  for (auto& [name, t] : model.state()) out[name] = bytes_of(t);
  return out;
}

std::vector<NamedTensor> named_state(const ResNet& model) {
  std::vector<NamedTensor> out;
  for (auto& [name, t] : model.state()) out.push_back({name, t.detach()});
  return out;
}

// Bitwise equality of two outputs (compare with zero tolerance would accept -0 for +0; bytes don't).
void check_same_bits(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  CHECK(bytes_of(a) == bytes_of(b));
}

void check_round_trip(const ResNetConfig& config, DType dtype) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  Generator gen(1);
  ResNet model(config, gen, dtype);
  model.add_bn_capacity(0.35);  // added after construction: the checkpoint must still rebuild it
  randomise(model, 11);
  save_model(path, model, {{"epoch", "3"}, {"source", "test"}});

  SafetensorsHeader h = read_safetensors_header(path);
  CHECK(h.metadata.at("format") == "scpn-model");
  CHECK(h.metadata.at("format_version") == "1");
  CHECK(h.metadata.at("epoch") == "3");
  CHECK(h.metadata.at("source") == "test");
  CHECK(h.metadata.size() == 5);
  ResNetConfig recorded = ResNetConfig::from_json(nlohmann::json::parse(h.metadata.at("model_config")));
  CHECK(recorded.bn_capacities == std::vector<double>{0.8, 0.5, 0.35});
  CHECK(recorded.granularity == config.granularity);
  CHECK(recorded.to_json().dump() == checkpoint_config(model).to_json().dump());
  CHECK(h.entries.size() == model.state().size());

  std::unique_ptr<ResNet> back = load_model(path);
  CHECK(back->config().to_json() == recorded.to_json());
  nn::NamedTensors want = model.state(), got = back->state();
  REQUIRE(want.size() == got.size());
  std::set<std::string> per_capacity;
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second.dtype() == dtype);
    CHECK(got[i].second.shape() == want[i].second.shape());
    CHECK(bytes_of(got[i].second) == bytes_of(want[i].second));
    if (want[i].first.find('@') != std::string::npos) per_capacity.insert(want[i].first);
  }
  CHECK(per_capacity.count("layer1.0.bn1.running_mean@0.80"));
  CHECK(per_capacity.count("layer4.0.bn2.running_var@0.35"));
  CHECK(per_capacity.count("feature_bn.running_var@0.50"));
  CHECK(per_capacity.size() == 2 * 3 * model.batch_norms().size());

  // Same outputs, bit for bit, with each capacity's own statistics and with the parent's.
  model.eval();
  back->eval();
  Generator input_gen(5);
  Tensor x = uniform({3, 3, 12, 12}, -1.0, 1.0, input_gen, dtype);
  for (double c : {1.0, 0.8, 0.5, 0.35}) {
    for (BnStatsMode mode : {BnStatsMode::own, BnStatsMode::parent}) {
      CAPTURE(c);
      ForwardContext ctx{c, mode};
      ResNetOutput a = model.forward(x, ctx), b = back->forward(x, ctx);
      check_same_bits(a.feature, b.feature);
      check_same_bits(a.logits, b.logits);
    }
  }
  // Own statistics differ from the parent's, so the round trip really carried them.
  ForwardContext own{0.5, BnStatsMode::own}, parent{0.5, BnStatsMode::parent};
  CHECK(bytes_of(back->forward(x, own).feature) != bytes_of(back->forward(x, parent).feature));

  // load_model_into a model with other values of the same architecture gives the same tensors.
  Generator gen2(2);
  ResNet other(config, gen2, dtype);
  other.add_bn_capacity(0.35);
  CHECK(snapshot(other) != snapshot(model));
  load_model_into(path, other);
  CHECK(snapshot(other) == snapshot(model));
}

}  // namespace

TEST_CASE("save_model → load_model is bit-exact: weight granularity, f32") {
  check_round_trip(tiny_config("resnet18", Granularity::weight), DType::f32);
}

TEST_CASE("save_model → load_model is bit-exact: channel granularity, f64, ResNet-50 (bottleneck)") {
  ResNetConfig c = tiny_config("resnet50", Granularity::channel);
  c.layers = {1, 1, 1, 1};
  c.arch = "custom";
  check_round_trip(c, DType::f64);
}

TEST_CASE("save_model refuses metadata keys of the format and reports write errors with the path") {
  TempDir dir;
  Generator gen(1);
  ResNet model(tiny_config(), gen);
  std::string path = dir.file("m.safetensors");
  CHECK_THROWS_WITH_AS(save_model(path, model, {{"model_config", "{}"}}),
                       ("save_model: " + path + ": metadata key 'model_config' is reserved for the checkpoint format").c_str(),
                       Error);
  CHECK_FALSE(fs::exists(path));
  std::string no_folder = dir.file("missing/m.safetensors");
  CHECK_THROWS_AS(save_model(no_folder, model), Error);
}

TEST_CASE("bad checkpoints are refused with their exact message and the live model untouched") {
  TempDir dir;
  Generator gen(1);
  ResNet source(tiny_config(), gen);
  randomise(source, 21);
  std::string good = dir.file("good.safetensors");
  save_model(good, source);
  const SafetensorsMetadata ours = read_safetensors_header(good).metadata;

  Generator gen2(2);
  ResNet live(tiny_config(), gen2);
  randomise(live, 22);
  const auto before = snapshot(live);

  // Each case: the file, the message load_model_into gives, and whether load_model gives the same (a
  // config mismatch needs a live model).
  auto refused = [&](const std::string& path, const std::string& reason, bool load_model_too = true) {
    std::string message = path + ": " + reason;
    CHECK_THROWS_WITH_AS(load_model_into(path, live), message.c_str(), Error);
    CHECK(snapshot(live) == before);
    if (load_model_too) CHECK_THROWS_WITH_AS(load_model(path), message.c_str(), Error);
  };
  auto with_state = [&](const std::string& name, std::vector<NamedTensor> tensors, const SafetensorsMetadata& m) {
    std::string path = dir.file(name);
    save_safetensors(path, tensors, m);
    return path;
  };
  auto replaced = [&](const std::string& name, const Tensor& value) {
    std::vector<NamedTensor> tensors = named_state(source);
    for (NamedTensor& t : tensors)
      if (t.name == name) t.tensor = value;
    return tensors;
  };

  SUBCASE("truncated file") {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string path = dir.file("truncated.safetensors");
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 4));
    SafetensorsHeader h = read_safetensors_header(good);
    const SafetensorsEntry* last = &h.entries.front();
    for (const SafetensorsEntry& e : h.entries)
      if (e.end > last->end) last = &e;
    refused(path, cat("tensor '", last->name, "': data_offsets [", last->begin, ", ", last->end,
                      "] run past the end of the data section (", h.data_bytes - 4,
                      " bytes): file truncated or offsets corrupt"));
  }
  SUBCASE("a different architecture: ResNet-34 checkpoint, ResNet-18 model") {
    Generator g(3);
    ResNet resnet34(tiny_config("resnet34"), g);
    std::string path = dir.file("resnet34.safetensors");
    save_model(path, resnet34);
    refused(path, "model config 'arch' is \"resnet34\" in the file, \"resnet18\" expected", false);
    CHECK(load_model(path)->config().arch == "resnet34");
  }
  SUBCASE("other BatchNorm capacities, other widths") {
    ResNetConfig c = tiny_config();
    c.bn_capacities = {0.8};
    Generator g(3);
    ResNet fewer(c, g);
    std::string path = dir.file("fewer.safetensors");
    save_model(path, fewer);
    refused(path, "model config 'bn_capacities' is [0.8] in the file, [0.8,0.5] expected", false);
    c = tiny_config();
    c.base_width = 8;
    ResNet wider(c, g);
    save_model(path, wider);
    refused(path, "model config 'base_width' is 8 in the file, 4 expected", false);
  }
  SUBCASE("missing tensor") {
    std::vector<NamedTensor> tensors = named_state(source);
    tensors.erase(std::find_if(tensors.begin(), tensors.end(),
                               [](const NamedTensor& t) { return t.name == "layer2.1.conv2.score"; }));
    refused(with_state("missing.safetensors", tensors, ours), "tensor 'layer2.1.conv2.score': missing from the file");
  }
  SUBCASE("extra tensor") {
    std::vector<NamedTensor> tensors = named_state(source);
    tensors.push_back({"fc.weight", zeros({5, 8})});
    refused(with_state("extra.safetensors", tensors, ours), "tensor 'fc.weight': in the file but not expected");
  }
  SUBCASE("wrong shape") {
    refused(with_state("shape.safetensors", replaced("projector.weight", zeros({8, 31})), ours),
            "tensor 'projector.weight': shape [8, 31] in file, [8, 32] expected");
  }
  SUBCASE("wrong dtype (no conversion)") {
    refused(with_state("dtype.safetensors", replaced("layer3.0.bn1.running_var@0.50", ones({16}, DType::f64)), ours),
            "tensor 'layer3.0.bn1.running_var@0.50': dtype F64 in file, F32 expected");
  }
  SUBCASE("several wrong tensors: the first by name, and how many more") {
    std::vector<NamedTensor> tensors = replaced("layer1.0.bn1.bias", zeros({5}));
    tensors.push_back({"aaa", zeros({1})});
    refused(with_state("several.safetensors", tensors, ours),
            "tensor 'layer1.0.bn1.bias': shape [5] in file, [4] expected (and 1 more mismatching tensors)");
  }
  SUBCASE("metadata missing: a plain state dict") {
    refused(with_state("plain.safetensors", named_state(source), {}),
            "not an SCPN model checkpoint: metadata 'format' is missing");
  }
  SUBCASE("metadata of another format or version, or without a config") {
    SafetensorsMetadata m = ours;
    m["format"] = "pt";
    refused(with_state("format.safetensors", named_state(source), m),
            "not an SCPN model checkpoint: metadata 'format' is 'pt', 'scpn-model' expected");
    m = ours;
    m["format_version"] = "2";
    refused(with_state("version.safetensors", named_state(source), m),
            "checkpoint format_version '2' is not supported (this build reads '1')");
    m = ours;
    m.erase("format_version");
    refused(with_state("noversion.safetensors", named_state(source), m), "metadata 'format_version' is missing");
    m = ours;
    m.erase("model_config");
    refused(with_state("noconfig.safetensors", named_state(source), m), "metadata 'model_config' is missing");
  }
  SUBCASE("an invalid model config: from_json's message, prefixed with the path") {
    SafetensorsMetadata m = ours;
    m["model_config"] = "{\"arch\": \"resnet18\", \"base_width\": 0}";
    refused(with_state("width0.safetensors", named_state(source), m), "model.base_width: 0 is outside [1, 1024]");
    m["model_config"] = "{\"arch\": \"resnet18\", \"depth\": 18}";
    refused(with_state("unknown.safetensors", named_state(source), m), "model.depth: unknown key");
    m["model_config"] = "{\"arch\": \"resnet18\",";
    refused(with_state("notjson.safetensors", named_state(source), m), "metadata 'model_config' is not valid JSON");
    // Corpus regression: a number too large for JSON is out_of_range, not a parse error, to the library.
    m["model_config"] = "{\"arch\": \"resnet18\", \"base_width\": 1e999}";
    refused(with_state("overflow.safetensors", named_state(source), m), "metadata 'model_config' is not valid JSON");
  }
  SUBCASE("no file") {
    refused(dir.file("absent.safetensors"), "cannot open: No such file or directory");
  }
}

// ---- torchvision state dicts -------------------------------------------------------------------------

namespace {

bool ours_only(const std::string& name) {
  for (const char* prefix : {"projector.", "feature_bn.", "classifier."})
    if (name.rfind(prefix, 0) == 0) return true;
  return name.find('@') != std::string::npos ||
         (name.size() > 6 && name.compare(name.size() - 6, 6, ".score") == 0);
}

// What torchvision's resnet18(num_classes=1000).state_dict() holds for this width: our names without ours,
// "num_batches_tracked" (0-d int64) in every BatchNorm, and "fc.*". Values from `reference`.
std::vector<NamedTensor> torchvision_state(const ResNet& reference) {
  std::vector<NamedTensor> out;
  for (auto& [name, t] : reference.state()) {
    if (ours_only(name)) continue;
    out.push_back({name, t.detach()});
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".running_mean") == 0)
      out.push_back({name.substr(0, name.size() - 13) + ".num_batches_tracked", full({}, 7, DType::i64)});
  }
  int64_t channels = reference.config().feature_channels();
  out.push_back({"fc.weight", full({1000, channels}, 0.5)});
  out.push_back({"fc.bias", zeros({1000})});
  return out;
}

}  // namespace

TEST_CASE("load_torchvision_resnet loads conv/bn/layer tensors, skips fc and num_batches_tracked") {
  TempDir dir;
  Generator ref_gen(7);
  ResNet reference(tiny_config(), ref_gen);
  randomise(reference, 70);
  std::string path = dir.file("resnet18_tv.safetensors");
  std::vector<NamedTensor> tv = torchvision_state(reference);
  save_safetensors(path, tv, {{"source", "torchvision names"}});

  Generator gen(3);
  ResNet model(tiny_config(), gen);
  randomise(model, 30);
  const auto before = snapshot(model);
  TorchvisionLoadSummary s = load_torchvision_resnet(path, model);

  // Expected sets, from the names alone.
  std::vector<std::string> loaded, skipped, kept, seeded;
  for (const NamedTensor& t : tv)
    (t.name.rfind("fc.", 0) == 0 || t.name.find("num_batches_tracked") != std::string::npos ? skipped : loaded)
        .push_back(t.name);
  for (auto& [name, t] : model.state()) {
    if (!ours_only(name)) continue;
    bool capacity_stat = name.find('@') != std::string::npos && name.rfind("feature_bn.", 0) != 0;
    (capacity_stat ? seeded : kept).push_back(name);
  }
  for (auto* v : {&loaded, &skipped, &kept, &seeded}) std::sort(v->begin(), v->end());
  CHECK(s.loaded == loaded);
  CHECK(s.skipped == skipped);
  CHECK(s.left_initialised == kept);
  CHECK(s.seeded_capacity_stats == seeded);
  // ResNet-18: 20 BatchNorms with 4 tensors and 20 convs (stem, 16 in blocks, 3 downsample) → 100 loaded.
  CHECK(loaded.size() == 100);
  CHECK(skipped.size() == 22);
  CHECK(seeded.size() == 20 * 4);
  CHECK(s.loaded.size() + s.left_initialised.size() + s.seeded_capacity_stats.size() == model.state().size());

  std::map<std::string, Tensor> ref_state, state;
  for (auto& [name, t] : reference.state()) ref_state[name] = t;
  for (auto& [name, t] : model.state()) state[name] = t;
  for (const std::string& name : loaded) CHECK_MESSAGE(bytes_of(state.at(name)) == bytes_of(ref_state.at(name)), name);
  for (const std::string& name : kept) CHECK_MESSAGE(bytes_of(state.at(name)) == before.at(name), name);
  for (const std::string& name : seeded) {
    std::string parent = name.substr(0, name.find('@'));
    CHECK_MESSAGE(bytes_of(state.at(name)) == bytes_of(ref_state.at(parent)), name);
  }
}

TEST_CASE("load_torchvision_resnet refuses what does not fit, leaving the model untouched") {
  TempDir dir;
  Generator ref_gen(7);
  ResNet reference(tiny_config(), ref_gen);
  Generator gen(3);
  ResNet model(tiny_config(), gen);
  randomise(model, 30);
  const auto before = snapshot(model);
  auto refused = [&](const std::string& path, const std::string& reason) {
    CHECK_THROWS_WITH_AS(load_torchvision_resnet(path, model), (path + ": " + reason).c_str(), Error);
    CHECK(snapshot(model) == before);
  };
  std::string path = dir.file("tv.safetensors");

  SUBCASE("another width: every tensor's shape differs") {
    ResNetConfig c = tiny_config();
    c.base_width = 8;
    Generator g(1);
    ResNet wider(c, g);
    std::vector<NamedTensor> tv = torchvision_state(wider);
    save_safetensors(path, tv);
    refused(path, "tensor 'bn1.bias': shape [8] in file, [4] expected (and 99 more mismatching tensors)");
  }
  SUBCASE("a tensor of another architecture") {
    std::vector<NamedTensor> tv = torchvision_state(reference);
    tv.push_back({"layer1.0.conv3.weight", zeros({16, 4, 1, 1})});
    tv.push_back({"layer1.0.bn3.weight", zeros({16})});
    save_safetensors(path, tv);
    refused(path, "tensor 'layer1.0.bn3.weight': not a tensor of this model (a state dict of another architecture "
                  "than resnet18?) (and 1 more)");
  }
  SUBCASE("a missing tensor") {
    std::vector<NamedTensor> tv = torchvision_state(reference);
    tv.erase(std::find_if(tv.begin(), tv.end(), [](const NamedTensor& t) { return t.name == "layer4.1.bn2.running_var"; }));
    save_safetensors(path, tv);
    refused(path, "tensor 'layer4.1.bn2.running_var': missing from the file");
  }
  SUBCASE("float64 weights for a float32 model") {
    std::vector<NamedTensor> tv = torchvision_state(reference);
    for (NamedTensor& t : tv)
      if (t.name == "conv1.weight") t.tensor = t.tensor.to(DType::f64);
    save_safetensors(path, tv);
    refused(path, "tensor 'conv1.weight': dtype F64 in file, F32 expected");
  }
  SUBCASE("one of our checkpoints") {
    save_model(path, reference);
    refused(path, "is an SCPN checkpoint, not a torchvision state dict; use load_model");
  }
}

TEST_CASE("resource bounds: a model config claiming more than the file holds is refused before the model is built") {
  TempDir dir;
  Generator gen(1);
  ResNet source(tiny_config(), gen);
  const std::string good = dir.file("good.safetensors");
  save_model(good, source);
  SafetensorsFile file = read_safetensors(good);
  const uint64_t data_bytes = read_safetensors_header(good).data_bytes;
  auto with_config = [&](const std::string& name, const nlohmann::json& config) {
    SafetensorsMetadata metadata = file.metadata;
    metadata["model_config"] = config.dump();
    const std::string path = dir.file(name);
    save_safetensors(path, file.tensors, metadata);
    return path;
  };
  nlohmann::json config = tiny_config().to_json();
  // A billion classes: the classifier alone would be 8 x 10^9 floats.
  config["num_classes"] = 1000000000;
  std::string path = with_config("classes.safetensors", config);
  CHECK_THROWS_WITH_AS(load_model(path),
                       cat(path, ": metadata 'model_config' describes a model of at least 32000175792 bytes, but the "
                                 "file's tensors hold ", data_bytes, " bytes (corrupt model config?)").c_str(),
                       Error);
  // The widest, deepest custom network the config allows: terabytes of convolution weights.
  config = tiny_config().to_json();
  config["arch"] = "custom";
  config["base_width"] = 1024;
  config["layers"] = {64, 64, 64, 64};
  path = with_config("wide.safetensors", config);
  CHECK_THROWS_WITH_AS(load_model(path), doctest::Contains("describes a model of at least"), Error);
  // A compact model whose inner widths claim more than the file holds.
  config = tiny_config().to_json();
  config["granularity"] = "channel";
  config["inner_widths"] = {{"layer1.0.conv1", 4000000000}};
  path = with_config("compact.safetensors", config);
  CHECK_THROWS_WITH_AS(load_model(path), doctest::Contains("describes a model of at least"), Error);
  // The true config passes the bound: the model loads bit-exact.
  CHECK(load_model(good)->config().num_classes == 5);
}
