// eval: evaluates a trained SCPN network at a list of capacities — trained or not — and writes a report
// folder people can look at: the compatibility matrix, self-test and cross-test curves against capacity
// and MACs, the run's training curves, the table, and an HTML page with the run's config (SCPN_METHOD.md
// §5–§6). The work is
// train/eval/sweep and train/report/sweep_report (tested by tests/train/test_prune.cpp); this file parses
// the arguments.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/devices.h"
#include "models/checkpoint.h"
#include "train/eval/model_source.h"
#include "train/eval/sweep.h"
#include "train/report/sweep_report.h"
#include "train/report/training_curves.h"
#include "tools/cli_args.h"

using namespace scpn;
using namespace scpn::train;

namespace {

const char* const kUsage = R"(usage: eval (--run DIR | --checkpoint CKPT --config CONFIG.json) [--output FOLDER]
            [--capacities LIST] [--reestimate-batches N] [--parent-bn yes|no]
            [--gallery-checkpoint CKPT2|RUN2] [--title TEXT] [--device D] [--quiet]

Evaluates the subnetworks of a trained prunable network on the config's test set and writes a report.

  --run DIR              a train_scpn run folder: DIR/final.safetensors and DIR/config.json
  --checkpoint CKPT      the model checkpoint (overrides the run's); a subnetwork that prune wrote (compact
                         in channel granularity) is evaluated as it is, at capacity 1: with
                         --gallery-checkpoint RUN it queries the full model's gallery
  --config CONFIG.json   the run's config (overrides the run's)
  --output FOLDER        the report folder (default DIR/eval with --run); created if needed
  --capacities LIST      comma-separated capacities in (0, 1] (default 0.1,0.2,...,1.0 and the trained
                         ones); 1 is always added.
                         Trained capacities use their own BatchNorm statistics, the others re-estimated ones.
  --reestimate-batches N training batches averaged per re-estimation (default: the config's
                         eval.bn_reestimate_batches)
  --parent-bn yes|no     also evaluate every subnetwork with the parent's statistics (default: the config's
                         eval.parent_bn)
  --gallery-checkpoint C queries by this model's subnetworks against the gallery of another model's parent
                         (a checkpoint, or a run folder's final.safetensors), to compare methods
  --title TEXT           the report's heading
  --device D             auto (default: cuda:0 when a CUDA device is usable, else the CPU), cpu or cuda:N
  --quiet                print nothing but errors (no progress, no table)
  -h, --help             this text

Writes FOLDER/eval.json, eval.txt, compat_map.{svg,png}, compat_r1.{svg,png} (query capacity x gallery
capacity), map_vs_capacity.{svg,png}, map_vs_macs.{svg,png} (self-test, cross-test, cross-test with the
parent's statistics, accuracy; trained capacities filled), training_curves.{svg,png} (the losses, learning
rate, images/s and per-epoch metric from the run's metrics.jsonl, beside its config.json, when there is one)
and index.html. Progress goes to stderr: one line updated in place on a terminal, a line every few seconds
and one per finished phase otherwise.

Exit status: 0 on success, 1 on any error (one line on stderr).
)";

int run(int argc, char** argv) {
  tools::CliArgs args(argc, argv,
                      {"--run", "--checkpoint", "--config", "--output", "--capacities", "--reestimate-batches",
                       "--parent-bn", "--gallery-checkpoint", "--title", "--device"},
                      {"--quiet"});
  if (args.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const bool quiet = args.flag("--quiet");
  ProgressConsole console(ProgressConsole::style_for(quiet));
  std::string run_dir = args.get("--run", "");
  SCPN_CHECK(args.has("--output") || !run_dir.empty(), "missing --output FOLDER (required without --run)");
  std::string output = args.get("--output", run_dir + "/eval");
  SweepOptions options;
  if (args.has("--capacities")) options.capacities = parse_capacity_list("--capacities", args.get("--capacities", ""));
  std::string parent_bn = args.get("--parent-bn", "");
  SCPN_CHECK(parent_bn.empty() || parent_bn == "yes" || parent_bn == "no", "--parent-bn: '", parent_bn,
             "' is not one of yes, no");

  ModelSource source = resolve_model_source(run_dir, args.get("--checkpoint", ""), args.get("--config", ""));
  const TrainConfig& cfg = source.config;
  options.reestimate_batches =
      tools::parse_int("--reestimate-batches", args.get("--reestimate-batches", std::to_string(cfg.bn_reestimate_batches)));
  SCPN_CHECK(options.reestimate_batches >= 1, "--reestimate-batches: ", options.reestimate_batches, " must be >= 1");
  options.parent_bn_too = parent_bn.empty() ? cfg.eval_parent_bn : parent_bn == "yes";
  options.recall_k = cfg.recall_k;
  options.image_size = cfg.image_size;
  options.trained = trained_capacities(cfg);
  options.console = &console;
  if (!args.has("--capacities"))  // the default list shows the trained capacities too
    options.capacities.insert(options.capacities.end(), options.trained.begin(), options.trained.end());
  // A subnetwork tools/prune wrote (compact in channel granularity) is evaluated as the network it is.
  const std::string pruned = pruned_capacity(source.checkpoint);
  if (!pruned.empty()) {
    SCPN_CHECK(!args.has("--capacities") || options.capacities == std::vector<double>{1.0}, "--capacities: ",
               source.checkpoint, " is a subnetwork pruned at capacity ", pruned,
               "; it is evaluated as it is (capacity 1), so drop --capacities");
    SCPN_CHECK(parent_bn != "yes", "--parent-bn yes: ", source.checkpoint, " is a subnetwork pruned at capacity ",
               pruned, "; its BatchNorm statistics are the ones it was exported with");
    SCPN_CHECK(!args.has("--reestimate-batches"), "--reestimate-batches: ", source.checkpoint,
               " is a subnetwork pruned at capacity ", pruned, "; nothing is re-estimated for it");
    options.capacities = {1.0};
    options.trained = {};
    options.parent_bn_too = false;
  }
  const Device device = resolve_device(args.get("--device", "auto"), "--device");
  std::unique_ptr<models::ResNet> model = load_source_model(source, /*accept_pruned=*/true);
  model->to(device);

  std::unique_ptr<models::ResNet> other;
  std::string other_path = args.get("--gallery-checkpoint", "");
  if (!other_path.empty()) {
    if (std::filesystem::is_directory(other_path)) other_path += "/final.safetensors";
    SCPN_CHECK(std::filesystem::is_regular_file(other_path), "--gallery-checkpoint ", other_path, ": no such file");
    other = models::load_model(other_path);
    other->to(device);
    other->eval();
  }

  // The run's training log is drawn into the report: a broken one fails now, not after the sweep.
  const std::string metrics_file = training_metrics_beside(source.config_file);
  if (!metrics_file.empty()) read_training_log(metrics_file);

  OpenedData opened = open_data(source, *model, true, true, &console);
  SweepResult result = run_sweep(*model, *opened.data, options, other.get(), other_path);

  ReportInfo info;
  info.title = args.get("--title", "SCPN evaluation: " + source.checkpoint +
                                       (pruned.empty() ? "" : " (subnetwork pruned at capacity " + pruned + ")"));
  info.checkpoint = source.checkpoint;
  info.config_file = source.config_file;
  info.config = cfg.to_json();
  info.metrics_file = metrics_file;
  write_sweep_report(output, result, info);
  if (quiet) return 0;
  std::printf("%s", result.table().c_str());
  std::printf("eval: wrote %s/index.html (with eval.json, eval.txt and the pictures)\n", output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "eval: error: %s\n", e.what());
    return 1;
  }
}
