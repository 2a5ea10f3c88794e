// prune: cuts the subnetwork at any capacity out of a trained SCPN network, without fine-tuning, and writes
// it as a standalone checkpoint (SCPN_METHOD.md §5); prints its cost against the parent and, with the
// dataset at hand, its retrieval against the parent next to the other choices of BatchNorm statistics.
// The work is train/eval/prune (tested by tests/train/test_prune.cpp); this file parses the arguments.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/devices.h"
#include "models/features.h"
#include "train/atomic_write.h"
#include "train/eval/model_source.h"
#include "train/eval/prune.h"
#include "tools/cli_args.h"

using namespace scpn;
using namespace scpn::train;

namespace {

const char* const kUsage = R"(usage: prune (--run DIR | --checkpoint CKPT --config CONFIG.json) --capacity C --output OUT.safetensors
             [--bn-stats own|reestimate|parent] [--reestimate-batches N] [--evaluate auto|yes|no] [--json FILE]
             [--device D] [--quiet]

Cuts the subnetwork at capacity C (any value in (0, 1], trained or not) out of a trained prunable network by
the per-layer top-C rule on its scores, without fine-tuning, and writes it as a standalone model checkpoint.

  --run DIR              a train_scpn run folder: DIR/final.safetensors and DIR/config.json
  --checkpoint CKPT      the model checkpoint (overrides the run's)
  --config CONFIG.json   the run's config (overrides the run's): dataset, image size, batch size
  --capacity C           fraction of weights kept, in (0, 1]; 1 = the parent
  --bn-stats MODE        the subnetwork's BatchNorm statistics. Default: own when the checkpoint has them (a
                         trained capacity), otherwise reestimate.
                           own         the capacity's own, trained statistics
                           reestimate  the exact average over --reestimate-batches training batches
                           parent      the parent's (the reference implementation's behaviour)
  --reestimate-batches N training batches for re-estimation (default 20)
  --evaluate WHEN        auto (default): evaluate when the config's dataset can be read; yes: required; no
  --output OUT           the subnetwork: channel granularity -> a compact dense model (physically smaller
                         tensors); weight granularity -> the same architecture with masked weights. Read by
                         load_model, extract_features (at capacity 1) and train_scpn --init. Its masks go to
                         OUT.masks.safetensors (u8, one per scored conv).
  --json FILE            also write the summary and evaluation as JSON
  --device D             auto (default: cuda:0 when a CUDA device is usable, else the CPU), cpu or cuda:N
  --quiet                print nothing but errors (no progress, no summary)
  -h, --help             this text

Prints the parameters and multiply-accumulates (MACs) of the subnetwork and their ratio to the parent's.
The evaluation (test set of the config): self-test and cross-test (queries by the subnetwork, gallery by
the parent) mAP and Recall@1, and accuracy, for the exported statistics and, side by side, the same
capacity with its own (when trained), re-estimated and the parent's statistics. Progress goes to stderr:
one line updated in place on a terminal, a line every few seconds and one per finished phase otherwise.

Exit status: 0 on success, 1 on any error (one line on stderr).
)";

int run(int argc, char** argv) {
  tools::CliArgs args(argc, argv,
                      {"--run", "--checkpoint", "--config", "--capacity", "--bn-stats", "--reestimate-batches",
                       "--evaluate", "--output", "--json", "--device"},
                      {"--quiet"});
  if (args.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const bool quiet = args.flag("--quiet");
  ProgressConsole console(ProgressConsole::style_for(quiet));
  PruneOptions options;
  options.console = &console;
  options.capacity = tools::parse_double("--capacity", args.required("--capacity"));
  models::check_capacity("--capacity", options.capacity);
  std::string output = args.required("--output");
  std::filesystem::path folder = std::filesystem::path(output).parent_path();
  SCPN_CHECK(folder.empty() || std::filesystem::is_directory(folder), "--output: folder '", folder.string(),
             "' does not exist");
  if (args.has("--bn-stats")) options.bn_stats = parse_prune_bn_stats(args.get("--bn-stats", ""));
  options.reestimate_batches = tools::parse_int("--reestimate-batches", args.get("--reestimate-batches", "20"));
  SCPN_CHECK(options.reestimate_batches >= 1, "--reestimate-batches: ", options.reestimate_batches, " must be >= 1");
  std::string when = args.get("--evaluate", "auto");
  SCPN_CHECK(when == "auto" || when == "yes" || when == "no", "--evaluate: '", when, "' is not one of auto, yes, no");

  ModelSource source = resolve_model_source(args.get("--run", ""), args.get("--checkpoint", ""), args.get("--config", ""));
  const Device device = resolve_device(args.get("--device", "auto"), "--device");
  std::unique_ptr<models::ResNet> model = load_source_model(source);
  model->to(device);
  options.source_name = source.checkpoint;
  options.image_size = source.config.image_size;
  options.recall_k = source.config.recall_k;
  options.evaluate = when != "no";

  // The data: needed to evaluate and to re-estimate; without it (auto) the subnetwork is still written.
  const bool has_own = options.capacity == 1.0 || model->batch_norms().empty() ||
                       model->batch_norms().front().second->has_capacity(options.capacity);
  const bool reestimates = options.bn_stats == PruneBnStats::reestimate ||
                           (options.bn_stats == PruneBnStats::automatic && !has_own);
  OpenedData opened;
  if (options.evaluate || reestimates) opened = open_data(source, *model, options.evaluate, when == "yes", &console);

  PruneResult result = prune_model(*model, options, opened.data.get(), opened.error);
  save_pruned(output, result, source.checkpoint);
  if (args.has("--json")) {
    nlohmann::json j = result.to_json();
    j["checkpoint"] = source.checkpoint;
    j["config_file"] = source.config_file;
    j["output"] = output;
    write_text_atomic(args.required("--json"), j.dump(2) + "\n");
  }
  if (quiet) return 0;
  std::printf("prune: capacity %s of %s (%s granularity)\n", models::capacity_key(result.capacity).c_str(),
              source.checkpoint.c_str(), models::to_string(result.granularity));
  std::printf("%s", result.summary().c_str());
  if (!result.evaluated && options.evaluate) std::printf("evaluation skipped: %s\n", opened.error.c_str());
  std::printf("wrote %s%s\n", output.c_str(),
              result.subnet.masks.empty() ? "" : (" and its masks " + masks_path(output)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prune: error: %s\n", e.what());
    return 1;
  }
}
