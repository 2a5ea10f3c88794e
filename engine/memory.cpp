// Host allocation and the hook through which the CUDA backend provides device memory.
#include "engine/memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

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
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw Error(cat("out of host memory allocating ", bytes, " bytes"));
  return p;
}

void release_bytes(void* ptr, size_t bytes, Device device) {
  if (!ptr) return;
  if (device.is_cuda()) {
    cuda_ops().release(ptr, bytes, device.index);
    return;
  }
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
