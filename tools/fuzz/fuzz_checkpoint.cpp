// libFuzzer harness for model checkpoints (models/checkpoint.h): the input is a safetensors file that
// load_model turns into a ResNet, its metadata's model config included.
#include "models/checkpoint.h"
#include "tools/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  const std::string path = fuzz::scratch().write("model.safetensors", {reinterpret_cast<const char*>(data), size});
  try {
    std::unique_ptr<models::ResNet> model = models::load_model(path);
    if (!model) fuzz::ScratchDir::die("load_model returned no model");
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    fuzz::require_clear_refusal(e, {path});
    ++fuzz::tally().rejected;
  }
  return 0;
}
