// libFuzzer harness for train_scpn's config parser (train/config.h): the input is the JSON config file,
// then KEY=VALUE overrides, one per line (fuzz_support.h's InputParts). A refusal of the file names the
// file; a refusal of the merged result names "command line" or the argument ("argument '…'" or, for one
// that is not UTF-8, "argument \"…\"").
#include <vector>

#include "tools/fuzz/fuzz_support.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  fuzz::InputParts parts(data, size);
  const std::string config = fuzz::scratch().write("config.json", parts.next());
  std::vector<std::string> overrides;
  std::string_view text = parts.rest();
  while (!text.empty()) {
    size_t end = std::min(text.find('\n'), text.size());
    overrides.emplace_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  try {
    train::TrainConfig parsed = train::parse_config(config, overrides);
    // An accepted config prints and parses back to the same values (train_scpn --print-config).
    nlohmann::json printed = parsed.to_json();
    if (train::config_from_json(printed, "printed").to_json() != printed)
      fuzz::ScratchDir::die(cat("the printed config does not parse back: ", printed.dump()));
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    if (overrides.empty()) fuzz::require_clear_refusal(e, {config});
    else fuzz::require_clear_refusal(e, {config, "command line", "argument "});
    ++fuzz::tally().rejected;
  }
  return 0;
}
