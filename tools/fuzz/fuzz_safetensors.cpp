// libFuzzer harness for the safetensors reader (engine/safetensors.h): the input is the file, read
// whole; every tensor the reader returns must hold exactly the bytes its header entry claims.
#include "engine/safetensors.h"
#include "tools/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  const std::string path = fuzz::scratch().write("file.safetensors", {reinterpret_cast<const char*>(data), size});
  try {
    SafetensorsHeader header = read_safetensors_header(path);
    SafetensorsFile file = read_safetensors(path);
    if (file.tensors.size() != header.entries.size()) fuzz::ScratchDir::die("tensor count differs from the header");
    uint64_t total = 0;
    for (size_t i = 0; i < file.tensors.size(); ++i) {
      const SafetensorsEntry& e = header.entries[i];
      if (file.tensors[i].name != e.name || uint64_t(file.tensors[i].tensor.nbytes()) != e.end - e.begin)
        fuzz::ScratchDir::die(cat("tensor '", e.name, "' does not match its header entry"));
      total += e.end - e.begin;
    }
    if (header.data_start + total != size) fuzz::ScratchDir::die("the tensors do not cover the file");
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    fuzz::require_clear_refusal(e, {path});
    ++fuzz::tally().rejected;
  }
  return 0;
}
