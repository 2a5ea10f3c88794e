// init_checkpoint: writes a freshly initialised model checkpoint from a model config, optionally starting
// from a torchvision ResNet state dict (pretrained weights). Useful for trying the tools on a model before
// training one, and for starting a run from ImageNet weights. The work is models/checkpoint.h.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "tools/cli_args.h"

using namespace scpn;
using namespace scpn::models;

namespace {

const char* const kUsage = R"(usage: init_checkpoint --model-config JSON|@FILE --output OUT [--seed S] [--dtype f32|f64]
                       [--torchvision STATE_DICT]

Builds a prunable ResNet from a model config (ResNetConfig's keys, models/config.h; a key left out takes
ResNetConfig's default, not train_scpn's: resnet18, imagenet_nopool stem, base width 64, feature_dim 256,
1000 classes, weight granularity), initialised from seed S (default 0), and writes it as a model checkpoint.
Example: --model-config '{"arch": "resnet18", "base_width": 16, "stem": "small", "bn_capacities": [0.8, 0.5]}'

  --model-config C    the config as JSON text, or @FILE to read it from a file
  --output OUT        the checkpoint (safetensors, written atomically)
  --seed S            initialisation seed (default 0)
  --dtype D           f32 (default) or f64
  --torchvision SD    a torchvision ResNet state dict saved as safetensors: its conv/bn/layer tensors are
                      loaded (shapes must match the config), fc.* and num_batches_tracked skipped; scores,
                      projector, feature_bn and classifier stay as initialised
  -h, --help          this text

Exit status: 0 on success, 1 on any error (one line on stderr).
)";

nlohmann::json read_config(const std::string& text) {
  std::string source = text, json_text = text;
  if (!text.empty() && text[0] == '@') {
    source = text.substr(1);
    std::ifstream in(source);
    SCPN_CHECK(in, source, ": cannot open");
    std::ostringstream all;
    all << in.rdbuf();
    json_text = all.str();
  }
  try {
    return nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error&) {
    throw Error(cat("--model-config: ", text[0] == '@' ? source + " is" : std::string("the text is"),
                    " not valid JSON"));
  }
}

int run(int argc, char** argv) {
  tools::CliArgs args(argc, argv, {"--model-config", "--output", "--seed", "--dtype", "--torchvision"});
  if (args.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  ResNetConfig config = ResNetConfig::from_json(read_config(args.required("--model-config")));
  std::string output = args.required("--output");
  int64_t seed = tools::parse_int("--seed", args.get("--seed", "0"));
  std::string dtype_text = args.get("--dtype", "f32");
  SCPN_CHECK(dtype_text == "f32" || dtype_text == "f64", "--dtype: '", dtype_text, "' is not one of f32, f64");
  SCPN_CHECK(seed >= 0, "--seed: ", seed, " must be >= 0");
  Generator gen{static_cast<uint64_t>(seed)};
  ResNet model(config, gen, dtype_text == "f32" ? DType::f32 : DType::f64);

  SafetensorsMetadata extra = {{"source", cat("init_checkpoint, seed ", seed)}};
  if (args.has("--torchvision")) {
    std::string state_dict = args.required("--torchvision");
    TorchvisionLoadSummary s = load_torchvision_resnet(state_dict, model);
    extra["torchvision_state_dict"] = state_dict;
    std::printf("init_checkpoint: %s: loaded %zu tensors, skipped %zu (fc, num_batches_tracked), left %zu as "
                "initialised (scores, projector, feature_bn, classifier), seeded %zu per-capacity BN statistics\n",
                state_dict.c_str(), s.loaded.size(), s.skipped.size(), s.left_initialised.size(),
                s.seeded_capacity_stats.size());
  }
  save_model(output, model, extra);
  std::printf("init_checkpoint: wrote %s: %s, %s granularity, %lld parameters, %zu tensors\n", output.c_str(),
              config.arch.c_str(), to_string(config.granularity), static_cast<long long>(model.parameter_count()),
              model.state().size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "init_checkpoint: error: %s\n", e.what());
    return 1;
  }
}
