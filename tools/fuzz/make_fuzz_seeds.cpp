// make_fuzz_seeds OUT_DIR [FASHION_MNIST_DIR]: writes the starting inputs of the reliability checks with
// the project's own writers: OUT_DIR/seeds/<harness>/ (one folder per libFuzzer harness of tools/fuzz/)
// and OUT_DIR/valid/ (small valid files and data trees that tools/reliability/corpus.py mutates).
// IDX seeds are the first images of Fashion-MNIST when its folder is given, else synthetic.
#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/checkpoint.h"
#include "tests/train/data_fixtures.h"

using namespace scpn;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<unsigned char>;

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A gzip stream of `plain` (zlib with a gzip wrapper: window bits 15 + 16).
Bytes gzip(const Bytes& plain) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw Error("deflateInit2 failed");
  Bytes out(deflateBound(&z, uLong(plain.size())) + 32);
  z.next_in = const_cast<Bytef*>(plain.data());
  z.avail_in = uInt(plain.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  int rc = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error("deflate failed");
  out.resize(z.total_out);
  return out;
}

// The header and first `count` records of an IDX file (gzip or plain), with the count rewritten.
Bytes idx_head(const std::string& path, uint32_t count, size_t record_bytes, size_t header_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(cat("cannot open ", path));
  Bytes out(header_bytes + count * record_bytes);
  int got = gzread(f, out.data(), unsigned(out.size()));
  gzclose(f);
  if (got != int(out.size())) throw Error(cat(path, ": shorter than ", out.size(), " bytes"));
  for (int i = 0; i < 4; ++i) out[4 + size_t(i)] = (unsigned char)(count >> (24 - 8 * i));
  return out;
}

Bytes synthetic_idx(bool images, uint32_t count) {
  Bytes out = {0, 0, 8, (unsigned char)(images ? 3 : 1)};
  std::vector<uint32_t> dims = {count};
  if (images) dims.insert(dims.end(), {4, 3});
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back((unsigned char)(d >> s));
  for (uint32_t i = 0; i < count * (images ? 12u : 1u); ++i) out.push_back((unsigned char)(images ? i * 37 : i % 10));
  return out;
}

// Two parts for fuzz_support.h's InputParts: a 2-byte length, the first part, then the second.
Bytes two_parts(const Bytes& first, const Bytes& second) {
  Bytes out = {(unsigned char)(first.size() & 0xff), (unsigned char)(first.size() >> 8)};
  out.insert(out.end(), first.begin(), first.end());
  out.insert(out.end(), second.begin(), second.end());
  return out;
}

Bytes pixels(int w, int h, int c, int seed) {
  Bytes p(size_t(w * h * c));
  for (size_t i = 0; i < p.size(); ++i) p[i] = (unsigned char)((i * 29 + size_t(seed) * 71) & 0xff);
  return p;
}

struct Writer {
  fs::path root;
  std::string file(const std::string& rel) const {
    fs::path p = root / rel;
    fs::create_directories(p.parent_path());
    return p.string();
  }
  void bytes(const std::string& rel, const Bytes& b) const { test::write_bytes(file(rel), b); }
  void text(const std::string& rel, const std::string& t) const { test::write_text(file(rel), t); }
  Bytes read(const std::string& rel) const { return test::read_bytes((root / rel).string()); }
};

// PNG and JPEG images of 1 and 3 channels; returns their file names under `dir`.
std::vector<std::string> write_images(const Writer& w, const std::string& dir, int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    const int c = i % 2 ? 3 : 1, width = 6 + i % 3, height = 5 + i % 4;
    std::string name = cat("img", i, i % 3 == 2 ? ".jpg" : ".png");
    if (i % 3 == 2) test::write_jpeg(w.file(dir + "/" + name), width, height, c, pixels(width, height, c, i), 90);
    else test::write_png(w.file(dir + "/" + name), width, height, c, pixels(width, height, c, i));
    names.push_back(name);
  }
  return names;
}

models::ResNetConfig tiny_model(int64_t in_channels, int64_t classes) {
  models::ResNetConfig c = models::ResNetConfig::named("resnet18");
  c.stem = models::Stem::small;
  c.in_channels = in_channels;
  c.base_width = 2;
  c.feature_dim = 4;
  c.num_classes = classes;
  return c;
}

void write_checkpoint(const std::string& path, const models::ResNetConfig& config) {
  Generator gen(7);
  models::ResNet model(config, gen);
  models::save_model(path, model);
}

void write_seeds(const Writer& seeds, const Writer& valid, const std::string& fashion_mnist) {
  // decode: the first byte picks the channel count (fuzz_decode.cpp).
  for (const std::string& name : write_images(valid, "images", 6)) {
    for (unsigned char channels : {0, 1}) {
      Bytes b = {channels};
      Bytes img = valid.read("images/" + name);
      b.insert(b.end(), img.begin(), img.end());
      seeds.bytes(cat("decode/", name, ".", int(channels)), b);
    }
  }
  // idx: images then labels, plain and gzip-compressed.
  Bytes images = synthetic_idx(true, 3), labels = synthetic_idx(false, 3);
  if (!fashion_mnist.empty()) {
    images = idx_head(fashion_mnist + "/t10k-images-idx3-ubyte.gz", 3, 28 * 28, 16);
    labels = idx_head(fashion_mnist + "/t10k-labels-idx1-ubyte.gz", 3, 1, 8);
  }
  seeds.bytes("idx/plain", two_parts(images, labels));
  seeds.bytes("idx/gzip", two_parts(gzip(images), gzip(labels)));
  seeds.bytes("idx/synthetic", two_parts(synthetic_idx(true, 2), synthetic_idx(false, 2)));
  // The list readers.
  seeds.text("inshop/partition",
             "5\nimage_name item_id evaluation_status\nimg/a/1.jpg id_01 train\nimg/a/2.jpg id_01 train\n"
             "img/b/1.jpg id_02 query\nimg/b/2.jpg id_02 gallery\nimg/c/1.jpg id_03 gallery\n");
  seeds.text("gldv2/train.csv", "id,url,landmark_id\nabc123,http://x/1.jpg,7\nabd456,\"http://x/2,3.jpg\",7\nfff000,,12\n");
  seeds.text("list_file/list", "a/1.png 0\nb b/2.png 1\n/abs/3.jpg 2\n\n");
  // config: the file, then overrides one per line.
  seeds.bytes("config/plain", two_parts(text_bytes(R"({"model": {"arch": "resnet18", "base_width": 4}, "train": {"lr": 0.05, "capacities": [0.5]}})"),
                                        text_bytes("train.steps=1\ndata.dataset=image_folder")));
  seeds.bytes("config/flat", two_parts(text_bytes(R"({"train.epochs": 1, "eval.recall_k": [1, 5], "device": "cpu"})"), {}));
  // safetensors and checkpoints.
  Generator gen(3);
  save_safetensors(seeds.file("safetensors/sample"),
                   {{"w", normal({2, 3}, 0.0, 1.0, gen)}, {"b", zeros({3}, DType::f64)},
                    {"h", zeros({2}, DType::f16)}, {"i", zeros({1}, DType::i64)}, {"u", zeros({3}, DType::u8)},
                    {"e", zeros({0, 2})}},
                   {{"note", "seed"}});
  write_checkpoint(seeds.file("checkpoint/tiny"), tiny_model(1, 2));
}

// Small valid inputs of the tools for tools/reliability/corpus.py: a Fashion-MNIST slice, an image
// folder tree, In-shop and GLDv2 trees, and the images tensor extract_features reads (the corpus driver
// writes its checkpoints with init_checkpoint).
void write_valid(const Writer& valid, const std::string& fashion_mnist) {
  if (!fashion_mnist.empty()) {
    for (const char* split : {"train", "t10k"}) {
      valid.bytes(cat("idx/", split, "-images-idx3-ubyte.gz"),
                  gzip(idx_head(cat(fashion_mnist, "/", split, "-images-idx3-ubyte.gz"), 64, 28 * 28, 16)));
      valid.bytes(cat("idx/", split, "-labels-idx1-ubyte.gz"),
                  gzip(idx_head(cat(fashion_mnist, "/", split, "-labels-idx1-ubyte.gz"), 64, 1, 8)));
    }
  }
  for (const char* split : {"train", "test"})
    for (const char* cls : {"cat", "dog"}) write_images(valid, cat("image_folder/", split, "/", cls), 3);
  std::string partition = "8\nimage_name item_id evaluation_status\n";
  for (int item = 0; item < 4; ++item) {
    const char* statuses[] = {item < 2 ? "train" : "query", item < 2 ? "train" : "gallery"};
    std::vector<std::string> names = write_images(valid, cat("inshop/img/item", item), 2);
    for (int k = 0; k < 2; ++k)
      partition += cat("img/item", item, "/", names[size_t(k)], " id_0000", item, " ", statuses[k], "\n");
  }
  valid.text("inshop/Eval/list_eval_partition.txt", partition);
  std::string csv = "id,url,landmark_id\n";
  const char* ids[] = {"a1b2c3", "a1b9c8", "b7c6d5", "c3d4e5", "d9e8f7", "e0f1a2"};
  for (int i = 0; i < 6; ++i) {
    std::string id = ids[i];
    fs::path dir = fs::path("gldv2") / id.substr(0, 1) / id.substr(1, 1) / id.substr(2, 1);
    test::write_jpeg(valid.file((dir / (id + ".jpg")).string()), 8, 8, 3, pixels(8, 8, 3, i), 90);
    csv += cat(id, ",http://example.org/", id, ".jpg,", 100 + i / 2, "\n");
  }
  valid.text("gldv2/train.csv", csv);
  Generator gen(5);
  save_safetensors(valid.file("images.safetensors"), {{"images", normal({3, 1, 28, 28}, 0.0, 1.0, gen)}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR [FASHION_MNIST_DIR]\n");
    return 2;
  }
  try {
    const std::string fashion_mnist = argc == 3 ? argv[2] : "";
    Writer seeds{fs::path(argv[1]) / "seeds"}, valid{fs::path(argv[1]) / "valid"};
    write_seeds(seeds, valid, fashion_mnist);
    write_valid(valid, fashion_mnist);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
