// The kernel lab's CUDA helpers, for its .cu files only: error checks, device buffers, whether a device
// is there, and the median time of a run measured with events on the default stream.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/kernel_lab/lab.h"

namespace lab::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// The reason a CUDA variant cannot run here, or empty when a device is usable.
inline std::string unavailable() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    cudaGetLastError();  // clear the sticky error of a failed query
    return "no CUDA device";
  }
  return "";
}

// A device array of T that frees itself.
template <class T>
class Buffer {
 public:
  explicit Buffer(size_t count) : count_(count) {
    check(cudaMalloc(&data_, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc");
  }
  explicit Buffer(const std::vector<T>& host) : Buffer(host.size()) {
    check(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
  }
  ~Buffer() { cudaFree(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return data_; }
  void copy_to(std::vector<T>& host) const {
    host.resize(count_);
    check(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
  }

 private:
  T* data_ = nullptr;
  size_t count_;
};

// Runs `launch` once (policy null) or as median_seconds does on the CPU, each run timed by a pair of
// events around it; checks every launch.
template <class Launch>
Timing run_on_device(const Launch& launch, const TimingPolicy* policy) {
  auto once = [&] {
    launch();
    check(cudaGetLastError(), "kernel launch");
  };
  if (!policy) {
    once();
    check(cudaDeviceSynchronize(), "kernel");
    return {};
  }
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  once();  // warm-up
  std::vector<double> times;
  const double begin = seconds_now();
  while (int(times.size()) < policy->repeats || seconds_now() - begin < policy->min_seconds) {
    check(cudaEventRecord(start), "cudaEventRecord");
    once();
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "kernel");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(double(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], ""};
}

}  // namespace lab::cuda
