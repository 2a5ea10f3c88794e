// train_scpn [--config FILE] [--resume] [--init CKPT] [KEY=VALUE ...]: trains a self-compatible prunable
// network as the config says (docs/config.md), evaluates it, and writes the run folder. With no arguments:
// the default demo (Fashion-MNIST, a small ResNet-18, capacities 0.8/0.6/0.4/0.2, cuda:0 if usable).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

namespace {

const char* kUsage =
    "usage: train_scpn [--config FILE] [--resume] [--init CKPT] [--quiet] [KEY=VALUE ...]\n"
    "       train_scpn --config-doc        print docs/config.md (every key, type, default)\n"
    "       train_scpn --print-config [--config FILE] [KEY=VALUE ...]   print the resolved config and exit\n"
    "\n"
    "Trains a prunable ResNet with the SCPN method and evaluates every capacity in eval.capacities.\n"
    "Writes <output.dir>/{config.json, metrics.jsonl, last.safetensors, best.safetensors, final.safetensors,\n"
    "report.json, report.txt}. --resume continues from <output.dir>/last.safetensors with the same config\n"
    "(train.steps/epochs, data.workers, device, output.* and eval.* may change: a run started on a GPU can\n"
    "resume on the CPU and back). --init starts from a checkpoint's weights.\n"
    "\n"
    "Progress goes to stderr: one line updated in place on a terminal; elsewhere (a log file, CI) a line every\n"
    "few seconds and a final line per phase (decoding, training, each evaluation and its capacities) with its\n"
    "count and time. --quiet prints nothing but errors. report.json gets each phase's seconds.\n"
    "\n"
    "Exit codes: 0 done; 1 error (message on stderr: a bad config, missing data, a checkpoint that could not be\n"
    "written, a non-finite step under train.non_finite=stop, ...); 75 stopped by SIGTERM or SIGINT after\n"
    "finishing the step and writing last.safetensors (continue with --resume); 130 / 143 a second SIGINT /\n"
    "SIGTERM during that stop ended the process at once (last.safetensors is then the previous checkpoint,\n"
    "whole: checkpoints are written to a temporary file and renamed). docs/reliability.md has the details.\n";

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and the run reports which file and that
  // the previous checkpoint is kept, instead of being killed by SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  // From here on SIGTERM/SIGINT ask for a stop with a checkpoint (train/stop_signals.h), also one that
  // arrives while the data are read.
  scpn::train::StopSignals stop_signals;
  try {
    std::string config_file;
    std::vector<std::string> overrides;
    scpn::train::TrainerOptions options;
    bool print_config = false;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&](const char* flag) {
        if (i + 1 >= argc) throw scpn::Error(scpn::cat(flag, " needs a value"));
        return std::string(argv[++i]);
      };
      if (a == "--help" || a == "-h") {
        std::printf("%s", kUsage);
        return 0;
      } else if (a == "--config-doc") {
        std::printf("%s", scpn::train::config_reference_markdown().c_str());
        return 0;
      } else if (a == "--config") {
        config_file = value("--config");
      } else if (a == "--resume") {
        options.resume = true;
      } else if (a == "--init") {
        options.init_checkpoint = value("--init");
      } else if (a == "--quiet") {
        options.quiet = true;
      } else if (a == "--print-config") {
        print_config = true;
      } else if (a.rfind("--", 0) == 0) {
        throw scpn::Error(scpn::cat("unknown option '", a, "' (see --help)"));
      } else {
        overrides.push_back(a);
      }
    }
    scpn::train::TrainConfig config = scpn::train::parse_config(config_file, overrides);
    if (print_config) {
      std::printf("%s\n", config.to_json().dump(2).c_str());
      return 0;
    }
    scpn::train::Trainer trainer(config, options);
    return trainer.run().stopped_by_signal ? scpn::train::kExitStoppedBySignal : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_scpn: error: %s\n", e.what());
    return 1;
  }
}
