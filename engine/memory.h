// Where tensor bytes come from. CPU memory is 64-byte aligned (whole cache lines, AVX-friendly). The
// CUDA backend installs its caching allocator and copy routine with set_cuda_memory() at start-up; until
// then a CUDA tensor is an error that says the backend is missing.
#pragma once
#include <cstddef>

#include "kernels/common/dtype.h"

namespace scpn {

struct DeviceMemory {
  void* (*allocate)(size_t bytes, int device_index) = nullptr;
  void (*release)(void* ptr, size_t bytes, int device_index) = nullptr;
  // Copies between any two of host and device memory (synchronous with respect to the host).
  void (*copy)(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = nullptr;
};

void set_cuda_memory(const DeviceMemory& ops);
bool cuda_memory_available();

void* allocate_bytes(size_t bytes, Device device);
void release_bytes(void* ptr, size_t bytes, Device device);
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace scpn
