// libFuzzer harness for the IDX reader (train/data/idx.h): the input holds the images file, then the
// labels file (fuzz_support.h's InputParts), each plain or gzip-compressed as zlib reads both.
#include "tools/fuzz/fuzz_support.h"
#include "train/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  fuzz::InputParts parts(data, size);
  const std::string images = fuzz::scratch().write("images-idx3-ubyte", parts.next());
  const std::string labels = fuzz::scratch().write("labels-idx1-ubyte", parts.rest());
  try {
    data::IdxDataset set(images, labels);
    // Every sample the reader accepted must load and carry a label inside the declared classes.
    for (int64_t i = 0; i < set.size(); ++i) {
      data::Image img = set.load(i);
      if (img.height != set.height() || img.width != set.width() || set.label(i) >= set.num_classes())
        fuzz::ScratchDir::die(cat("sample ", i, " does not match the set's shape or classes"));
    }
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    fuzz::require_clear_refusal(e, {images, labels});
    ++fuzz::tally().rejected;
  }
  return 0;
}
