// The caching device allocator: freed blocks wait in size-class bins for the next request of the same
// class on the same stream, because cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds. A steady training step then allocates nothing from the driver.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace scpn::cuda {

struct MemoryStats {
  int64_t allocated = 0;       // bytes in blocks handed out (size-class rounded)
  int64_t reserved = 0;        // bytes obtained from cudaMalloc and not yet returned
  int64_t peak_allocated = 0;  // maxima since start or the last reset_peak_stats
  int64_t peak_reserved = 0;
  int64_t malloc_calls = 0;    // cudaMalloc calls made (a steady step adds none)
  int64_t free_calls = 0;      // cudaFree calls made (by empty_cache and cap pressure)
  int64_t cached_blocks = 0;   // free blocks waiting in the bins
};

// Reuse is per stream: the engine runs one compute stream per device, and a block freed after work was
// enqueued on that stream may be reused by later work on the same stream at once. When a cudaMalloc fails
// or would pass the cap, the device's cached blocks are released and the call retried once; then the error
// names the request, the cap and the statistics.
void* device_allocate(size_t bytes, int device_index);
void device_release(void* ptr, size_t bytes, int device_index);

MemoryStats memory_stats(int device_index);
void reset_peak_stats(int device_index);
// Returns every cached (free) block of the device to the driver.
void empty_cache(int device_index);
// Caps the bytes reserved on a device (0 = no cap). Also set by SCPN_CUDA_MEMORY_CAP_MB at start-up.
void set_memory_cap(int device_index, int64_t bytes);
// The size class a request is served from (exposed for the tests): requests round up to 512 bytes, then to
// a quarter of their power of two (5 MiB takes a 5 MiB block, 5.1 MiB a 6 MiB one), so above 2 KiB no block
// wastes 25% or more (below, at most 512 bytes) and a bin is an exact-size free list.
size_t size_class(size_t bytes);
std::string describe(const MemoryStats& s);

// Page-locked host memory for transfers (cudaHostAlloc): the data loader fills such buffers so that
// host-to-device copies run at full PCIe/NVLink speed and can overlap with compute.
void* pinned_allocate(size_t bytes);
void pinned_release(void* ptr);

}  // namespace scpn::cuda
