// libFuzzer harness for the `<path> <label>` list-file reader (train/data/image_files.h): the input is
// the list. Nothing is decoded: the reader only lists.
#include "tools/fuzz/fuzz_support.h"
#include "train/data/image_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  const std::string list = fuzz::scratch().write("list.txt", {reinterpret_cast<const char*>(data), size});
  try {
    data::ImageFileDataset set = data::list_file_dataset(list, fuzz::scratch().path());
    for (int64_t i = 0; i < set.size(); ++i)
      if (set.label(i) < 0 || set.label(i) >= set.num_classes()) fuzz::ScratchDir::die("label out of range");
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    fuzz::require_clear_refusal(e, {list});
    ++fuzz::tally().rejected;
  }
  return 0;
}
