// Data sources: IDX parsing (a tiny file written here, and the installed Fashion-MNIST when present),
// JPEG/PNG decoding with channel conversion and the dimension cap, image folders, list files, In-shop
// partitions and GLDv2 csv files; every bad file or configuration refused with its exact message.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "tests/train/data_fixtures.h"
#include "train/data/idx.h"
#include "train/data/image_files.h"
#include "train/data/subset.h"
#include "tests/support/skip.h"

using namespace scpn;
using namespace scpn::data;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// 3 images of 2x3 pixels with values 10·image + pixel, and labels 2, 0, 1.
void write_tiny_idx(const TempDir& dir) {
  std::vector<unsigned char> pixels;
  for (int i = 0; i < 3; ++i)
    for (int p = 0; p < 6; ++p) pixels.push_back(static_cast<unsigned char>(10 * i + p));
  test::write_idx(dir.file("images.gz"), 3, {3, 2, 3}, pixels);
  test::write_idx(dir.file("labels.gz"), 1, {3}, {2, 0, 1});
}

}  // namespace

TEST_CASE("IDX: a tiny gzip file is parsed, converted to [0, 1] and replicated to RGB on request") {
  TempDir dir("idx");
  write_tiny_idx(dir);
  IdxDataset ds(dir.file("images.gz"), dir.file("labels.gz"));
  CHECK(ds.size() == 3);
  CHECK(ds.num_classes() == 3);
  CHECK(ds.height() == 2);
  CHECK(ds.width() == 3);
  CHECK(ds.label(0) == 2);
  CHECK(ds.label(2) == 1);
  Image img = ds.load(1);
  CHECK(img.channels == 1);
  CHECK(img.height == 2);
  CHECK(img.width == 3);
  for (int p = 0; p < 6; ++p) CHECK(img.pixels[size_t(p)] == doctest::Approx((10 + p) / 255.0));
  CHECK(ds.describe(1) == dir.file("images.gz") + "[1]");

  IdxDataset rgb(dir.file("images.gz"), dir.file("labels.gz"), {.channels = 3});
  Image c = rgb.load(2);
  CHECK(c.channels == 3);
  CHECK(c.at(0, 1, 2) == c.at(2, 1, 2));
  CHECK(c.at(1, 1, 2) == doctest::Approx(25 / 255.0));

  IdxDataset two(dir.file("images.gz"), dir.file("labels.gz"), {.limit = 2, .num_classes = 10});
  CHECK(two.size() == 2);
  CHECK(two.num_classes() == 10);
  CHECK(two.load(1).pixels[0] == doctest::Approx(10 / 255.0));

  // zlib reads uncompressed files as they are.
  test::write_idx(dir.file("plain-images"), 3, {1, 1, 2}, {0, 255}, /*plain=*/true);
  test::write_idx(dir.file("plain-labels"), 1, {1}, {4}, /*plain=*/true);
  IdxDataset plain(dir.file("plain-images"), dir.file("plain-labels"));
  CHECK(plain.load(0).pixels == std::vector<float>{0.0f, 1.0f});
  CHECK(plain.num_classes() == 5);
}

TEST_CASE("IDX: broken files and options are refused with messages naming the file") {
  TempDir dir("idx_bad");
  write_tiny_idx(dir);
  const std::string images = dir.file("images.gz"), labels = dir.file("labels.gz");
  const std::string missing = dir.file("missing.gz");
  CHECK_THROWS_WITH_AS(IdxDataset(missing, labels), ("IDX file " + missing + ": cannot open: No such file or directory").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(IdxDataset(labels, labels),
                       ("IDX file " + labels + ": magic 0x00000801 is not an IDX images file (expected 0x00000803: "
                        "unsigned bytes, 3 dimensions)").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(IdxDataset(images, images),
                       ("IDX file " + images + ": magic 0x00000803 is not an IDX labels file (expected 0x00000801: "
                        "unsigned bytes, 1 dimension)").c_str(),
                       Error);

  test::write_idx(dir.file("short.gz"), 3, {3, 2, 3}, std::vector<unsigned char>(10, 7));
  CHECK_THROWS_WITH_AS(IdxDataset(dir.file("short.gz"), labels),
                       ("IDX file " + dir.file("short.gz") + ": truncated: expected 18 bytes of pixels, got 10").c_str(),
                       Error);
  test::write_idx(dir.file("header.gz"), 3, {3}, {});
  CHECK_THROWS_WITH_AS(IdxDataset(dir.file("header.gz"), labels),
                       ("IDX file " + dir.file("header.gz") + ": truncated: expected 4 bytes of header, got 0").c_str(),
                       Error);
  test::write_idx(dir.file("long.gz"), 3, {3, 2, 3}, std::vector<unsigned char>(19, 7));
  CHECK_THROWS_WITH_AS(IdxDataset(dir.file("long.gz"), labels),
                       ("IDX file " + dir.file("long.gz") + ": has bytes after the 3 images its header declares").c_str(),
                       Error);
  test::write_idx(dir.file("labels4.gz"), 1, {4}, {0, 1, 2, 3});
  CHECK_THROWS_WITH_AS(IdxDataset(images, dir.file("labels4.gz")),
                       ("IDX files disagree: " + images + " has 3 images but " + dir.file("labels4.gz") + " has 4 labels")
                           .c_str(),
                       Error);
  test::write_idx(dir.file("empty.gz"), 3, {3, 0, 3}, {});
  CHECK_THROWS_WITH_AS(IdxDataset(dir.file("empty.gz"), labels),
                       ("IDX file " + dir.file("empty.gz") + ": image size 0x3 is empty").c_str(), Error);
  test::write_bytes(dir.file("corrupt.gz"), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff});
  CHECK_THROWS_WITH_AS(IdxDataset(dir.file("corrupt.gz"), labels),
                       ("IDX file " + dir.file("corrupt.gz") + ": cannot read header: invalid block type").c_str(), Error);

  CHECK_THROWS_WITH_AS(IdxDataset(images, labels, {.num_classes = 2}),
                       ("IDX file " + labels + ": label 2 of sample 0 is not below num_classes 2").c_str(), Error);
  CHECK_THROWS_WITH_AS(IdxDataset(images, labels, {.limit = 0}),
                       ("IDX dataset " + images + ": limit must be -1 (all) or positive, got 0").c_str(), Error);
  CHECK_THROWS_WITH_AS(IdxDataset(images, labels, {.channels = 2}),
                       ("IDX dataset " + images + ": channels must be 1 or 3, got 2").c_str(), Error);
  IdxDataset ds(images, labels);
  CHECK_THROWS_WITH_AS(ds.load(3), ("IDX dataset " + images + ": index 3 out of range [0, 3)").c_str(), Error);
}

TEST_CASE("IDX: the installed Fashion-MNIST (dataset-fashion-mnist) has its known counts and labels") {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (test::skip_without_fashion_mnist()) return;
  IdxDataset train = IdxDataset::from_folder(root, true);
  IdxDataset test = IdxDataset::from_folder(root, false);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.num_classes() == 10);
  CHECK(train.height() == 28);
  CHECK(train.width() == 28);
  const std::vector<int64_t> train_first = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, test_first = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
  for (int64_t i = 0; i < 10; ++i) {
    CHECK(train.label(i) == train_first[size_t(i)]);
    CHECK(test.label(i) == test_first[size_t(i)]);
  }
  CHECK(train.label(59999) == 5);
  CHECK(test.label(9999) == 5);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < train.size(); ++i) per_class[size_t(train.label(i))]++;
  CHECK(per_class == std::vector<int64_t>(10, 6000));
  // Byte sums of the first images, read independently with Python's gzip module.
  auto byte_sum = [](const Image& img) {
    double s = 0;
    for (float v : img.pixels) s += double(v) * 255.0;
    return std::llround(s);
  };
  CHECK(byte_sum(train.load(0)) == 76247);
  CHECK(byte_sum(test.load(0)) == 33456);
  IdxDataset limited = IdxDataset::from_folder(root, true, {.limit = 100});
  CHECK(limited.size() == 100);
  CHECK(limited.num_classes() == 10);
}

TEST_CASE("decode: PNG and JPEG pixels, grey <-> RGB conversion") {
  TempDir dir("decode");
  // 3 wide, 2 high, RGB.
  std::vector<unsigned char> rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 100, 150, 200, 255, 255, 255};
  test::write_png(dir.file("a.png"), 3, 2, 3, rgb);
  Image img = decode_image_file(dir.file("a.png"), {.channels = 3});
  CHECK(img.channels == 3);
  CHECK(img.height == 2);
  CHECK(img.width == 3);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) CHECK(img.at(c, y, x) == rgb[size_t((y * 3 + x) * 3 + c)] / 255.0f);

  // RGB -> grey is stb's integer luma (77 r + 150 g + 29 b) >> 8.
  Image grey = decode_image_file(dir.file("a.png"), {.channels = 1});
  CHECK(grey.channels == 1);
  CHECK(grey.at(0, 0, 0) == float((255 * 77) >> 8) / 255.0f);
  CHECK(grey.at(0, 1, 1) == float((100 * 77 + 150 * 150 + 200 * 29) >> 8) / 255.0f);

  // grey -> RGB replicates.
  test::write_png(dir.file("g.png"), 2, 1, 1, {7, 200});
  Image g3 = decode_image_file(dir.file("g.png"), {.channels = 3});
  CHECK(g3.channels == 3);
  for (int c = 0; c < 3; ++c) CHECK(g3.at(c, 0, 1) == 200 / 255.0f);

  // A flat-coloured JPEG at quality 100 decodes to within a couple of levels.
  std::vector<unsigned char> flat(8 * 8 * 3);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<unsigned char>(i % 3 == 0 ? 200 : i % 3 == 1 ? 100 : 50);
  test::write_jpeg(dir.file("flat.jpg"), 8, 8, 3, flat);
  Image j = decode_image_file(dir.file("flat.jpg"), {.channels = 3});
  CHECK(j.height == 8);
  CHECK(j.width == 8);
  CHECK(j.at(0, 4, 4) == doctest::Approx(200 / 255.0).epsilon(0.02));
  CHECK(j.at(1, 4, 4) == doctest::Approx(100 / 255.0).epsilon(0.03));
  CHECK(j.at(2, 4, 4) == doctest::Approx(50 / 255.0).epsilon(0.06));
}

TEST_CASE("decode: missing, foreign, corrupt and oversized files raise SampleError with path and reason") {
  TempDir dir("decode_bad");
  std::vector<unsigned char> px(8 * 8 * 3, 128);
  test::write_png(dir.file("ok.png"), 8, 8, 3, px);
  test::write_jpeg(dir.file("ok.jpg"), 8, 8, 3, px, 90);
  const std::vector<unsigned char> png = test::read_bytes(dir.file("ok.png")), jpg = test::read_bytes(dir.file("ok.jpg"));
  auto expect = [&](const std::string& name, const std::string& reason, DecodeOptions options = {}) {
    const std::string path = dir.file(name);
    try {
      decode_image_file(path, options);
      FAIL("no error for " << name);
    } catch (const SampleError& e) {
      CHECK(std::string(e.what()) == "image " + path + ": " + reason);
      CHECK(e.path == path);
      CHECK(e.reason == reason);
    }
  };
  expect("missing.png", "cannot open: No such file or directory");
  test::write_text(dir.file("notes.png"), "hello");
  expect("notes.png", "not a JPEG or PNG file");
  test::write_bytes(dir.file("empty.jpg"), {});
  expect("empty.jpg", "not a JPEG or PNG file");
  test::write_bytes(dir.file("sig.png"), std::vector<unsigned char>(png.begin(), png.begin() + 8));
  expect("sig.png", "cannot decode: first not IHDR");
  test::write_bytes(dir.file("cut.png"), std::vector<unsigned char>(png.begin(), png.end() - 20));
  expect("cut.png", "cannot decode: outofdata");
  test::write_bytes(dir.file("soi.jpg"), std::vector<unsigned char>(jpg.begin(), jpg.begin() + 100));
  expect("soi.jpg", "cannot decode: no SOF");
  test::write_bytes(dir.file("cut.jpg"), std::vector<unsigned char>(jpg.begin(), jpg.begin() + 200));
  expect("cut.jpg", "cannot decode: corrupt or truncated data");
  expect("ok.png", "8x8 exceeds the dimension cap 7", {.channels = 3, .max_dim = 7});
  CHECK(decode_image_file(dir.file("ok.png"), {.channels = 3, .max_dim = 8}).width == 8);
  CHECK_THROWS_WITH_AS(validate(DecodeOptions{.channels = 2}, "here"), "here: decode channels must be 1 or 3, got 2", Error);
  CHECK_THROWS_WITH_AS(validate(DecodeOptions{.max_dim = 0}, "here"), "here: decode max_dim must be positive, got 0", Error);
}

TEST_CASE("image folder: classes and files in sorted order, other entries ignored") {
  TempDir dir("folder");
  const std::string root = dir.file("root");
  test::write_png(dir.file("root/dog/b.PNG"), 1, 1, 1, {1});
  test::write_png(dir.file("root/cat/sub/z.png"), 1, 1, 1, {2});
  test::write_jpeg(dir.file("root/cat/a.jpeg"), 1, 1, 3, {3, 3, 3});
  test::write_png(dir.file("root/cat/.hidden.png"), 1, 1, 1, {4});
  test::write_png(dir.file("root/.trash/x.png"), 1, 1, 1, {5});
  test::write_text(dir.file("root/cat/readme.txt"), "not an image");
  test::write_text(dir.file("root/list.txt"), "a file beside the class folders");
  ImageFileDataset ds = image_folder_dataset(root, {.channels = 1});
  CHECK(ds.class_names() == std::vector<std::string>{"cat", "dog"});
  REQUIRE(ds.size() == 3);
  CHECK(ds.path(0) == root + "/cat/a.jpeg");
  CHECK(ds.path(1) == root + "/cat/sub/z.png");
  CHECK(ds.path(2) == root + "/dog/b.PNG");
  CHECK(ds.label(0) == 0);
  CHECK(ds.label(1) == 0);
  CHECK(ds.label(2) == 1);
  CHECK(ds.num_classes() == 2);
  CHECK(ds.describe(2) == ds.path(2));
  CHECK(ds.load(1).pixels == std::vector<float>{2 / 255.0f});

  CHECK_THROWS_WITH_AS(image_folder_dataset(dir.file("nowhere")),
                       ("image folder " + dir.file("nowhere") + ": not a directory").c_str(), Error);
  fs::create_directories(dir.path / "bare");
  CHECK_THROWS_WITH_AS(image_folder_dataset(dir.str() + "/bare"),
                       ("image folder " + dir.str() + "/bare: no class folders").c_str(), Error);
  fs::create_directories(dir.path / "root" / "emu");
  CHECK_THROWS_WITH_AS(image_folder_dataset(root),
                       ("image folder " + root + ": class folder 'emu' has no .jpg, .jpeg or .png files").c_str(), Error);
  CHECK_THROWS_WITH_AS(image_folder_dataset(root, {.channels = 4}),
                       ("image folder " + root + ": decode channels must be 1 or 3, got 4").c_str(), Error);
}

TEST_CASE("list file: `path label` lines relative to a root") {
  TempDir dir("list");
  const std::string root = dir.str();
  test::write_text(dir.file("list.txt"), "img/a.png 3\r\n\n  img/with space.png\t0  \n/abs/c.jpg 1\n");
  ImageFileDataset ds = list_file_dataset(dir.file("list.txt"), root);
  REQUIRE(ds.size() == 3);
  CHECK(ds.path(0) == root + "/img/a.png");
  CHECK(ds.path(1) == root + "/img/with space.png");
  CHECK(ds.path(2) == "/abs/c.jpg");
  CHECK(ds.label(0) == 3);
  CHECK(ds.label(1) == 0);
  CHECK(ds.num_classes() == 4);
  CHECK(ds.class_names() == std::vector<std::string>{"0", "1", "2", "3"});

  const std::string list = dir.file("bad.txt");
  auto refused = [&](const std::string& text, const std::string& message) {
    test::write_text(list, text);
    CHECK_THROWS_WITH_AS(list_file_dataset(list, root), message.c_str(), Error);
  };
  refused("a.png 1\nlonely\n", "list file " + list + ":2: expected '<path> <label>', got 'lonely'");
  refused("a.png x\n", "list file " + list + ":1: label 'x' is not a non-negative integer");
  refused("a.png -2\n", "list file " + list + ":1: label '-2' is not a non-negative integer");
  refused("\n \n", "list file " + list + ": no entries");
  CHECK_THROWS_WITH_AS(list_file_dataset(dir.file("absent.txt"), root),
                       ("list file " + dir.file("absent.txt") + ": cannot open: No such file or directory").c_str(), Error);
  CHECK_THROWS_WITH_AS(list_file_dataset(dir.file("list.txt"), root + "/none"),
                       ("list file " + dir.file("list.txt") + ": image root " + root + "/none is not a directory").c_str(),
                       Error);
}

TEST_CASE("In-shop list_eval_partition.txt: splits and item-id labels") {
  TempDir dir("inshop");
  const std::string root = dir.str();
  const std::string part = dir.file("list_eval_partition.txt");
  test::write_text(part,
                   "7\nimage_name item_id evaluation_status\n"
                   "img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train\n"
                   "img/WOMEN/Dresses/id_00000002/02_2_side.jpg id_00000002 train\n"
                   "img/MEN/Tees/id_00000001/01_1_front.jpg      id_00000001 train\n"
                   "img/WOMEN/Skirts/id_00000009/01_1_front.jpg id_00000009 query\n"
                   "img/WOMEN/Skirts/id_00000009/01_2_side.jpg  id_00000009 gallery\n"
                   "img/MEN/Pants/id_00000005/01_1_front.jpg    id_00000005 gallery\n"
                   "img/MEN/Pants/id_00000005/01_4_full.jpg     id_00000005 query\n");
  ImageFileDataset train = inshop_dataset(part, root, InShopSplit::train);
  REQUIRE(train.size() == 3);
  CHECK(train.class_names() == std::vector<std::string>{"id_00000001", "id_00000002"});
  CHECK(train.path(0) == root + "/img/WOMEN/Dresses/id_00000002/02_1_front.jpg");
  CHECK(train.label(0) == 1);
  CHECK(train.label(1) == 1);
  CHECK(train.label(2) == 0);
  ImageFileDataset query = inshop_dataset(part, root, InShopSplit::query);
  ImageFileDataset gallery = inshop_dataset(part, root, InShopSplit::gallery);
  REQUIRE(query.size() == 2);
  REQUIRE(gallery.size() == 2);
  CHECK(query.class_names() == std::vector<std::string>{"id_00000005", "id_00000009"});
  CHECK(gallery.class_names() == query.class_names());
  CHECK(query.path(0) == root + "/img/WOMEN/Skirts/id_00000009/01_1_front.jpg");
  CHECK(query.label(0) == 1);
  CHECK(query.label(1) == 0);
  CHECK(gallery.label(0) == 1);
  CHECK(gallery.label(1) == 0);

  auto refused = [&](const std::string& text, const std::string& message) {
    test::write_text(part, text);
    CHECK_THROWS_WITH_AS(inshop_dataset(part, root, InShopSplit::train), message.c_str(), Error);
  };
  const std::string head = "image_name item_id evaluation_status\n";
  refused("3\n" + head + "a.jpg id_1 train\n", "In-shop partition " + part + ": the first line declares 3 images but 1 follow");
  refused("x\n" + head, "In-shop partition " + part + ":1: expected the number of images");
  refused("1\nimage item status\na.jpg id_1 train\n",
          "In-shop partition " + part + ":2: expected the header 'image_name item_id evaluation_status'");
  refused("1\n" + head + "a.jpg id_1 test\n", "In-shop partition " + part + ":3: unknown evaluation_status 'test'");
  refused("1\n" + head + "a.jpg train\n",
          "In-shop partition " + part + ":3: expected '<image> <item id> <train|query|gallery>', got 'a.jpg train'");
  refused("1\n" + head + "a.jpg id_1 query\n", "In-shop partition " + part + ": no train images");
}

TEST_CASE("GLDv2 train.csv: nested image paths and dense landmark labels") {
  TempDir dir("gldv2");
  const std::string root = dir.str();
  const std::string csv = dir.file("train.csv");
  test::write_text(csv,
                   "id,url,landmark_id\n"
                   "6e158a47eb2ca3f6,https://upload.wikimedia.org/a.jpg,142820\n"
                   "202cd79556f30760,\"http://example.org/x,y.jpg\",104169\n"
                   "3ad87684c99c06e1,http://example.org/b.jpg,142820\n");
  ImageFileDataset ds = gldv2_dataset(csv, root);
  REQUIRE(ds.size() == 3);
  CHECK(ds.path(0) == root + "/6/e/1/6e158a47eb2ca3f6.jpg");
  CHECK(ds.path(1) == root + "/2/0/2/202cd79556f30760.jpg");
  CHECK(ds.class_names() == std::vector<std::string>{"104169", "142820"});
  CHECK(ds.label(0) == 1);
  CHECK(ds.label(1) == 0);
  CHECK(ds.label(2) == 1);

  auto refused = [&](const std::string& text, const std::string& message) {
    test::write_text(csv, text);
    CHECK_THROWS_WITH_AS(gldv2_dataset(csv, root), message.c_str(), Error);
  };
  refused("id,url\n", "GLDv2 csv " + csv + ":1: the header has no 'landmark_id' column");
  refused("id,url,landmark_id\nabcd,u,x1\n", "GLDv2 csv " + csv + ":2: landmark_id 'x1' is not a non-negative integer");
  refused("id,url,landmark_id\nab,u,1\n", "GLDv2 csv " + csv + ":2: image id 'ab' is not at least 3 letters or digits");
  refused("id,url,landmark_id\n../x,u,1\n", "GLDv2 csv " + csv + ":2: image id '../x' is not at least 3 letters or digits");
  refused("id,url,landmark_id\nabcd,u,1,extra\n", "GLDv2 csv " + csv + ":2: 4 fields, the header has 3");
  refused("id,url,landmark_id\n", "GLDv2 csv " + csv + ": no images");
  refused("", "GLDv2 csv " + csv + ": empty file");
}

TEST_CASE("class split and class subsets: a fixed, class-disjoint split; views relabel densely") {
  // The split is part of the dataset's definition (runs, tools and future versions must agree): pinned.
  const ClassSplit a = split_classes(10, 0.3);
  CHECK(a.held_out == std::vector<int64_t>{1, 3, 4});
  CHECK(a.held_out.size() == 3);
  CHECK(a.kept.size() == 7);
  std::vector<int64_t> all = a.kept;
  all.insert(all.end(), a.held_out.begin(), a.held_out.end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(split_classes(2, 0.01).held_out.size() == 1);  // at least one, at most all but one
  CHECK(split_classes(2, 0.99).kept.size() == 1);
  CHECK_THROWS_WITH_AS(split_classes(1, 0.3), "split_classes: 1 classes cannot be split in two", Error);

  struct Labels : Dataset {  // labels 2 0 1 2 0 1 2 0 1 2
    int64_t size() const override { return 10; }
    int64_t num_classes() const override { return 3; }
    int64_t label(int64_t i) const override { return (i + 2) % 3; }
    Image load(int64_t i) const override { return Image(1, 1, 1, float(i)); }
    std::string describe(int64_t i) const override { return cat("sample", i); }
  };
  auto source = std::make_shared<Labels>();
  ClassSubset view(source, {2, 0});  // class 2 becomes 0, class 0 becomes 1
  REQUIRE(view.size() == 7);
  CHECK(view.num_classes() == 2);
  std::vector<int64_t> sources, labels;
  for (int64_t i = 0; i < view.size(); ++i) {
    sources.push_back(view.source_index(i));
    labels.push_back(view.label(i));
  }
  CHECK(sources == std::vector<int64_t>{0, 1, 3, 4, 6, 7, 9});
  CHECK(labels == std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0});
  CHECK(view.describe(2) == "sample3");
  CHECK_THROWS_WITH_AS(ClassSubset(source, {0, 0}), "ClassSubset: class 0 listed twice", Error);
  CHECK_THROWS_WITH_AS(ClassSubset(source, {3}), "ClassSubset: class 3 out of range [0, 3)", Error);
}

// ---- resource bounds: what a header or a file claims is refused before it is allocated -----------------

namespace {

// A PNG of just the signature and an IHDR chunk claiming width x height (stb checks no CRC).
std::vector<unsigned char> png_header_claiming(uint32_t width, uint32_t height) {
  std::vector<unsigned char> b = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (uint32_t v : {width, height})
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
  b.insert(b.end(), {8, 2, 0, 0, 0, 0, 0, 0, 0});  // 8-bit RGB, then a CRC stb ignores
  return b;
}

// A file of `bytes` bytes that starts with `head` and occupies no disk (a hole after the head).
void write_sparse(const std::string& path, const std::vector<unsigned char>& head, uintmax_t bytes) {
  test::write_bytes(path, head);
  fs::resize_file(path, bytes);
}

}  // namespace

TEST_CASE("resource bounds: image headers claiming huge dimensions and oversized files are refused unread") {
  TempDir dir("decode_bounds");
  auto refused = [&](const std::string& name, const std::string& reason) {
    const std::string path = dir.file(name);
    CHECK_THROWS_WITH_AS(decode_image_file(path, {}), ("image " + path + ": " + reason).c_str(), SampleError);
  };
  test::write_bytes(dir.file("huge.png"), png_header_claiming(100000, 100000));
  refused("huge.png", "100000x100000 exceeds the dimension cap 8192");
  test::write_bytes(dir.file("widest.png"), png_header_claiming(4294967295u, 1));
  refused("widest.png", "4294967295x1 exceeds the dimension cap 8192");
  // A real JPEG whose SOF0 frame header is rewritten to claim 65535 x 65535.
  std::vector<unsigned char> px(8 * 8 * 3, 90);
  test::write_jpeg(dir.file("ok.jpg"), 8, 8, 3, px, 90);
  std::vector<unsigned char> jpg = test::read_bytes(dir.file("ok.jpg"));
  const unsigned char sof_marker[] = {0xFF, 0xC0};
  auto sof = std::search(jpg.begin(), jpg.end(), std::begin(sof_marker), std::end(sof_marker));
  REQUIRE(sof != jpg.end());
  std::fill(sof + 5, sof + 9, 0xFF);  // marker, length (2), precision, then height and width
  test::write_bytes(dir.file("huge.jpg"), jpg);
  refused("huge.jpg", "65535x65535 exceeds the dimension cap 8192");
  write_sparse(dir.file("big.png"), png_header_claiming(8, 8), uintmax_t(kMaxImageFileBytes) + 1);
  refused("big.png", "file is 268435457 bytes, over the limit of 268435456 bytes (256 MiB) for an image file");
}

TEST_CASE("resource bounds: IDX headers claiming huge counts or sizes are refused before the pixels are allocated") {
  TempDir dir("idx_bounds");
  const std::string images = dir.file("images.gz"), labels = dir.file("labels.gz");
  auto refused = [&](const std::string& message) {
    CHECK_THROWS_WITH_AS(IdxDataset(images, labels), ("IDX file " + images + ": " + message).c_str(), Error);
  };
  test::write_idx(images, 3, {4294967295u, 28, 28}, {1, 2, 3});
  test::write_idx(labels, 1, {4294967295u}, {0});
  refused("4294967295 images of 28x28 are 3367254359280 bytes, over the limit of 8589934592 bytes (8 GiB)");
  test::write_idx(images, 3, {1, 20000, 2}, {1, 2, 3});
  test::write_idx(labels, 1, {1}, {0});
  refused("image size 20000x2 exceeds the limit of 16384 pixels per side");
  // Under the limit but far more than the file holds: read in chunks, it fails as truncated having
  // allocated one chunk, not the 7.84 GB claimed.
  test::write_idx(images, 3, {10000000, 28, 28}, {1, 2, 3, 4, 5, 6});
  test::write_idx(labels, 1, {10000000}, {0});
  refused("truncated: expected 7840000000 bytes of pixels, got 6");
}

TEST_CASE("resource bounds: list files over the size or line limit are refused before their lines are split") {
  TempDir dir("list_bounds");
  const std::string root = dir.str();
  write_sparse(dir.file("huge.txt"), {'a', ' ', '0', '\n'}, uintmax_t(kMaxListFileBytes) + 1);
  CHECK_THROWS_WITH_AS(list_file_dataset(dir.file("huge.txt"), root),
                       ("list file " + dir.file("huge.txt") +
                        ": file is 2147483649 bytes, over the limit of 2147483648 bytes (2 GiB)").c_str(), Error);
  write_sparse(dir.file("huge.csv"), {'i', 'd', '\n'}, uintmax_t(kMaxListFileBytes) + 1);
  CHECK_THROWS_WITH_AS(gldv2_dataset(dir.file("huge.csv"), root),
                       ("GLDv2 csv " + dir.file("huge.csv") +
                        ": file is 2147483649 bytes, over the limit of 2147483648 bytes (2 GiB)").c_str(), Error);
  test::write_text(dir.file("lines.txt"), std::string(size_t(kMaxListLines) + 1, '\n'));
  CHECK_THROWS_WITH_AS(inshop_dataset(dir.file("lines.txt"), root, InShopSplit::train),
                       ("In-shop partition " + dir.file("lines.txt") + ": 10000001 lines, over the limit of 10000000").c_str(),
                       Error);
  // Found by tools/fuzz/fuzz_list_file (out of memory): one label claimed 16,660,001,009,063 classes.
  test::write_text(dir.file("label.txt"), "a.png 3\nb.png 16660001009063\n");
  CHECK_THROWS_WITH_AS(list_file_dataset(dir.file("label.txt"), root),
                       ("list file " + dir.file("label.txt") + ":2: label 16660001009063 is above the limit of 10000000 "
                        "(kMaxListLabel: labels number the classes from 0)").c_str(),
                       Error);
}

TEST_CASE("fuzz regression: a decoder reason quoting file bytes stays one printable line") {
  // Found by tools/fuzz/fuzz_decode: stb names an unknown critical PNG chunk by its four type bytes, so a
  // file could put a line break (or any byte) into the message.
  TempDir dir("decode_chunk");
  std::vector<unsigned char> png = png_header_claiming(8, 8);
  png.insert(png.end(), {0, 0, 0, 0, 'X', '\n', 0x9e, 'Z', 0, 0, 0, 0});  // empty chunk "X\n\x9eZ", CRC
  test::write_bytes(dir.file("chunk.png"), png);
  const std::string path = dir.file("chunk.png");
  CHECK_THROWS_WITH_AS(decode_image_file(path, {}), ("image " + path + ": cannot decode: X??Z PNG chunk not known").c_str(),
                       SampleError);
}

TEST_CASE("fuzz regression: a JPEG Huffman table with more than 256 codes is refused before stb reads it") {
  // Found by tools/fuzz/fuzz_decode (UBSan: index 257 out of bounds in stb's Huffman table builder):
  // stb_image 2.27 sums a DHT segment's sixteen code counts without a bound and writes past its arrays.
  TempDir dir("decode_dht");
  std::vector<unsigned char> px(8 * 8 * 3, 90);
  test::write_jpeg(dir.file("ok.jpg"), 8, 8, 3, px, 90);
  std::vector<unsigned char> jpg = test::read_bytes(dir.file("ok.jpg"));
  const unsigned char dht_marker[] = {0xFF, 0xC4};
  auto dht = std::search(jpg.begin(), jpg.end(), std::begin(dht_marker), std::end(dht_marker));
  REQUIRE(dht != jpg.end());
  std::fill(dht + 5, dht + 21, 0xFF);  // marker, length (2), class/id, then the 16 counts: 16 x 255 codes
  const std::string path = dir.file("dht.jpg");
  test::write_bytes(path, jpg);
  CHECK_THROWS_WITH_AS(decode_image_file(path, {}),
                       ("image " + path + ": cannot decode: Huffman table with 4080 codes (a JPEG table holds at most 256)").c_str(),
                       SampleError);
}

TEST_CASE("corpus regression: file text quoted in a list or csv message has its control characters replaced") {
  // Found by mutating In-shop partitions through eval: a vertical tab inside a line was quoted as it was,
  // and a terminal shows it as a line break.
  TempDir dir("list_control");
  const std::string root = dir.str();
  test::write_text(dir.file("partition.txt"),
                   "2\nimage_name item_id evaluation_status\na.jpg id_1 train\vb.jpg id_1 train\nc.jpg id_2 query\n");
  CHECK_THROWS_WITH_AS(inshop_dataset(dir.file("partition.txt"), root, InShopSplit::train),
                       ("In-shop partition " + dir.file("partition.txt") +
                        ":3: expected '<image> <item id> <train|query|gallery>', got 'a.jpg id_1 train?b.jpg id_1 train'").c_str(),
                       Error);
  test::write_text(dir.file("list.txt"), "a.png 1\x1b[2J\n");
  CHECK_THROWS_WITH_AS(list_file_dataset(dir.file("list.txt"), root),
                       ("list file " + dir.file("list.txt") + ":1: label '1?[2J' is not a non-negative integer").c_str(), Error);
  test::write_text(dir.file("train.csv"), "id,landmark_id\nab\x07" "c,3\n");
  CHECK_THROWS_WITH_AS(gldv2_dataset(dir.file("train.csv"), root),
                       ("GLDv2 csv " + dir.file("train.csv") + ":2: image id 'ab?c' is not at least 3 letters or digits").c_str(),
                       Error);
}
