// Prints the parameter / FLOP table of ResNet-18 and ResNet-50 (imagenet stem, feature_dim 256, 1000
// classes) at capacities 1.0/0.8/0.6/0.4/0.2 in both granularities; FLOPs are models/complexity.h's MACs.
// Usage: model_table [--size PIXELS]   (default 224; square input)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "models/complexity.h"

using namespace scpn;
using namespace scpn::models;

int main(int argc, char** argv) {
  try {
    int64_t size = 224;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--size" && i + 1 < argc) {
        size = std::atoll(argv[++i]);
      } else {
        std::fprintf(stderr, "usage: %s [--size PIXELS]\n", argv[0]);
        return 2;
      }
    }
    const std::vector<double> capacities = {1.0, 0.8, 0.6, 0.4, 0.2};
    std::printf("Input %lldx%lld, stem imagenet, feature_dim 256, 1000 classes. MACs = multiply-accumulates\n",
                (long long)size, (long long)size);
    std::printf("(\"FLOPs\" in the field's sense); params exclude scores and running statistics.\n\n");
    std::printf("| model | granularity | capacity | params (M) | params / dense | conv params (M) | MACs (G) | MACs / dense |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const char* arch : {"resnet18", "resnet50"}) {
      for (Granularity g : {Granularity::weight, Granularity::channel}) {
        ResNetConfig config = ResNetConfig::named(arch);
        config.stem = Stem::imagenet;
        config.feature_dim = 256;
        config.num_classes = 1000;
        config.granularity = g;
        // Scores from the default init. Weight-granularity counts depend only on each layer's kept
        // fraction, so they hold for any trained scores; channel-granularity counts depend on the kept
        // filters, hence on the scores (the per-layer rank fixes each layer's kept count, not which filters).
        Generator gen(0);
        ResNet model(config, gen);
        model.prepare_masks(capacities);  // one ranking per layer serves every capacity
        for (double c : capacities) {
          Complexity x = count_complexity(model, c, size, size);
          std::printf("| %s | %s | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", arch, to_string(g), c,
                      double(x.params) / 1e6, double(x.params) / double(x.dense_params), double(x.conv_params) / 1e6,
                      double(x.macs) / 1e9, double(x.macs) / double(x.dense_macs));
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_table: %s\n", e.what());
    return 1;
  }
  return 0;
}
