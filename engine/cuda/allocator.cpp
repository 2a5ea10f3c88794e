// The caching device allocator and page-locked host buffers (see allocator.h).
#include "engine/cuda/allocator.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <string_view>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <cuda_runtime.h>

#include "engine/cuda/runtime.h"
#include "kernels/cuda/check.h"

namespace scpn::cuda {

namespace {

struct DevicePool {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> cached blocks
  MemoryStats stats;
  int64_t cap = 0;
};

// SCPN_CUDA_MEMORY_CAP_MB: a whole number of MiB (0 = no cap); anything else is refused, not read as 0.
int64_t initial_cap() {
  const char* e = std::getenv("SCPN_CUDA_MEMORY_CAP_MB");
  if (!e) return 0;
  const std::string_view text(e);
  int64_t mib = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mib);
  if (ec != std::errc() || end != text.data() + text.size() || mib < 0 || mib > (int64_t(1) << 40))
    throw Error(cat("SCPN_CUDA_MEMORY_CAP_MB='", text, "' is not a whole number of MiB >= 0"));
  return mib * (int64_t(1) << 20);
}

DevicePool& pool(int device_index) {
  // Never destroyed, like the kernel table (engine/dispatch.cpp): a tensor released during static
  // destruction (a static model, a kernel run from a destructor) must still find its pool.
  static auto* m = new std::mutex;
  static auto* pools = new std::map<int, DevicePool>;  // std::map never moves its elements
  std::lock_guard lock(*m);
  auto it = pools->find(device_index);
  if (it == pools->end()) {
    const int64_t cap = initial_cap();  // may throw: then no pool is made, and the next call asks again
    it = pools->try_emplace(device_index).first;
    it->second.cap = cap;
  }
  return it->second;
}

// Frees every cached block of a device; the pool's mutex is held.
void release_cached(int device_index, DevicePool& p) {
  if (p.stats.cached_blocks == 0) return;
  SCPN_CUDA_CHECK(cudaSetDevice(device_index));
  // A cached block may still be used by queued work (blocks are released once their work is enqueued).
  // cudaFree is documented as synchronous only "for most use cases", so wait for the device explicitly.
  SCPN_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [bytes, blocks] : p.free_blocks) {
    while (!blocks.empty()) {
      // Out of the bin before the free: if cudaFree throws, no freed pointer stays to be handed out.
      void* b = blocks.back();
      blocks.pop_back();
      --p.stats.cached_blocks;
      p.stats.reserved -= int64_t(bytes);
      ++p.stats.free_calls;
      SCPN_CUDA_CHECK(cudaFree(b));
    }
  }
}

}  // namespace

size_t size_class(size_t bytes) {
  constexpr size_t kMinimum = 512;
  if (bytes <= kMinimum) return kMinimum;
  // Steps of a quarter of the power of two below the request: 1024 -> 1024, 1025 -> 1280, 5 MiB -> 5 MiB.
  const size_t step = std::max<size_t>(kMinimum, std::bit_floor(bytes) / 4);
  return (bytes + step - 1) / step * step;
}

void* device_allocate(size_t bytes, int device_index) {
  require_device(device_index);
  const size_t cls = size_class(bytes);
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  void* ptr = nullptr;
  if (auto it = p.free_blocks.find(cls); it != p.free_blocks.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    --p.stats.cached_blocks;
  } else {
    SCPN_CUDA_CHECK(cudaSetDevice(device_index));
    const bool over_cap = p.cap > 0 && p.stats.reserved + int64_t(cls) > p.cap;
    cudaError_t s = over_cap ? cudaErrorMemoryAllocation : cudaMalloc(&ptr, cls);
    if (s != cudaSuccess) {
      cudaGetLastError();  // an out-of-memory error is not sticky; clear it before retrying
      release_cached(device_index, p);
      const bool still_over_cap = p.cap > 0 && p.stats.reserved + int64_t(cls) > p.cap;
      s = still_over_cap ? cudaErrorMemoryAllocation : cudaMalloc(&ptr, cls);
      if (s != cudaSuccess) {
        cudaGetLastError();
        throw Error(cat("cuda:", device_index, ": cannot allocate ", bytes, " bytes (size class ", cls, "): ",
                        still_over_cap ? cat("the cap of ", p.cap, " bytes would be passed")
                                       : cat("cudaMalloc failed: ", cuda_check::describe(s)),
                        "; ", describe(p.stats)));
      }
    }
    ++p.stats.malloc_calls;
    p.stats.reserved += int64_t(cls);
    p.stats.peak_reserved = std::max(p.stats.peak_reserved, p.stats.reserved);
  }
  p.stats.allocated += int64_t(cls);
  p.stats.peak_allocated = std::max(p.stats.peak_allocated, p.stats.allocated);
  return ptr;
}

void device_release(void* ptr, size_t bytes, int device_index) {
  if (!ptr) return;
  const size_t cls = size_class(bytes);
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  p.free_blocks[cls].push_back(ptr);
  ++p.stats.cached_blocks;
  p.stats.allocated -= int64_t(cls);
}

MemoryStats memory_stats(int device_index) {
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  return p.stats;
}

void reset_peak_stats(int device_index) {
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  p.stats.peak_allocated = p.stats.allocated;
  p.stats.peak_reserved = p.stats.reserved;
}

void empty_cache(int device_index) {
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  release_cached(device_index, p);
}

void set_memory_cap(int device_index, int64_t bytes) {
  DevicePool& p = pool(device_index);
  std::lock_guard lock(p.mutex);
  p.cap = bytes;
}

std::string describe(const MemoryStats& s) {
  auto mib = [](int64_t b) { return cat(double(b) / double(1 << 20), " MiB"); };
  return cat("allocated ", mib(s.allocated), ", reserved ", mib(s.reserved), ", peak allocated ",
             mib(s.peak_allocated), ", peak reserved ", mib(s.peak_reserved), ", cudaMalloc calls ", s.malloc_calls,
             ", cached blocks ", s.cached_blocks);
}

void* pinned_allocate(size_t bytes) {
  void* ptr = nullptr;
  SCPN_CUDA_CHECK(cudaHostAlloc(&ptr, std::max<size_t>(bytes, 1), cudaHostAllocDefault));
  return ptr;
}

void pinned_release(void* ptr) {
  if (ptr) SCPN_CUDA_CHECK(cudaFreeHost(ptr));
}

}  // namespace scpn::cuda
