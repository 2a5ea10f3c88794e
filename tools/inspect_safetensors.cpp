// Reads safetensors files with our reader (every check of engine/safetensors.h) and prints their
// metadata and one summary line per tensor, in the format of tools/golden/check_safetensors.py.
// Usage: inspect_safetensors FILE [FILE ...]   (exit status 1 if a file is refused)
#include <cstdio>

#include "engine/safetensors.h"
#include "tools/safetensors_summary.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [FILE ...]\n", argv[0]);
    return 2;
  }
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    try {
      scpn::tools::print_summary(scpn::read_safetensors(argv[i]), "read by scpn");
    } catch (const std::exception& e) {
      std::printf("%s\n", e.what());  // the message names the file
      status = 1;
    }
  }
  return status;
}
