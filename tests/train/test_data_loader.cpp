// The batch loader: the seeded epoch order, the same batches with 1 and 3 threads, resume, clean shutdown,
// buffer reuse through the allocator seam, the bad-image policies and bad options.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "tests/train/data_fixtures.h"
#include "train/data/decode.h"
#include "train/data/image_files.h"
#include "train/data/loader.h"

using namespace scpn;
using namespace scpn::data;
using test::TempDir;

namespace {

// n samples of 1x4x4 with distinct pixel values; label i % 3; the listed indices fail like a corrupt
// file. An optional delay per load makes workers slow, for the shutdown test.
class Synthetic : public Dataset {
 public:
  explicit Synthetic(int64_t n, std::set<int64_t> bad = {}, int delay_ms = 0)
      : n_(n), bad_(std::move(bad)), delay_ms_(delay_ms) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 3; }
  int64_t label(int64_t i) const override { return i % 3; }
  Image load(int64_t i) const override {
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    if (bad_.count(i)) throw SampleError(describe(i), "corrupt");
    Image img(1, 4, 4);
    for (int64_t p = 0; p < 16; ++p) img.pixels[size_t(p)] = float(i * 16 + p) / 1024.0f;
    return img;
  }
  std::string describe(int64_t i) const override { return "synthetic/" + std::to_string(i); }

 private:
  int64_t n_;
  std::set<int64_t> bad_;
  int delay_ms_;
};

LoaderOptions options_4x4(int64_t batch, int workers) {
  LoaderOptions o;
  o.batch_size = batch;
  o.channels = 1;
  o.height = 4;
  o.width = 4;
  o.seed = 1234;
  o.workers = workers;
  return o;
}

Pipeline augment() { return Pipeline{random_crop(4, 4, 1), horizontal_flip()}; }

struct Recorded {
  std::vector<double> images, labels;
  std::vector<int64_t> indices;
  int64_t epoch, index;
  bool operator==(const Recorded&) const = default;
};

Recorded record(const Batch& b) {
  return {b.images.to_vector(), b.labels.to_vector(), b.indices, b.epoch, b.index};
}

std::vector<Recorded> run_epoch(Loader& loader, int64_t epoch, int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  std::vector<Recorded> out;
  while (auto b = loader.next()) out.push_back(record(*b));
  return out;
}

}  // namespace

TEST_CASE("loader: batches follow the epoch order and hold the transformed samples") {
  auto ds = std::make_shared<Synthetic>(23);
  for (bool drop_last : {false, true}) {
    LoaderOptions o = options_4x4(5, 2);
    o.prefetch = 3;
    o.drop_last = drop_last;
    Loader loader(ds, augment(), o);
    CHECK(loader.batches_per_epoch() == (drop_last ? 4 : 5));
    for (int64_t epoch : {0, 1}) {
      const std::vector<int64_t> order = epoch_order(23, 1234, uint64_t(epoch), true);
      loader.start_epoch(epoch);
      int64_t b = 0;
      while (auto batch = loader.next()) {
        const int64_t rows = std::min<int64_t>(5, 23 - b * 5);
        CHECK(batch->epoch == epoch);
        CHECK(batch->index == b);
        CHECK(batch->images.shape() == Shape{rows, 1, 4, 4});
        CHECK(batch->labels.shape() == Shape{rows});
        CHECK(batch->labels.dtype() == DType::i64);
        const float* px = batch->images.data<float>();
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = order[size_t(b * 5 + r)];
          CHECK(batch->indices[size_t(r)] == i);
          CHECK(batch->labels.data<int64_t>()[r] == i % 3);
          SampleRng rng(1234, uint64_t(epoch), uint64_t(i));
          Image expected = augment()(ds->load(i), rng);
          CHECK(std::memcmp(px + r * 16, expected.pixels.data(), 16 * sizeof(float)) == 0);
        }
        CHECK(loader.position() == LoaderPosition{epoch, b + 1});
        ++b;
      }
      CHECK(b == loader.batches_per_epoch());
      CHECK(!loader.next().has_value());  // stays at the end
    }
  }
}

TEST_CASE("loader: the same batches with 1 and 3 worker threads, synthetic and decoded images") {
  auto ds = std::make_shared<Synthetic>(37, std::set<int64_t>{4, 5, 20});
  LoaderOptions one = options_4x4(4, 1), three = options_4x4(4, 3);
  one.prefetch = 1;
  one.bad_images = three.bad_images = BadImagePolicy::skip;
  one.max_skipped = three.max_skipped = 4;
  Loader a(ds, augment(), one), b(ds, augment(), three);
  for (int64_t epoch : {0, 1}) {
    std::vector<Recorded> ra = run_epoch(a, epoch), rb = run_epoch(b, epoch);
    CHECK(ra.size() == 10);
    CHECK(ra == rb);
    CHECK(a.skipped() == 4);  // 4 and 5 (twice: also as 4's replacement candidate) and 20
    CHECK(a.skip_messages() == b.skip_messages());
  }

  TempDir dir("loader_threads");
  for (int i = 0; i < 10; ++i) {
    std::vector<unsigned char> px(9 * 7 * 3);
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<unsigned char>((k * 7 + size_t(i) * 31) % 256);
    test::write_png(dir.file(cat("root/class", i % 2, "/", i, ".png")), 9, 7, 3, px);
  }
  auto folder = std::make_shared<ImageFileDataset>(image_folder_dataset(dir.str() + "/root"));
  Pipeline p{random_resized_crop(5, 5), horizontal_flip(), normalize({0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f})};
  LoaderOptions o1, o3;
  o1.batch_size = o3.batch_size = 3;
  o1.channels = o3.channels = 3;
  o1.height = o3.height = o1.width = o3.width = 5;
  o1.workers = 1;
  o3.workers = 3;
  Loader c(folder, p, o1), d(folder, p, o3);
  CHECK(run_epoch(c, 4) == run_epoch(d, 4));
}

TEST_CASE("loader: n shards of each batch, concatenated, are the unsharded batch") {
  auto ds = std::make_shared<Synthetic>(37);
  for (int64_t shards : {2, 3, 4}) {
    CAPTURE(shards);
    for (bool drop_last : {true, false}) {
      LoaderOptions whole = options_4x4(8, 2);
      whole.drop_last = drop_last;
      Loader all(ds, augment(), whole);
      const std::vector<Recorded> expected = run_epoch(all, 3);
      std::vector<std::vector<Recorded>> parts;
      for (int64_t i = 0; i < shards; ++i) {
        LoaderOptions o = whole;
        o.shard_index = i;
        o.shard_count = shards;
        Loader part(ds, augment(), o);
        CHECK(part.batches_per_epoch() == all.batches_per_epoch());
        parts.push_back(run_epoch(part, 3));
      }
      for (size_t b = 0; b < expected.size(); ++b) {
        Recorded joined{{}, {}, {}, expected[b].epoch, expected[b].index};
        for (auto& p : parts) {
          const Recorded& r = p.at(b);
          joined.images.insert(joined.images.end(), r.images.begin(), r.images.end());
          joined.labels.insert(joined.labels.end(), r.labels.begin(), r.labels.end());
          joined.indices.insert(joined.indices.end(), r.indices.begin(), r.indices.end());
        }
        CHECK(joined == expected[b]);
      }
    }
  }
  LoaderOptions bad = options_4x4(8, 1);
  bad.shard_index = 2;
  bad.shard_count = 2;
  CHECK_THROWS_WITH(Loader(ds, augment(), bad), "loader: shard 2 of 2 does not exist");
}

TEST_CASE("loader: the epoch order is a function of (seed, epoch)") {
  auto ds = std::make_shared<Synthetic>(50);
  auto indices = [&](LoaderOptions o, int64_t epoch) {
    Loader loader(ds, Pipeline{}, o);
    std::vector<int64_t> all;
    for (const Recorded& r : run_epoch(loader, epoch)) all.insert(all.end(), r.indices.begin(), r.indices.end());
    return all;
  };
  LoaderOptions o = options_4x4(8, 2);
  CHECK(indices(o, 3) == indices(o, 3));
  CHECK(indices(o, 3) != indices(o, 4));
  CHECK(indices(o, 3) == epoch_order(50, 1234, 3, true));
  LoaderOptions reseeded = o;
  reseeded.seed = 99;
  CHECK(indices(reseeded, 3) != indices(o, 3));
  o.shuffle = false;
  CHECK(indices(o, 3) == epoch_order(50, 0, 0, false));
}

TEST_CASE("loader: resuming at (epoch, batch) gives the same remaining batches") {
  auto ds = std::make_shared<Synthetic>(22);
  LoaderOptions o = options_4x4(4, 2);
  Loader full(ds, augment(), o);
  std::vector<Recorded> all = run_epoch(full, 2);
  REQUIRE(all.size() == 6);

  Loader resumed(ds, augment(), o);
  std::vector<Recorded> rest = run_epoch(resumed, 2, 3);
  CHECK(rest == std::vector<Recorded>(all.begin() + 3, all.end()));
  CHECK(resumed.position() == LoaderPosition{2, 6});

  // A position saved mid-epoch restores on a loader that was busy elsewhere (in-flight work abandoned).
  Loader busy(ds, augment(), o);
  busy.start_epoch(0);
  busy.next();
  busy.next();
  LoaderPosition saved = busy.position();
  CHECK(saved == LoaderPosition{0, 2});
  busy.start_epoch(2, 1);
  std::vector<Recorded> from1;
  while (auto b = busy.next()) from1.push_back(record(*b));
  CHECK(from1 == std::vector<Recorded>(all.begin() + 1, all.end()));
  busy.start_epoch(2, 6);
  CHECK(!busy.next().has_value());
}

TEST_CASE("loader: destroyed mid-epoch or before any epoch, it stops without hanging") {
  auto slow = std::make_shared<Synthetic>(200, std::set<int64_t>{}, 2);
  {
    Loader loader(slow, Pipeline{}, options_4x4(8, 3));
    loader.start_epoch(0);
    CHECK(loader.next().has_value());
  }
  { Loader idle(slow, Pipeline{}, options_4x4(8, 2)); }
  {
    Loader restarted(slow, Pipeline{}, options_4x4(8, 3));
    restarted.start_epoch(0);
    restarted.start_epoch(1);  // abandons epoch 0's batches in flight
    auto b = restarted.next();
    REQUIRE(b.has_value());
    CHECK(b->epoch == 1);
    const std::vector<int64_t> order = epoch_order(200, 1234, 1, true);
    CHECK(b->indices == std::vector<int64_t>(order.begin(), order.begin() + 8));
  }
}

TEST_CASE("loader: batch buffers come from the allocator and are reused only once released") {
  auto ds = std::make_shared<Synthetic>(20);
  auto allocations = std::make_shared<std::atomic<int>>(0);
  LoaderOptions o = options_4x4(4, 1);
  o.prefetch = 2;
  o.allocate = [allocations](const Shape& s, DType t) {
    ++*allocations;
    return Tensor::empty(s, t);
  };
  Loader loader(ds, Pipeline{}, o);
  std::vector<Recorded> expected = run_epoch(loader, 0);  // batches dropped as they are read
  CHECK(allocations->load() == 6);                        // 3 slots x (images, labels)

  loader.start_epoch(0);
  std::vector<Batch> held;
  while (auto b = loader.next()) held.push_back(*b);
  REQUIRE(held.size() == 5);
  for (size_t k = 0; k < held.size(); ++k) CHECK(record(held[k]) == expected[k]);  // nothing overwritten
  CHECK(allocations->load() > 6);

  LoaderOptions wrong = options_4x4(4, 1);
  wrong.allocate = [](const Shape&, DType t) { return Tensor::empty({1}, t); };
  Loader bad(ds, Pipeline{}, wrong);
  bad.start_epoch(0);
  CHECK_THROWS_WITH_AS(bad.next(), "loader: the batch allocator must return host tensors of the requested shape and dtype",
                       Error);
}

TEST_CASE("loader: missing and corrupt image files under the fail and skip policies") {
  TempDir dir("loader_bad");
  const std::string root = dir.str();
  for (int i : {0, 1, 3, 5}) test::write_png(dir.file(cat(i, ".png")), 4, 4, 1, std::vector<unsigned char>(16, 40 * i));
  test::write_text(dir.file("4.png"), "not an image");
  test::write_text(dir.file("list.txt"), "0.png 0\n1.png 1\n2.png 2\n3.png 3\n4.png 4\n5.png 5\n");
  auto ds = std::make_shared<ImageFileDataset>(list_file_dataset(dir.file("list.txt"), root, {.channels = 1}));
  const std::string missing = "image " + root + "/2.png: cannot open: No such file or directory";
  const std::string corrupt = "image " + root + "/4.png: not a JPEG or PNG file";
  LoaderOptions o = options_4x4(2, 2);
  o.shuffle = false;

  SUBCASE("fail (the default): the batch with the bad file throws its SampleError, every time") {
    Loader loader(ds, Pipeline{}, o);
    loader.start_epoch(0);
    CHECK(loader.next()->indices == std::vector<int64_t>{0, 1});
    CHECK_THROWS_WITH_AS(loader.next(), missing.c_str(), SampleError);
    CHECK_THROWS_WITH_AS(loader.next(), missing.c_str(), SampleError);
    CHECK(loader.position() == LoaderPosition{0, 1});
  }
  SUBCASE("skip: the next readable file replaces a bad one, counted per epoch") {
    o.bad_images = BadImagePolicy::skip;
    o.max_skipped = 2;
    Loader loader(ds, Pipeline{}, o);
    std::vector<Recorded> batches = run_epoch(loader, 0);
    REQUIRE(batches.size() == 3);
    CHECK(batches[1].indices == std::vector<int64_t>{3, 3});
    CHECK(batches[1].labels == std::vector<double>{3, 3});
    CHECK(batches[2].indices == std::vector<int64_t>{5, 5});
    CHECK(batches[2].images[0] == doctest::Approx(200 / 255.0));
    CHECK(loader.skipped() == 2);
    CHECK(loader.skip_messages() == std::vector<std::string>{missing, corrupt});
    loader.start_epoch(1);
    CHECK(loader.skipped() == 0);
  }
  SUBCASE("skip: more than max_skipped in an epoch throws at the batch that exceeds it") {
    o.bad_images = BadImagePolicy::skip;
    o.max_skipped = 1;
    Loader loader(ds, Pipeline{}, o);
    loader.start_epoch(0);
    CHECK(loader.next().has_value());
    CHECK(loader.next().has_value());
    const std::string msg = "loader: more than max_skipped = 1 bad images in epoch 0 (2 skipped by batch 2); the last: " + corrupt;
    CHECK_THROWS_WITH_AS(loader.next(), msg.c_str(), Error);
    CHECK_THROWS_WITH_AS(loader.next(), msg.c_str(), Error);
  }
  SUBCASE("skip with max_skipped 0 tolerates nothing") {
    o.bad_images = BadImagePolicy::skip;
    Loader loader(ds, Pipeline{}, o);
    loader.start_epoch(0);
    loader.next();
    CHECK_THROWS_WITH_AS(loader.next(),
                         ("loader: more than max_skipped = 0 bad images in epoch 0 (1 skipped by batch 1); the last: " + missing).c_str(),
                         Error);
  }
  SUBCASE("skip when no file is readable") {
    auto all_bad = std::make_shared<Synthetic>(3, std::set<int64_t>{0, 1, 2});
    o.bad_images = BadImagePolicy::skip;
    o.max_skipped = 100;
    Loader loader(all_bad, Pipeline{}, o);
    loader.start_epoch(0);
    CHECK_THROWS_WITH_AS(loader.next(), "loader: no readable image in the dataset (synthetic/0 and all 2 others failed)", Error);
  }
}

TEST_CASE("loader: transform failures and wrong sample shapes name the sample") {
  auto ds = std::make_shared<Synthetic>(6);
  Loader norm(ds, Pipeline{normalize({0, 0, 0}, {1, 1, 1})}, options_4x4(2, 1));
  norm.start_epoch(0);
  const int64_t first = epoch_order(6, 1234, 0, true)[0];
  CHECK_THROWS_WITH_AS(norm.next(),
                       cat("sample synthetic/", first, ": normalize(mean 0 0 0, std 1 1 1): image has 1 channels but ",
                           "mean/std have 3").c_str(),
                       Error);
  LoaderOptions o = options_4x4(2, 1);
  o.height = o.width = 3;
  Loader shape(ds, Pipeline{horizontal_flip(0.0)}, o);
  shape.start_epoch(0);
  CHECK_THROWS_WITH_AS(shape.next(),
                       cat("sample synthetic/", first, ": the transforms (horizontal_flip(0)) produce 1x4x4 but the ",
                           "loader's sample shape is 1x3x3").c_str(),
                       Error);
}

TEST_CASE("loader: bad options and calls are refused with messages") {
  auto ds = std::make_shared<Synthetic>(10);
  auto refused = [&](LoaderOptions o, const char* message) {
    CHECK_THROWS_WITH_AS(Loader(ds, Pipeline{}, o), message, Error);
  };
  LoaderOptions o = options_4x4(4, 1);
  o.batch_size = 0;
  refused(o, "loader: batch_size must be positive, got 0");
  o = options_4x4(4, 0);
  refused(o, "loader: workers must be at least 1, got 0");
  o = options_4x4(4, 1);
  o.channels = 0;
  refused(o, "loader: the sample shape channels x height x width must be positive, got 0x4x4");
  o = options_4x4(11, 1);
  o.drop_last = true;
  refused(o, "loader: drop_last with batch_size 11 leaves no batch of the 10 samples");
  o = options_4x4(4, 1);
  o.prefetch = -1;
  refused(o, "loader: prefetch must be >= 0, got -1");
  o = options_4x4(4, 1);
  o.max_skipped = -1;
  refused(o, "loader: max_skipped must be >= 0, got -1");
  CHECK_THROWS_WITH_AS(Loader(nullptr, Pipeline{}, options_4x4(4, 1)), "loader: no dataset", Error);

  Loader loader(ds, Pipeline{}, options_4x4(4, 1));
  CHECK_THROWS_WITH_AS(loader.next(), "loader: call start_epoch() before next()", Error);
  CHECK_THROWS_WITH_AS(loader.start_epoch(0, 4), "loader: batch 4 is outside the epoch's 3 batches", Error);
  CHECK_THROWS_WITH_AS(loader.start_epoch(-1), "loader: epoch must be >= 0, got -1", Error);
}

TEST_CASE("resource bounds: a list of two million missing files stops at max_skipped, not after probing them all") {
  TempDir dir("loader_missing");
  std::string list;
  list.reserve(2'000'000 * 16);
  for (int i = 0; i < 2'000'000; ++i) list += cat("m/", i, ".png ", i % 10, "\n");
  test::write_text(dir.file("list.txt"), list);
  auto ds = std::make_shared<ImageFileDataset>(list_file_dataset(dir.file("list.txt"), dir.str(), {.channels = 1}));
  REQUIRE(ds->size() == 2'000'000);
  LoaderOptions o = options_4x4(2, 1);
  o.shuffle = false;
  const std::string first = "image " + dir.str() + "/m/0.png: cannot open: No such file or directory";
  SUBCASE("fail: the first missing file ends the epoch") {
    Loader loader(ds, Pipeline{}, o);
    loader.start_epoch(0);
    CHECK_THROWS_WITH_AS(loader.next(), first.c_str(), SampleError);
  }
  SUBCASE("skip: the limit is named once it is exceeded") {
    o.bad_images = BadImagePolicy::skip;
    o.max_skipped = 100;
    Loader loader(ds, Pipeline{}, o);
    loader.start_epoch(0);
    CHECK_THROWS_WITH_AS(loader.next(),
                         ("loader: more than max_skipped = 100 bad images in epoch 0 (101 skipped by batch 0); the last: "
                          "image " + dir.str() + "/m/100.png: cannot open: No such file or directory").c_str(),
                         Error);
  }
}
