// extract_features: L2-normalised retrieval features of a batch of images, computed by the subnetwork at
// one capacity of an SCPN checkpoint (SCPN_METHOD.md §5-6). The work is models::extract_features
// (tested by tests/models/test_features.cpp); this file checks the inputs and writes the result.
#include <cstdio>
#include <filesystem>

#include "engine/safetensors.h"
#include "engine/devices.h"
#include "models/checkpoint.h"
#include "models/features.h"
#include "tools/cli_args.h"
#include "train/progress.h"

using namespace scpn;
using namespace scpn::models;

namespace {

const char* const kUsage = R"(usage: extract_features --checkpoint CKPT --input IMAGES --capacity C --output OUT
                        [--granularity weight|channel] [--bn-stats own|parent] [--batch-size N] [--device D]
                        [--quiet]

Computes the retrieval features (projector BatchNorm output, L2-normalised) of images with the subnetwork at
capacity C of a model checkpoint, in eval mode.

  --checkpoint CKPT   a model checkpoint (safetensors with "format" = "scpn-model", as train_scpn and
                      init_checkpoint write)
  --input IMAGES      a safetensors file holding a float32 tensor "images" of shape [N, C, H, W]: C = the
                      model's input channels (1 or 3), pixels already normalised as in training (e.g.
                      ImageNet mean/std); other tensors in the file are ignored. Reading datasets (image
                      folders, IDX, list files) directly comes with the data loader, later.
  --capacity C        fraction of weights kept, in (0, 1]; 1 = the dense parent
  --granularity G     weight or channel: must be the checkpoint's (its scores fix it; default)
  --bn-stats MODE     own (default): the capacity's own BatchNorm statistics, which checkpoints keep for
                      trained capacities; parent: the parent's statistics (the reference's behaviour; works
                      at any capacity)
  --batch-size N      images per forward pass (default 64; the result does not depend on it)
  --device D          auto (default: cuda:0 when a CUDA device is usable, else the CPU), cpu or cuda:N
  --output OUT        written atomically: float32 "features" [N, D], rows of unit L2 norm, with metadata
                      capacity, granularity, bn_stats, checkpoint, input
  --quiet             print nothing but errors (no progress, no closing line)
  -h, --help          this text

Progress goes to stderr: one line updated in place on a terminal, a line every few seconds and a final
one otherwise.

Exit status: 0 on success, 1 on any error (one line on stderr).
)";

// Reads the "images" tensor after checking its header entry, so a wrong file is refused before any data
// is read.
Tensor read_images(const std::string& path, const ResNetConfig& config) {
  SafetensorsHeader h = read_safetensors_header(path);
  const SafetensorsEntry* entry = nullptr;
  for (const SafetensorsEntry& e : h.entries)
    if (e.name == "images") entry = &e;
  SCPN_CHECK(entry, path, ": no tensor 'images' (expected a float32 tensor 'images' [N, C, H, W]; see --help)");
  SCPN_CHECK(entry->dtype == DType::f32, path, ": tensor 'images' is ", safetensors_dtype_name(entry->dtype),
             ", F32 expected");
  SCPN_CHECK(entry->shape.size() == 4, path, ": tensor 'images' has shape ", shape_str(entry->shape),
             ", [N, C, H, W] expected");
  SCPN_CHECK(entry->shape[1] == config.in_channels, path, ": tensor 'images' ", shape_str(entry->shape), " has ",
             entry->shape[1], " channels, the checkpoint's model expects ", config.in_channels);
  SCPN_CHECK(entry->shape[0] >= 1, path, ": tensor 'images' holds no image");
  Tensor images = Tensor::empty(entry->shape, DType::f32);
  LoadIntoOptions options;
  options.allow_extra = true;
  load_into(path, {{"images", images}}, options);
  return images;
}

int run(int argc, char** argv) {
  tools::CliArgs args(argc, argv,
                      {"--checkpoint", "--input", "--capacity", "--granularity", "--bn-stats", "--batch-size",
                       "--output", "--device"},
                      {"--quiet"});
  if (args.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const bool quiet = args.flag("--quiet");
  train::ProgressConsole console(train::ProgressConsole::style_for(quiet));
  std::string checkpoint = args.required("--checkpoint"), input = args.required("--input");
  std::string output = args.required("--output");
  // Refuse an unwritable destination before the forward passes, not after.
  std::filesystem::path folder = std::filesystem::path(output).parent_path();
  SCPN_CHECK(folder.empty() || std::filesystem::is_directory(folder), "--output: folder '", folder.string(),
             "' does not exist");
  double capacity = tools::parse_double("--capacity", args.required("--capacity"));
  check_capacity("--capacity", capacity);
  int64_t batch_size = tools::parse_int("--batch-size", args.get("--batch-size", "64"));
  SCPN_CHECK(batch_size >= 1, "--batch-size: ", batch_size, " must be >= 1");
  std::string bn_stats = args.get("--bn-stats", "own");
  SCPN_CHECK(bn_stats == "own" || bn_stats == "parent", "--bn-stats: '", bn_stats, "' is not one of own, parent");
  std::string granularity = args.get("--granularity", "");
  SCPN_CHECK(granularity.empty() || granularity == "weight" || granularity == "channel", "--granularity: '",
             granularity, "' is not one of weight, channel");

  const Device device = resolve_device(args.get("--device", "auto"), "--device");
  std::unique_ptr<ResNet> model = load_model(checkpoint);
  model->to(device);
  const ResNetConfig& config = model->config();
  std::string trained = to_string(config.granularity);
  if (granularity.empty()) granularity = trained;
  SCPN_CHECK(granularity == trained, "--granularity ", granularity, ": ", checkpoint, " was trained with ", trained,
             " granularity, and its scores give only ", trained, " masks");
  ForwardContext ctx;
  ctx.capacity = capacity;
  ctx.bn_stats = bn_stats == "own" ? BnStatsMode::own : BnStatsMode::parent;
  if (ctx.bn_stats == BnStatsMode::own && !model->batch_norms().empty())
    SCPN_CHECK(model->batch_norms().front().second->has_capacity(capacity), checkpoint,
               ": no BatchNorm statistics for capacity ", capacity_key(capacity), " (it has: ",
               bn_capacities_str(*model), "); use --bn-stats parent, or re-estimate them for this capacity");

  Tensor images = read_images(input, config);
  model->eval();
  const PreparedMasks masks(*model, {capacity});  // ranked once for every batch
  train::Progress progress(&console, "extract_features, features", images.size(0), "images");
  Tensor features =
      extract_features(*model, images, ctx, batch_size, [&](int64_t done) { progress.set_done(done); }).to(DType::f32);
  progress.finish();
  SafetensorsMetadata metadata = {{"capacity", capacity_key(capacity)},
                                  {"granularity", granularity},
                                  {"bn_stats", bn_stats},
                                  {"checkpoint", checkpoint},
                                  {"input", input}};
  save_safetensors(output, {{"features", features}}, metadata);
  if (quiet) return 0;
  std::printf("extract_features: wrote %s: features %s at capacity %s (%s granularity, %s BatchNorm statistics)\n",
              output.c_str(), shape_str(features.shape()).c_str(), capacity_key(capacity).c_str(),
              granularity.c_str(), bn_stats.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "extract_features: error: %s\n", e.what());
    return 1;
  }
}
