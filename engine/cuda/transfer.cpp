// Host <-> device copies through page-locked staging buffers (see transfer.h).
#include "engine/cuda/transfer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include <cuda_runtime.h>

#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "kernels/cuda/check.h"

namespace scpn::cuda {

namespace {

constexpr size_t kStagingBytes = size_t(8) << 20;

struct Staging {
  std::mutex mutex;
  void* buffer = nullptr;
};

Staging& staging(int device_index) {
  // Never destroyed (see the device pools in allocator.cpp): a copy during static destruction still works.
  static auto* m = new std::mutex;
  static auto* per_device = new std::map<int, Staging>;
  std::lock_guard lock(*m);
  return (*per_device)[device_index];  // std::map never moves its elements
}

cudaStream_t stream_of(int device_index) { return static_cast<cudaStream_t>(exec_context_for(device_index).stream); }

void host_to_device(void* dst, int device, const char* src, size_t bytes) {
  cudaStream_t stream = stream_of(device);
  Staging& s = staging(device);
  std::lock_guard lock(s.mutex);
  if (!s.buffer) s.buffer = pinned_allocate(kStagingBytes);
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - done);
    std::memcpy(s.buffer, src + done, n);
    SCPN_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + done, s.buffer, n, cudaMemcpyHostToDevice, stream));
    // The staging buffer is refilled next round, so this chunk must have left it.
    SCPN_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

void device_to_host(char* dst, int device, const void* src, size_t bytes) {
  cudaStream_t stream = stream_of(device);
  Staging& s = staging(device);
  std::lock_guard lock(s.mutex);
  if (!s.buffer) s.buffer = pinned_allocate(kStagingBytes);
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - done);
    SCPN_CUDA_CHECK(
        cudaMemcpyAsync(s.buffer, static_cast<const char*>(src) + done, n, cudaMemcpyDeviceToHost, stream));
    SCPN_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::memcpy(dst + done, s.buffer, n);
  }
}

}  // namespace

void copy_between(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cuda() && src_device.is_cpu()) {
    host_to_device(dst, dst_device.index, static_cast<const char*>(src), bytes);
  } else if (dst_device.is_cpu() && src_device.is_cuda()) {
    device_to_host(static_cast<char*>(dst), src_device.index, src, bytes);
  } else if (dst_device == src_device) {
    SCPN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(dst_device.index)));
  } else {
    // Between two devices: the source's queued work must finish first, then the copy runs on the
    // destination's stream.
    synchronize(src_device.index);
    SCPN_CUDA_CHECK(
        cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream_of(dst_device.index)));
    synchronize(dst_device.index);
  }
}

}  // namespace scpn::cuda
