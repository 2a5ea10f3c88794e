// Per-device contexts, the math mode and the engine hooks of the CUDA backend (see runtime.h).
#include "engine/cuda/runtime.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "engine/dispatch.h"
#include "engine/cuda/allocator.h"
#include "engine/cuda/transfer.h"
#include "engine/memory.h"
#include "kernels/cuda/check.h"

namespace scpn::cuda {

namespace {

constexpr int kMaxDevices = 64;
// cuBLAS keeps split-K partial sums in this workspace; NVIDIA recommends 32 MiB on Hopper.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

struct DeviceCount {
  int count = 0;
  const char* reason = "";
};

const DeviceCount& probe() {
  static const DeviceCount answer = [] {
    DeviceCount d;
    const cudaError_t s = cudaGetDeviceCount(&d.count);
    if (s != cudaSuccess) {
      d.count = 0;
      d.reason = cudaGetErrorString(s);
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
    } else if (d.count == 0) {
      d.reason = "no CUDA device is visible";
    }
    return d;
  }();
  return answer;
}

MathMode initial_math_mode() {
  MathMode m;
  if (const char* e = std::getenv("SCPN_CUDA_PARITY"); e && e[0] == '1') m = {false, true};
  return m;
}
std::mutex& mode_mutex() {
  static std::mutex m;
  return m;
}
MathMode& mode_storage() {
  static MathMode m = initial_math_mode();
  return m;
}

}  // namespace

struct DeviceContext {
  int index = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t blas_lt = nullptr;
  cudnnHandle_t dnn = nullptr;
  void* blas_workspace = nullptr;
  std::atomic<uint64_t> philox_offset{0};  // for random fills that draw from the device's own stream

  explicit DeviceContext(int device_index) : index(device_index) {
    SCPN_CUDA_CHECK(cudaSetDevice(index));
    // Non-blocking: the legacy default stream would serialise against every other stream.
    SCPN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    SCPN_CUBLAS_CHECK(cublasCreate(&blas));
    SCPN_CUBLAS_CHECK(cublasSetStream(blas, stream));
    blas_workspace = device_allocate(kCublasWorkspaceBytes, index);
    SCPN_CUBLAS_CHECK(cublasSetWorkspace(blas, blas_workspace, kCublasWorkspaceBytes));
    SCPN_CUBLAS_CHECK(cublasLtCreate(&blas_lt));
    SCPN_CUDNN_CHECK(cudnnCreate(&dnn));
    SCPN_CUDNN_CHECK(cudnnSetStream(dnn, stream));
  }
  // Contexts live until the process ends; the driver reclaims everything at exit, and destroying
  // handles during static destruction (after the driver may have shut down) would only add failures.
};

int device_count() { return probe().count; }
const char* no_device_reason() { return probe().reason; }

MathMode math_mode() {
  std::lock_guard lock(mode_mutex());
  return mode_storage();
}
void set_math_mode(const MathMode& mode) {
  std::lock_guard lock(mode_mutex());
  mode_storage() = mode;
}
MathModeGuard::MathModeGuard(const MathMode& mode) : saved_(math_mode()) { set_math_mode(mode); }
MathModeGuard::~MathModeGuard() { set_math_mode(saved_); }

void require_device(int index) {
  if (index >= 0 && index < device_count() && index < kMaxDevices) return;
  throw Error(cat("device cuda:", index, " does not exist: ",
                  device_count() == 0 ? cat("no CUDA device (", no_device_reason(), ")")
                                      : cat(device_count(), " CUDA device(s) visible")));
}

DeviceContext& device_context(int index) {
  // Never destroyed (contexts live until the process ends, see DeviceContext): kernels may run during
  // static destruction (engine/dispatch.cpp), and must not find a destroyed table and mutex.
  static auto* contexts = new std::array<DeviceContext*, kMaxDevices>{};
  static auto* m = new std::mutex;
  require_device(index);
  std::lock_guard lock(*m);
  if (!(*contexts)[size_t(index)]) (*contexts)[size_t(index)] = new DeviceContext(index);
  // Kernels launch on the calling thread's current device; keep it the one asked for.
  SCPN_CUDA_CHECK(cudaSetDevice(index));
  return *(*contexts)[size_t(index)];
}

ExecContext exec_context_for(int index) {
  DeviceContext& d = device_context(index);
  const MathMode mode = math_mode();
  ExecContext ctx{cuda_device(index)};
  ctx.stream = d.stream;
  ctx.blas = d.blas;
  ctx.blas_lt = d.blas_lt;
  ctx.dnn = d.dnn;
  ctx.allocate = device_allocate;
  ctx.release = device_release;
  ctx.allow_tf32 = mode.allow_tf32;
  ctx.deterministic = mode.deterministic;
  return ctx;
}

void synchronize(int index) { SCPN_CUDA_CHECK(cudaStreamSynchronize(device_context(index).stream)); }

void install() {
  DeviceMemory ops;
  ops.allocate = device_allocate;
  ops.release = device_release;
  ops.copy = copy_between;
  set_cuda_memory(ops);
  set_cuda_context_provider([](Device d) { return exec_context_for(d.index); });
}

}  // namespace scpn::cuda
