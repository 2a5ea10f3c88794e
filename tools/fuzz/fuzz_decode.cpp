// libFuzzer harness for the image decoding wrapper (train/data/decode.h): the input is an image file;
// its first byte picks the channel count. Refusals are SampleErrors naming the file.
#include "tools/fuzz/fuzz_support.h"
#include "train/data/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scpn;
  if (size == 0) return 0;
  data::DecodeOptions options;
  options.channels = data[0] & 1 ? 3 : 1;
  options.max_dim = 1024;  // the cap is what keeps a corrupt header from asking for gigabytes
  const std::string path = fuzz::scratch().write("image.png", {reinterpret_cast<const char*>(data + 1), size - 1});
  try {
    data::Image img = data::decode_image_file(path, options);
    if (img.channels != options.channels || img.height < 1 || img.width < 1 || img.height > options.max_dim ||
        img.width > options.max_dim || img.pixels.size() != size_t(img.channels * img.height * img.width))
      fuzz::ScratchDir::die(cat("decoded image has an impossible shape ", img.channels, "x", img.height, "x", img.width));
    ++fuzz::tally().accepted;
  } catch (const data::SampleError& e) {
    if (e.path != path || e.reason.empty()) fuzz::ScratchDir::die(cat("SampleError without path or reason: ", e.what()));
    fuzz::require_clear_refusal(e, {path});
    ++fuzz::tally().rejected;
  }
  return 0;
}
