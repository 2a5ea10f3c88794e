// Loader throughput: images/s of one full epoch of Fashion-MNIST (IDX) through the training pipeline
// (random crop with 4 pixels of padding, horizontal flip, normalise) with 1, 2, … worker threads, or of an
// image folder (JPEG/PNG decode + random-resized crop) with --folder. Prints one line per thread count.
// Usage: bench_loader [--data DIR] [--folder ROOT --size S] [--batch N] [--threads 1,2] [--epochs E]
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>

#include "tools/cli_args.h"
#include "train/data/idx.h"
#include "train/data/image_files.h"
#include "train/data/loader.h"

using namespace scpn;
using namespace scpn::data;

int main(int argc, char** argv) try {
  tools::CliArgs args(argc, argv, {"--data", "--folder", "--size", "--batch", "--threads", "--epochs"});
  if (args.help()) {
    std::printf("usage: bench_loader [--data DIR] [--folder ROOT --size S] [--batch N] [--threads 1,2] [--epochs E]\n");
    return 0;
  }
  const int64_t batch = tools::parse_int("--batch", args.get("--batch", "256"));
  const int64_t epochs = tools::parse_int("--epochs", args.get("--epochs", "1"));
  std::shared_ptr<const Dataset> dataset;
  Pipeline pipeline;
  LoaderOptions options;
  options.batch_size = batch;
  std::string what;
  if (args.has("--folder")) {
    const int64_t size = tools::parse_int("--size", args.get("--size", "224"));
    dataset = std::make_shared<ImageFileDataset>(image_folder_dataset(args.get("--folder", "")));
    pipeline = Pipeline{random_resized_crop(size, size), horizontal_flip(),
                        normalize({0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f})};
    options.channels = 3;
    options.height = options.width = size;
    what = "image folder " + args.get("--folder", "");
  } else {
    const std::string dir = args.get("--data", "/usr/share/datasets/fashion-mnist");
    dataset = std::make_shared<IdxDataset>(IdxDataset::from_folder(dir, true));
    pipeline = Pipeline{random_crop(28, 28, 4), horizontal_flip(), normalize({0.2860f}, {0.3530f})};
    options.channels = 1;
    options.height = options.width = 28;
    what = "Fashion-MNIST train (" + dir + ")";
  }
  std::printf("%s: %lld images, batch %lld, pipeline %s\n", what.c_str(), (long long)dataset->size(), (long long)batch,
              pipeline.describe().c_str());
  std::stringstream list(args.get("--threads", "1,2"));
  for (std::string item; std::getline(list, item, ',');) {
    options.workers = int(tools::parse_int("--threads", item));
    Loader loader(dataset, pipeline, options);
    int64_t images = 0;
    auto start = std::chrono::steady_clock::now();
    for (int64_t e = 0; e < epochs; ++e) {
      loader.start_epoch(e);
      while (auto b = loader.next()) images += b->images.size(0);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("workers %d: %lld images in %.3f s = %.0f images/s\n", options.workers, (long long)images, seconds,
                double(images) / seconds);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_loader: %s\n", e.what());
  return 1;
}
