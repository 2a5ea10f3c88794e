// libFuzzer harness for the GLDv2 train.csv reader (train/data/image_files.h): the input is the csv.
// Nothing is decoded: the reader only lists the images and numbers the landmarks.
#include "tools/fuzz/fuzz_support.h"
#include "train/data/image_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  const std::string csv = fuzz::scratch().write("train.csv", {reinterpret_cast<const char*>(data), size});
  try {
    data::ImageFileDataset set = data::gldv2_dataset(csv, fuzz::scratch().path());
    for (int64_t i = 0; i < set.size(); ++i)
      if (set.label(i) < 0 || set.label(i) >= set.num_classes()) fuzz::ScratchDir::die("label out of range");
    ++fuzz::tally().accepted;
  } catch (const Error& e) {
    fuzz::require_clear_refusal(e, {csv});
    ++fuzz::tally().rejected;
  }
  return 0;
}
