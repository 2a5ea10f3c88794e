// Writes a small safetensors file with one tensor of every dtype the engine has (plus an empty one and a
// 0-d scalar) and prints its summary, to compare with the reference package's reading:
//   write_sample_safetensors OUT.safetensors && python3 tools/golden/check_safetensors.py OUT.safetensors
#include <cstdio>

#include "engine/safetensors.h"
#include "tools/safetensors_summary.h"

using namespace scpn;

namespace {

std::vector<NamedTensor> sample_tensors() {
  Generator gen(2024);
  return {
      {"conv1.weight", normal({4, 1, 3, 3}, 0.0, 0.5, gen)},
      {"bn1.running_var", uniform({4}, 0.5, 2.0, gen, DType::f64)},
      {"bn1.num_batches_tracked", from_vector({123}, {}, DType::i64)},
      {"fc.weight.bf16", normal({2, 3}, 0.0, 1.0, gen, DType::bf16)},
      {"fc.bias.f16", from_vector({0.5, -1.0, 3.140625}, {3}, DType::f16)},
      {"labels", from_vector({-7, 0, 42, 2147483647, -2147483648.0}, {5}, DType::i32)},
      {"mask", from_vector({0, 1, 2, 253, 254, 255, 7}, {7}, DType::u8)},  // odd byte count
      {"empty", zeros({0, 3})},
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
    return 2;
  }
  try {
    SafetensorsMetadata metadata{{"arch", "sample"}, {"format_version", "1"},
                                 {"writer", "tools/write_sample_safetensors"}};
    save_safetensors(argv[1], sample_tensors(), metadata);
    tools::print_summary(read_safetensors(argv[1]), "written and read back by scpn");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_sample_safetensors: %s\n", e.what());
    return 1;
  }
  return 0;
}
