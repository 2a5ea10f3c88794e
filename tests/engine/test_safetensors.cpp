// Safetensors reader/writer: bit-exact round trips for every dtype, the byte layout, a file written by
// the reference Python package, every corruption refused with its exact message, atomic writes, and
// load_into refusals that leave the targets untouched.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "tests/support/check.h"

using namespace scpn;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp folder for one test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / cat("scpn_test_safetensors_", ::getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xffu);
  return s;
}

// A hand-made file: length, header text as given (no padding), then `data_bytes` bytes of data.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  write_bytes(path, le64(header.size()) + header + std::string(data_bytes, '\x5a'));
}

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
}

template <class T>
Tensor tensor_of(const std::vector<T>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dtype_of<T>());
  REQUIRE(size_t(t.numel()) == values.size());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

// Every dtype, with the values that a lossy path would damage: NaN payloads, -0, infinities,
// subnormals, integer extremes, every bf16/f16 bit pattern; plus empty tensors and 0-d scalars.
std::vector<NamedTensor> every_dtype() {
  Generator gen(11);
  Tensor f32 = normal({3, 5}, 0.0, 1.0, gen);
  float* f = f32.data<float>();
  f[0] = -0.0f;
  f[1] = std::numeric_limits<float>::infinity();
  f[2] = std::numeric_limits<float>::denorm_min();
  f[3] = bits_float(0x7fc12345u);  // NaN with a payload
  Tensor f64 = normal({2, 3, 1}, 0.0, 1.0, gen, DType::f64);
  f64.data<double>()[0] = -std::numeric_limits<double>::infinity();
  f64.data<double>()[1] = std::numeric_limits<double>::denorm_min();
  Tensor bf = Tensor::empty({256, 256}, DType::bf16), half = Tensor::empty({256, 256}, DType::f16);
  for (int i = 0; i < 65536; ++i) {
    bf.data<bf16>()[i].bits = uint16_t(i);
    half.data<f16>()[i].bits = uint16_t(65535 - i);
  }
  std::vector<uint8_t> all_bytes(256);
  std::iota(all_bytes.begin(), all_bytes.end(), uint8_t(0));
  return {
      {"weights.f32", f32},
      {"u8.all", tensor_of<uint8_t>(all_bytes, {16, 16})},
      {"double", f64},
      {"bf16.all_patterns", bf},
      {"f16.all_patterns", half},
      {"i32", tensor_of<int32_t>({std::numeric_limits<int32_t>::min(), -1, 0, 1, std::numeric_limits<int32_t>::max()}, {5})},
      {"i64", tensor_of<int64_t>({std::numeric_limits<int64_t>::min(), -1, std::numeric_limits<int64_t>::max()}, {3, 1})},
      {"empty.f32", Tensor::empty({0, 3})},
      {"empty.u8", Tensor::empty({4, 0}, DType::u8)},
      {"scalar.f64", tensor_of<double>({3.141592653589793}, {})},
      {"bn.num_batches_tracked", tensor_of<int64_t>({42}, {})},
      {"odd.u8", tensor_of<uint8_t>({1, 2, 3}, {3})},  // odd byte count before wider dtypes in input order
      {"last.f16", tensor_of<f16>({float_to_f16(1.5f)}, {1})},
  };
}

void check_same(const std::vector<NamedTensor>& actual, const std::vector<NamedTensor>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    CAPTURE(expected[i].name);
    CHECK(actual[i].name == expected[i].name);
    CHECK(actual[i].tensor.dtype() == expected[i].tensor.dtype());
    CHECK(actual[i].tensor.shape() == expected[i].tensor.shape());
    CHECK(bytes_of(actual[i].tensor) == bytes_of(expected[i].tensor));
  }
}

}  // namespace

TEST_CASE("round trip is bit-exact for every dtype, keeps the order and the metadata") {
  TempDir dir;
  std::string path = dir.file("all.safetensors");
  std::vector<NamedTensor> tensors = every_dtype();
  SafetensorsMetadata metadata{{"arch", "resnet18"}, {"format_version", "1"}, {"config", R"({"width": 64})"},
                               {"unicode", "größe ✓"}, {"empty", ""}};
  save_safetensors(path, tensors, metadata);
  SafetensorsFile back = read_safetensors(path);
  CHECK(back.path == path);
  CHECK(back.metadata == metadata);
  check_same(back.tensors, tensors);
  CHECK(back.at("i64").data<int64_t>()[0] == std::numeric_limits<int64_t>::min());
  CHECK(back.find("nope") == nullptr);
  CHECK_THROWS_WITH_AS(back.at("nope"), (path + ": tensor 'nope': not in the file").c_str(), Error);
  CHECK(dir.listing() == std::vector<std::string>{"all.safetensors"});  // no temporary left behind

  // Overwriting is fine; no metadata and no tensors are fine too.
  save_safetensors(path, {});
  SafetensorsFile nothing = read_safetensors(path);
  CHECK(nothing.tensors.empty());
  CHECK(nothing.metadata.empty());
  CHECK(read_bytes(path) == le64(8) + "{}      ");
}

TEST_CASE("byte layout: exact bytes of a small file, aligned data, header order kept") {
  TempDir dir;
  std::string path = dir.file("small.safetensors");
  save_safetensors(path, {{"w", tensor_of<float>({1.0f, -2.0f}, {2})}}, {{"k", "v"}});
  std::string json = R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  std::string data("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);  // 1.0f, -2.0f little-endian
  CHECK(read_bytes(path) == le64(padded.size()) + padded + data);

  path = dir.file("mixed.safetensors");
  std::vector<NamedTensor> tensors = every_dtype();
  save_safetensors(path, tensors);
  SafetensorsHeader h = read_safetensors_header(path);
  CHECK(h.data_start % 8 == 0);
  std::string bytes = read_bytes(path);
  CHECK(h.data_start + h.data_bytes == bytes.size());
  CHECK(bytes.substr(0, 8) == le64(h.data_start - 8));
  REQUIRE(h.entries.size() == tensors.size());
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsEntry& e = h.entries[i];
    CAPTURE(e.name);
    CHECK(e.name == tensors[i].name);  // header in the caller's order
    CHECK(e.dtype == tensors[i].tensor.dtype());
    CHECK(e.shape == tensors[i].tensor.shape());
    CHECK(e.begin % dtype_size(e.dtype) == 0);  // every tensor naturally aligned in the file
    CHECK(bytes.substr(h.data_start + e.begin, e.end - e.begin) == bytes_of(tensors[i].tensor));
    total += e.end - e.begin;
  }
  CHECK(total == h.data_bytes);
  // The JSON parses on its own with the padding (spaces only) stripped.
  std::string header_text = bytes.substr(8, h.data_start - 8);
  size_t json_end = header_text.find_last_not_of(' ') + 1;
  CHECK(header_text[json_end - 1] == '}');
  CHECK(header_text.size() - json_end < 8);
  CHECK(nlohmann::json::parse(header_text).size() == tensors.size());
}

TEST_CASE("a file written by the reference safetensors package (tools/golden/make_safetensors_fixture.py)") {
  const std::string path = "tests/data/safetensors/reference_numpy.safetensors";
  SafetensorsFile f = read_safetensors(path);
  CHECK(f.metadata == SafetensorsMetadata{{"arch", "tiny"}, {"writer", "safetensors.numpy"}});
  CHECK(f.tensors.size() == 7);
  std::vector<double> conv(18);
  for (int i = 0; i < 18; ++i) conv[size_t(i)] = (i - 9) / 4.0;
  CHECK(f.at("conv1.weight").shape() == Shape{2, 1, 3, 3});
  CHECK(f.at("conv1.weight").to_vector() == conv);
  CHECK(f.at("bn1.running_mean").dtype() == DType::f64);
  CHECK(f.at("bn1.running_mean").to_vector() == std::vector<double>{0.5, -1.25});
  CHECK(f.at("bn1.num_batches_tracked").shape() == Shape{});
  CHECK(f.at("bn1.num_batches_tracked").data<int64_t>()[0] == 7);
  CHECK(f.at("fc.bias").dtype() == DType::f16);
  CHECK(f.at("fc.bias").to_vector() == std::vector<double>{1.5, -2.0, 65504.0});
  CHECK(f.at("labels").to_vector() == std::vector<double>{-3, 0, 5, 2147483647});
  CHECK(f.at("mask").to_vector() == std::vector<double>{0, 1, 254, 255});
  CHECK(f.at("empty").shape() == Shape{0, 4});

  Tensor running_mean = zeros({2}, DType::f64), count = zeros({}, DType::i64);
  LoadIntoReport r = load_into(path, {{"bn1.running_mean", running_mean}, {"bn1.num_batches_tracked", count}},
                               {.allow_extra = true, .require_metadata = {{"arch", "tiny"}}});
  CHECK(running_mean.to_vector() == std::vector<double>{0.5, -1.25});
  CHECK(count.item() == 7);
  CHECK(r.loaded == std::vector<std::string>{"bn1.num_batches_tracked", "bn1.running_mean"});
  CHECK(r.extra == std::vector<std::string>{"conv1.weight", "empty", "fc.bias", "labels", "mask"});
}

TEST_CASE("malformed headers are refused with the file, the tensor and the reason") {
  TempDir dir;
  std::string p = dir.file("bad.safetensors");
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return cat("\"", name, "\":{\"dtype\":\"", dtype, "\",\"shape\":", shape, ",\"data_offsets\":", offsets, "}");
  };
  const std::string a8 = entry("a", "F32", "[2]", "[0,8]");
  struct Case {
    std::string header;
    size_t data_bytes;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"", 0, "header is not valid JSON (parse error at header offset 0)"},
      {R"({"a": [1,})", 0, "header is not valid JSON (parse error at header offset 9)"},
      {"[1, 2]", 0, "header is not a JSON object"},
      {cat("{", a8, ",", a8, "}"), 8, "'a' appears twice in the header"},
      {R"({"__metadata__":"x"})", 0, "__metadata__ is not a JSON object"},
      {R"({"__metadata__":{"epoch":3}})", 0, "__metadata__ value of 'epoch' is not a string"},
      {R"({"a":5})", 0, "tensor 'a': header entry is not a JSON object"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, "tensor 'a': \"dtype\" is missing or not a string"},
      {cat("{", entry("a", "F8_E4M3", "[2]", "[0,2]"), "}"), 2,
       "tensor 'a': unknown dtype 'F8_E4M3' (supported: F32, F64, BF16, F16, I32, I64, U8)"},
      {cat("{", entry("a", "f32", "[2]", "[0,8]"), "}"), 8,
       "tensor 'a': unknown dtype 'f32' (supported: F32, F64, BF16, F16, I32, I64, U8)"},
      {R"({"a":{"dtype":"F32","shape":3,"data_offsets":[0,12]}})", 12, "tensor 'a': \"shape\" is missing or not an array"},
      {cat("{", entry("a", "F32", "[2.5]", "[0,8]"), "}"), 8, "tensor 'a': \"shape\" holds something other than integers"},
      {cat("{", entry("a", "F32", "[2,-1]", "[0,8]"), "}"), 8, "tensor 'a': shape [2, -1] has a negative dimension"},
      {cat("{", entry("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), "}"), 4,
       "tensor 'a': shape [1, 1, 1, 1, 1, 1, 1, 1, 1] has more than 8 dimensions"},
      {cat("{", entry("a", "U8", "[18446744073709551615]", "[0,8]"), "}"), 8,
       "tensor 'a': shape dimension 18446744073709551615 is too large"},
      {cat("{", entry("a", "F32", "[4294967296,4294967296]", "[0,0]"), "}"), 0,
       "tensor 'a': shape [4294967296, 4294967296] is too large"},
      {cat("{", entry("a", "F32", "[2]", "[0]"), "}"), 8, "tensor 'a': \"data_offsets\" must be an array of two non-negative integers"},
      {cat("{", entry("a", "F32", "[2]", "[0,-8]"), "}"), 8, "tensor 'a': \"data_offsets\" must be an array of two non-negative integers"},
      {cat("{", entry("a", "F32", "[2]", "[8,0]"), "}"), 8, "tensor 'a': data_offsets [8, 0] end before they begin"},
      {cat("{", entry("a", "F32", "[2]", "[0,12]"), "}"), 12,
       "tensor 'a': data_offsets [0, 12] hold 12 bytes, but shape [2] of F32 needs 8"},
      {cat("{", a8, ",", entry("b", "F32", "[2]", "[4,12]"), "}"), 12,
       "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
      {cat("{", a8, ",", entry("b", "F32", "[2]", "[12,20]"), "}"), 20,
       "tensor 'b': data_offsets [12, 20] leave a hole: data bytes [8, 12) belong to no tensor"},
      {cat("{", entry("a", "F32", "[2]", "[4,12]"), "}"), 12,
       "tensor 'a': data_offsets [4, 12] leave a hole: data bytes [0, 4) belong to no tensor"},
      {cat("{", a8, "}"), 10, "data bytes [8, 10) after the last tensor belong to no tensor"},
      {cat("{", a8, "}"), 6,
       "tensor 'a': data_offsets [0, 8] run past the end of the data section (6 bytes): file truncated or offsets corrupt"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.header);
    write_raw(p, c.header, c.data_bytes);
    CHECK_THROWS_WITH_AS(read_safetensors(p), (p + ": " + c.reason).c_str(), Error);
    CHECK_THROWS_WITH_AS(read_safetensors_header(p), (p + ": " + c.reason).c_str(), Error);
  }
  // The same shapes of header are accepted when they are right, in any key order, with unknown keys.
  write_raw(p, cat(R"({"b":{"data_offsets":[8,11],"shape":[3],"dtype":"U8","note":1},"a":)", a8.substr(4), "}"), 11);
  SafetensorsFile ok = read_safetensors(p);
  CHECK(ok.tensors[0].name == "b");
  CHECK(ok.at("b").to_vector() == std::vector<double>{0x5a, 0x5a, 0x5a});
}

TEST_CASE("damaged files are refused: truncated, header length flipped, JSON byte flipped, not a file") {
  TempDir dir;
  std::string p = dir.file("model.safetensors");
  save_safetensors(p, {{"conv1.weight", full({2, 3}, 0.5)}, {"fc.bias", full({3}, 1.0, DType::f64)}});
  const std::string good = read_bytes(p);
  const uint64_t data_start = good.size() - 6 * 4 - 3 * 8;  // two 24-byte tensors follow the header
  auto damaged = [&](const std::string& bytes, const std::string& reason) {
    write_bytes(p, bytes);
    CHECK_THROWS_WITH_AS(read_safetensors(p), (p + ": " + reason).c_str(), Error);
  };
  damaged("", "file is 0 bytes, too short for the 8-byte header length (truncated or not a safetensors file)");
  damaged(good.substr(0, 5), "file is 5 bytes, too short for the 8-byte header length (truncated or not a safetensors file)");
  damaged(good.substr(0, 30), cat("header length ", data_start - 8, " runs past the end of the file (30 bytes): truncated or corrupt"));
  damaged(le64(200'000'000) + good.substr(8),
          "header length 200000000 exceeds the 100000000-byte limit (corrupt or not a safetensors file)");
  damaged(le64(good.size()) + good.substr(8),
          cat("header length ", good.size(), " runs past the end of the file (", good.size(), " bytes): truncated or corrupt"));
  // The f64 tensor is stored first (widest first), so cutting the end cuts into conv1.weight.
  damaged(good.substr(0, good.size() - 3),
          "tensor 'conv1.weight': data_offsets [24, 48] run past the end of the data section (45 bytes): file truncated "
          "or offsets corrupt");
  std::string flipped = good;
  flipped[8] = 'x';  // the opening brace
  damaged(flipped, "header is not valid JSON (parse error at header offset 0)");
  CHECK_THROWS_WITH_AS(read_safetensors(dir.file("missing.safetensors")),
                       (dir.file("missing.safetensors") + ": cannot open: No such file or directory").c_str(), Error);
  CHECK_THROWS_WITH_AS(read_safetensors(dir.path.string()), (dir.path.string() + ": not a regular file").c_str(), Error);
}

TEST_CASE("writes are atomic: a failed write names the path and leaves the old file and no temporary") {
  TempDir dir;
  std::string p = dir.file("ckpt.safetensors");
  std::vector<NamedTensor> old_tensors{{"w", full({4}, 1.0)}};
  save_safetensors(p, old_tensors, {{"epoch", "1"}});
  const std::string old_bytes = read_bytes(p);
  const std::string tmp = cat(p, ".tmp.", ::getpid());
  auto unchanged = [&] {
    CHECK(read_bytes(p) == old_bytes);
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  };

  SUBCASE("the write itself fails half-way (file size limit: EFBIG)") {
    struct rlimit saved {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // report EFBIG instead of killing the process
    struct rlimit small = saved;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"w", full({1 << 16}, 2.0)}}),
                         cat("save_safetensors: ", p, ": cannot write '", tmp, "': File too large").c_str(), Error);
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    unchanged();
  }
  SUBCASE("the folder does not exist") {
    std::string nowhere = dir.file("no/such/folder/ckpt.safetensors");
    CHECK_THROWS_WITH_AS(save_safetensors(nowhere, old_tensors),
                         cat("save_safetensors: ", nowhere, ": cannot create temporary file '", nowhere, ".tmp.",
                             ::getpid(), "': No such file or directory")
                             .c_str(),
                         Error);
    unchanged();
  }
  SUBCASE("the destination is a folder: the rename fails") {
    fs::create_directory(dir.path / "as_folder");
    std::string folder = dir.file("as_folder");
    CHECK_THROWS_WITH_AS(save_safetensors(folder, old_tensors),
                         cat("save_safetensors: ", folder, ": cannot rename '", folder, ".tmp.", ::getpid(),
                             "' over it: Is a directory")
                             .c_str(),
                         Error);
    CHECK(dir.listing() == std::vector<std::string>{"as_folder", "ckpt.safetensors"});
    CHECK(fs::is_empty(dir.path / "as_folder"));
  }
  SUBCASE("bad arguments are refused before any file is touched") {
    std::string prefix = cat("save_safetensors: ", p, ": ");
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"a", zeros({1})}, {"a", zeros({2})}}),
                         (prefix + "tensor name 'a' appears twice").c_str(), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"", zeros({1})}}), (prefix + "a tensor has an empty name").c_str(), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"__metadata__", zeros({1})}}),
                         (prefix + "'__metadata__' names the metadata and cannot name a tensor").c_str(), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"w", Tensor()}}), (prefix + "tensor 'w' is undefined").c_str(), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"w\xff", zeros({1})}}),
                         (prefix + "a tensor name or metadata string is not valid UTF-8").c_str(), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(p, {{"w", zeros({1})}}, {{"k", "\xc3"}}),
                         (prefix + "a tensor name or metadata string is not valid UTF-8").c_str(), Error);
    unchanged();
  }
  CHECK(read_safetensors(p).metadata == SafetensorsMetadata{{"epoch", "1"}});
}

TEST_CASE("load_into copies in place when everything matches") {
  TempDir dir;
  std::string p = dir.file("m.safetensors");
  Generator gen(5);
  std::vector<NamedTensor> saved{{"layer1.0.conv1.weight", normal({4, 2, 3, 3}, 0, 1, gen)},
                                 {"bn.running_var", uniform({4}, 0.5, 1.5, gen, DType::f64)},
                                 {"bn.num_batches_tracked", tensor_of<int64_t>({9}, {})},
                                 {"fc.weight", normal({3, 4}, 0, 1, gen, DType::bf16)}};
  save_safetensors(p, saved, {{"arch", "resnet18"}});
  for (bool from_path : {true, false}) {
    CAPTURE(from_path);
    Tensor arena = zeros({4 * 2 * 3 * 3 + 3});  // a parameter that is a view into a larger buffer
    std::map<std::string, Tensor> targets{{"layer1.0.conv1.weight", arena.slice(3, arena.size(0)).reshape({4, 2, 3, 3})},
                                          {"bn.running_var", zeros({4}, DType::f64)},
                                          {"bn.num_batches_tracked", zeros({}, DType::i64)},
                                          {"fc.weight", zeros({3, 4}, DType::bf16)}};
    void* storage_before = targets.at("bn.running_var").raw_data();
    LoadIntoOptions options{.require_metadata = {{"arch", "resnet18"}}};
    LoadIntoReport r = from_path ? load_into(p, targets, options) : load_into(read_safetensors(p), targets, options);
    CHECK(r.loaded.size() == 4);
    CHECK(r.missing.empty());
    CHECK(r.extra.empty());
    for (const NamedTensor& t : saved) CHECK(bytes_of(targets.at(t.name)) == bytes_of(t.tensor));
    CHECK(targets.at("bn.running_var").raw_data() == storage_before);  // overwritten in place
    CHECK(arena.to_vector()[3] == saved[0].tensor.to_vector()[0]);     // the view wrote into the arena
    CHECK(arena.to_vector()[0] == 0);
  }
}

TEST_CASE("load_into refuses mismatches and leaves every target untouched") {
  TempDir dir;
  std::string p = dir.file("ckpt.safetensors");
  save_safetensors(p, {{"a.weight", full({2, 2}, 1.0)}, {"layer1.0.conv1.weight", full({64, 64, 3, 3}, 1.0)},
                       {"z.bias", full({3}, 1.0, DType::f16)}},
                   {{"arch", "resnet34"}});
  auto targets = [] {
    return std::map<std::string, Tensor>{{"a.weight", full({2, 2}, 7.0)},
                                         {"layer1.0.conv1.weight", full({64, 64, 3, 3}, 7.0)},
                                         {"z.bias", full({3}, 7.0, DType::f16)}};
  };
  auto all_sevens = [](const std::map<std::string, Tensor>& m) {
    for (const auto& [name, t] : m)
      for (double v : t.to_vector())
        if (v != 7.0) return false;
    return true;
  };
  auto refused = [&](std::map<std::string, Tensor> m, const LoadIntoOptions& options, const std::string& message) {
    CHECK_THROWS_WITH_AS(load_into(p, m, options), message.c_str(), Error);
    CHECK(all_sevens(m));
    CHECK_THROWS_WITH_AS(load_into(read_safetensors(p), m, options), message.c_str(), Error);
    CHECK(all_sevens(m));
  };

  auto wrong_shape = targets();
  wrong_shape["layer1.0.conv1.weight"] = full({32, 64, 3, 3}, 7.0);
  refused(wrong_shape, {}, p + ": tensor 'layer1.0.conv1.weight': shape [64, 64, 3, 3] in file, [32, 64, 3, 3] expected");
  auto wrong_dtype = targets();
  wrong_dtype["z.bias"] = full({3}, 7.0);
  refused(wrong_dtype, {}, p + ": tensor 'z.bias': dtype F16 in file, F32 expected");
  auto extra_target = targets();
  extra_target["fc.weight"] = full({1}, 7.0);
  refused(extra_target, {}, p + ": tensor 'fc.weight': missing from the file");
  auto fewer = targets();
  fewer.erase("z.bias");
  refused(fewer, {}, p + ": tensor 'z.bias': in the file but not expected");
  // A different architecture: every tensor wrong; the first is described and the rest counted.
  std::map<std::string, Tensor> other{{"conv1.weight", full({8, 3, 7, 7}, 7.0)},
                                      {"a.weight", full({3, 3}, 7.0)}};
  refused(other, {},
          p + ": tensor 'a.weight': shape [2, 2] in file, [3, 3] expected (and 3 more mismatching tensors)");
  refused(targets(), {.require_metadata = {{"arch", "resnet18"}}},
          p + ": metadata 'arch' is 'resnet34' in file, 'resnet18' expected");
  refused(targets(), {.require_metadata = {{"width", "64"}}}, p + ": metadata 'width' missing from the file, '64' expected");
  CHECK_THROWS_WITH_AS(load_into(p, {{"a.weight", Tensor()}}), "load_into: target tensor 'a.weight' is undefined", Error);

  // A corrupt file is refused by the reader before any target is touched.
  std::string bytes = read_bytes(p);
  write_bytes(p, bytes.substr(0, bytes.size() - 1));
  auto t = targets();
  CHECK_THROWS_AS(load_into(p, t), Error);
  CHECK(all_sevens(t));
}

TEST_CASE("load_into with allow_missing and allow_extra reports what it skipped") {
  TempDir dir;
  std::string p = dir.file("partial.safetensors");
  save_safetensors(p, {{"backbone.w", full({2}, 3.0)}, {"old_head.w", full({5}, 3.0)}});
  std::map<std::string, Tensor> targets{{"backbone.w", zeros({2})}, {"new_head.w", full({4}, 9.0)}};
  CHECK_THROWS_WITH_AS(load_into(p, targets, {.allow_missing = true}),
                       (p + ": tensor 'old_head.w': in the file but not expected").c_str(), Error);
  CHECK_THROWS_WITH_AS(load_into(p, targets, {.allow_extra = true}),
                       (p + ": tensor 'new_head.w': missing from the file").c_str(), Error);
  CHECK(targets.at("backbone.w").to_vector() == std::vector<double>{0, 0});
  LoadIntoReport r = load_into(p, targets, {.allow_missing = true, .allow_extra = true});
  CHECK(r.loaded == std::vector<std::string>{"backbone.w"});
  CHECK(r.missing == std::vector<std::string>{"new_head.w"});
  CHECK(r.extra == std::vector<std::string>{"old_head.w"});
  CHECK(targets.at("backbone.w").to_vector() == std::vector<double>{3, 3});
  CHECK(targets.at("new_head.w").to_vector() == std::vector<double>{9, 9, 9, 9});  // kept its values
}

TEST_CASE("resource bounds: a header claiming a terabyte tensor is refused before anything is allocated") {
  TempDir dir;
  const std::string p = dir.file("huge.safetensors");
  write_raw(p, R"({"huge":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}})", 16);
  const std::string message = p + ": tensor 'huge': shape [1000000, 1000000] of F32 is 4000000000000 bytes, over the "
                                  "limit of 8589934592 bytes (8 GiB) per tensor";
  CHECK_THROWS_WITH_AS(read_safetensors_header(p), message.c_str(), Error);
  CHECK_THROWS_WITH_AS(read_safetensors(p), message.c_str(), Error);
  // Exactly the limit is a size the reader accepts; this file then fails as truncated instead.
  write_raw(p, R"({"big":{"dtype":"U8","shape":[8589934592],"data_offsets":[0,8589934592]}})", 16);
  CHECK_THROWS_WITH_AS(read_safetensors(p),
                       (p + ": tensor 'big': data_offsets [0, 8589934592] run past the end of the data section (16 bytes): "
                            "file truncated or offsets corrupt").c_str(),
                       Error);
}

TEST_CASE("corpus regression: a header number too large for JSON is refused naming the file") {
  // Found by mutating safetensors files through extract_features: the JSON library reports a number
  // like 1e3089408 as out of range, not as a parse error, and that exception named no file.
  TempDir dir;
  const std::string p = dir.file("overflow.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[1e3089408],"data_offsets":[0,4]}})", 4);
  CHECK_THROWS_WITH_AS(read_safetensors(p), (p + ": header is not valid JSON (a number is out of range)").c_str(), Error);
}
