// Host allocation and the hook through which the CUDA backend provides device memory.
#include "engine/memory.h"

#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/common/error.h"
#include "engine/dispatch.h"

namespace scpn {

namespace {
DeviceMemory& cuda_ops() {
  static DeviceMemory ops;
  return ops;
}
void require_cuda(Device d) {
  if (!cuda_memory_available())
    throw Error(cat("device ", d.str(), " requested but this build has no CUDA backend or no CUDA device"));
}

// Host blocks of at least kCachedMinBytes go back to a cache when released and serve later requests of
// the same size class. A training step allocates the same activation and gradient sizes pass after pass;
// fresh blocks come from the kernel as untouched pages, one page fault and one page zeroing per 4 KiB
// (several percent of the CPU SCPN step). Size classes are multiples of an eighth of a power of two, so a
// block is at most 12.5% larger than asked. At most kMaxCachedBytes wait in the cache; SCPN_HOST_CACHE=0
// turns it off (1, the default, on) (memory checkers then see every block freed).
constexpr size_t kCachedMinBytes = size_t(64) << 10;
constexpr size_t kMaxCachedBytes = size_t(1) << 30;

size_t size_class(size_t bytes) {
  if (bytes < kCachedMinBytes) return bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

class HostCache {
 public:
  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(size);
    if (it == blocks_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return p;
  }
  bool give(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_ + size > kMaxCachedBytes) return false;
    blocks_[size].push_back(p);
    cached_ += size;
    return true;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> blocks_;
  size_t cached_ = 0;
};

// Never destroyed: tensors in static storage may be released after any destructor here would run.
HostCache* host_cache() {
  static HostCache* cache = [] {
    const char* env = std::getenv("SCPN_HOST_CACHE");
    const std::string value = env ? env : "1";
    if (value != "0" && value != "1") throw Error(cat("SCPN_HOST_CACHE=", value, ": expected 0 (off) or 1 (on)"));
    return value == "0" ? nullptr : new HostCache;
  }();
  return cache;
}
}  // namespace

void set_cuda_memory(const DeviceMemory& ops) { cuda_ops() = ops; }
bool cuda_memory_available() {
  kernels();  // the first use of the table installs the CUDA backend's hooks (engine/dispatch.cpp)
  return cuda_ops().allocate != nullptr;
}

void* allocate_bytes(size_t bytes, Device device) {
  if (device.is_cuda()) {
    require_cuda(device);
    return cuda_ops().allocate(bytes, device.index);
  }
  const size_t size = size_class(bytes);
  HostCache* cache = size >= kCachedMinBytes ? host_cache() : nullptr;
  if (void* p = cache ? cache->take(size) : nullptr) return p;
  void* p = std::aligned_alloc(64, size);
  if (!p) throw Error(cat("out of host memory allocating ", bytes, " bytes"));
  return p;
}

void release_bytes(void* ptr, size_t bytes, Device device) {
  if (!ptr) return;
  if (device.is_cuda()) {
    cuda_ops().release(ptr, bytes, device.index);
    return;
  }
  const size_t size = size_class(bytes);
  HostCache* cache = size >= kCachedMinBytes ? host_cache() : nullptr;
  if (cache && cache->give(ptr, size)) return;
  std::free(ptr);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  require_cuda(dst_device.is_cuda() ? dst_device : src_device);
  cuda_ops().copy(dst, dst_device, src, src_device, bytes);
}

}  // namespace scpn
