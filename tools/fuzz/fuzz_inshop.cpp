// libFuzzer harness for the DeepFashion In-shop partition reader (train/data/image_files.h): the input
// is list_eval_partition.txt, read for each of the three splits. Nothing is decoded: the reader only lists.
#include "tools/fuzz/fuzz_support.h"
#include "train/data/image_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  const std::string partition =
      fuzz::scratch().write("list_eval_partition.txt", {reinterpret_cast<const char*>(data), size});
  bool refused = false;  // by any of the splits
  for (data::InShopSplit split : {data::InShopSplit::train, data::InShopSplit::query, data::InShopSplit::gallery}) {
    try {
      data::ImageFileDataset set = data::inshop_dataset(partition, fuzz::scratch().path(), split);
      for (int64_t i = 0; i < set.size(); ++i)
        if (set.label(i) < 0 || set.label(i) >= set.num_classes()) fuzz::ScratchDir::die("label out of range");
    } catch (const Error& e) {
      fuzz::require_clear_refusal(e, {partition});
      refused = true;
    }
  }
  ++(refused ? fuzz::tally().rejected : fuzz::tally().accepted);
  return 0;
}
