// Multi-tensor launches (one launch over a whole list of tensors), shared by the fused optimizer and the
// gradient integration and clip kernels. Included only by .cu files.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/scratch.h"

namespace scpn::cuda {

// Each tensor is cut into fixed chunks; the host writes chunk_begin[count + 1] (tensor t owns chunks
// [chunk_begin[t], chunk_begin[t + 1])); descriptor tables and that list go to the device in one copy;
// every block takes chunks in a grid-stride loop and finds the owning tensor by binary search.

// Blocks for a grid-stride loop over `items` chunks: one block per chunk up to a few waves of the device.
inline constexpr int64_t kMultiTensorMaxBlocks = 132 * 16;
inline unsigned multi_tensor_blocks(int64_t items) {
  return unsigned(std::clamp<int64_t>(items, 1, kMultiTensorMaxBlocks));
}

// chunk_begin[count + 1] for tensors of the given sizes cut into chunks of `chunk` elements (an empty or
// negative size gets no chunk but keeps its entry).
inline std::vector<int64_t> chunk_offsets(const int64_t* sizes, int64_t count, int64_t chunk) {
  std::vector<int64_t> begin(size_t(count) + 1, 0);
  for (int64_t t = 0; t < count; ++t)
    begin[size_t(t) + 1] = begin[size_t(t)] + (std::max<int64_t>(sizes[t], 0) + chunk - 1) / chunk;
  return begin;
}

// The item (chunk or row) c belongs to the last list entry t with begin[t] <= c; begin has count + 1
// entries, begin[0] = 0 <= c < begin[count]. Entries without items share their begin with the next entry,
// so the last such t is never empty.
__device__ inline int64_t owner_of(const int64_t* begin, int64_t count, int64_t c) {
  int64_t lo = 0, hi = count - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (begin[mid] <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// Host arrays packed into one buffer and sent to the device in one copy; each array starts 16-byte aligned.
// The device buffer is scratch from the caching allocator, returned when the object dies (safe once the
// kernels that read it are enqueued on the same stream).
class PackedUpload {
 public:
  template <class U>
  size_t append(const std::vector<U>& v) {
    const size_t offset = (bytes_.size() + 15) / 16 * 16;
    bytes_.resize(offset + v.size() * sizeof(U));
    if (!v.empty()) std::memcpy(bytes_.data() + offset, v.data(), v.size() * sizeof(U));
    return offset;
  }
  // A pageable source is staged by the driver before cudaMemcpyAsync returns, so the host bytes may go.
  void send(const ExecContext& ctx) {
    device_.emplace(ctx, bytes_.size());
    if (bytes_.empty()) return;
    SCPN_CUDA_CHECK(
        cudaMemcpyAsync(device_->get(), bytes_.data(), bytes_.size(), cudaMemcpyHostToDevice, stream_of(ctx)));
  }
  template <class U>
  const U* at(size_t offset) const {
    return reinterpret_cast<const U*>(static_cast<const unsigned char*>(device_->get()) + offset);
  }

 private:
  std::vector<unsigned char> bytes_;
  std::optional<Scratch> device_;
};

}  // namespace scpn::cuda
