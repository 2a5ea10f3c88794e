// The CUDA runtime (engine/cuda/): check macros, size classes, math mode and bad-device errors, which run
// without a GPU; the caching allocator, transfers, pinned buffers, per-device context and launch check.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "engine/dispatch.h"
#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/devices.h"
#include "engine/tensor.h"
#include "kernels/cuda/check.h"
#include "tests/support/parity.h"
// NCCL is optional in a CUDA build; this is the one place where a test asks whether it is there.
#if defined(SCPN_HAVE_NCCL)
#include "engine/cuda/check_nccl.h"
#endif

using namespace scpn;

namespace {

const Device kGpu = cuda_device(0);
constexpr size_t kMiB = size_t(1) << 20;

// The message of the scpn::Error that f throws (other exception types propagate and fail the test).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no scpn::Error was thrown)";
}

// A check-macro message: "<call> failed: <status> ... at <file>:<line>".
void check_message(const std::string& m, const std::string& call, const std::string& status, int line) {
  INFO("message: " << m);
  CHECK(m.rfind(call + " failed: ", 0) == 0);
  CHECK(m.find(status) != std::string::npos);
  CHECK(m.find(cat("test_runtime.cpp:", line)) != std::string::npos);
}

// Deterministic bytes that differ from position to position (an LCG's high byte).
std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = uint8_t(x >> 24);
  }
  return v;
}

Tensor host_bytes(const std::vector<uint8_t>& bytes) {
  Tensor t = Tensor::empty({int64_t(bytes.size())}, DType::u8, kCPU);
  if (!bytes.empty()) std::memcpy(t.data<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

// Whether a u8 CPU tensor holds exactly bytes[offset, offset + t.numel()).
bool same_bytes(const Tensor& t, const std::vector<uint8_t>& bytes, size_t offset = 0) {
  REQUIRE(t.device() == kCPU);
  REQUIRE(offset + size_t(t.numel()) <= bytes.size());
  return t.numel() == 0 || std::memcmp(t.data<uint8_t>(), bytes.data() + offset, size_t(t.numel())) == 0;
}

cudaStream_t gpu_stream() { return static_cast<cudaStream_t>(exec_context(kGpu).stream); }

// Lifts the memory cap at scope end, whatever the test did.
struct CapReset {
  ~CapReset() { cuda::set_memory_cap(0, 0); }
};

}  // namespace

// ---- no device needed: these run everywhere, CI included (it has no GPU) --------------------------

TEST_CASE("check macros: a failed status names the call, the status, the file and the line") {
  SUBCASE("CUDA runtime") {
    auto out_of_memory = [] { return cudaErrorMemoryAllocation; };
    const int line = __LINE__; const std::string m = error_of([&] { SCPN_CUDA_CHECK(out_of_memory()); });
    check_message(m, "out_of_memory()", "cudaErrorMemoryAllocation", line);
    CHECK(m.find(cudaGetErrorString(cudaErrorMemoryAllocation)) != std::string::npos);
  }
  SUBCASE("cuBLAS") {
    auto invalid_value = [] { return CUBLAS_STATUS_INVALID_VALUE; };
    const int line = __LINE__; const std::string m = error_of([&] { SCPN_CUBLAS_CHECK(invalid_value()); });
    check_message(m, "invalid_value()", "CUBLAS_STATUS_INVALID_VALUE", line);
  }
  SUBCASE("cuDNN") {
    auto bad_param = [] { return CUDNN_STATUS_BAD_PARAM; };
    const int line = __LINE__; const std::string m = error_of([&] { SCPN_CUDNN_CHECK(bad_param()); });
    check_message(m, "bad_param()", "CUDNN_STATUS_BAD_PARAM", line);
  }
  SUBCASE("NCCL") {
#if defined(SCPN_HAVE_NCCL)
    auto invalid_argument = [] { return ncclInvalidArgument; };
    const int line = __LINE__; const std::string m = error_of([&] { SCPN_NCCL_CHECK(invalid_argument()); });
    check_message(m, "invalid_argument()", "ncclInvalidArgument", line);
    CHECK(m.find(ncclGetErrorString(ncclInvalidArgument)) != std::string::npos);
#else
    MESSAGE("this build has no NCCL: SCPN_NCCL_CHECK is not compiled");
#endif
  }
  SUBCASE("success passes, and the call is evaluated exactly once") {
    int calls = 0;
    auto counted = [&] {
      ++calls;
      return cudaSuccess;
    };
    CHECK_NOTHROW(SCPN_CUDA_CHECK(counted()));
    CHECK(calls == 1);
    auto counted_failure = [&] {
      ++calls;
      return CUBLAS_STATUS_NOT_INITIALIZED;
    };
    CHECK_THROWS_AS(SCPN_CUBLAS_CHECK(counted_failure()), Error);
    CHECK(calls == 2);
  }
}

TEST_CASE("size classes: multiples of 512 bytes, monotonic, idempotent, waste below 25% above 2 KiB") {
  using cuda::size_class;
  // Values: the 512-byte minimum, quarter-power-of-two steps above 2 KiB.
  CHECK(size_class(0) == 512);
  CHECK(size_class(1) == 512);
  CHECK(size_class(512) == 512);
  CHECK(size_class(513) == 1024);
  CHECK(size_class(1024) == 1024);
  CHECK(size_class(1025) == 1536);
  CHECK(size_class(2048) == 2048);
  CHECK(size_class(2049) == 2560);
  CHECK(size_class(4097) == 5120);
  CHECK(size_class(5 * kMiB) == 5 * kMiB);
  CHECK(size_class(5 * kMiB + 1) == 6 * kMiB);
  CHECK(size_class(8 * kMiB + 1) == 10 * kMiB);
  CHECK(size_class(size_t(1) << 33) == size_t(1) << 33);

  // Every byte count up to 64 KiB, then the neighbourhoods of every power of two and its quarters.
  std::vector<size_t> sizes;
  for (size_t b = 0; b <= 65536; ++b) sizes.push_back(b);
  for (int k = 16; k <= 40; ++k)
    for (size_t quarter = 4; quarter < 8; ++quarter)
      for (int64_t d = -2; d <= 2; ++d) sizes.push_back(size_t(int64_t(quarter << (k - 2)) + d));
  size_t previous_bytes = 0, previous_class = 0;
  int64_t failures = 0;
  for (size_t b : sizes) {
    const size_t c = size_class(b);
    bool ok = c >= b && c % 512 == 0 && size_class(c) == c;
    if (b >= previous_bytes) ok = ok && c >= previous_class;  // monotonic
    if (b > 2048)
      ok = ok && (c - b) * 4 < c;  // waste below a quarter of the block (hence also of the request)
    else
      ok = ok && c - b <= 512;
    if (!ok && failures++ < 5) FAIL_CHECK("size_class(" << b << ") = " << c << " (previous " << previous_class << ")");
    previous_bytes = b;
    previous_class = c;
  }
  CHECK(failures == 0);
}

TEST_CASE("SCPN_CUDA_MEMORY_CAP_MB: a value that is not a whole number of MiB is refused, naming the variable") {
  // Read when a device's pool is first made; a device index no other test uses gives a fresh pool.
  const int fresh_device = 61;
  ::setenv("SCPN_CUDA_MEMORY_CAP_MB", "12GB", 1);
  CHECK_THROWS_WITH_AS(cuda::memory_stats(fresh_device),
                       "SCPN_CUDA_MEMORY_CAP_MB='12GB' is not a whole number of MiB >= 0", Error);
  ::setenv("SCPN_CUDA_MEMORY_CAP_MB", "-5", 1);
  CHECK_THROWS_AS(cuda::memory_stats(fresh_device), Error);
  ::setenv("SCPN_CUDA_MEMORY_CAP_MB", "512", 1);
  CHECK(cuda::memory_stats(fresh_device).reserved == 0);  // accepted: the pool now exists, with its cap
  ::unsetenv("SCPN_CUDA_MEMORY_CAP_MB");
}

TEST_CASE("math mode: parity mode turns TF32 off and determinism on for a scope, then restores") {
  const cuda::MathMode before = cuda::math_mode();
  cuda::set_math_mode({true, false});
  {
    cuda::ParityModeGuard parity;
    CHECK_FALSE(cuda::math_mode().allow_tf32);
    CHECK(cuda::math_mode().deterministic);
    {
      cuda::ParityModeGuard nested;
      CHECK_FALSE(cuda::math_mode().allow_tf32);
    }
    CHECK(cuda::math_mode().deterministic);  // the nested guard restored parity mode, not the default
  }
  CHECK(cuda::math_mode().allow_tf32);
  CHECK_FALSE(cuda::math_mode().deterministic);
  cuda::set_math_mode(before);
}

TEST_CASE("a CUDA device that does not exist is a clear error, not a crash") {
  CHECK(cuda_backend_built());
  const int count = cuda_device_count();
  CHECK(count == cuda::device_count());
  CHECK(no_cuda_device_reason().empty() == (count > 0));
  // With no device this is cuda:0; on a GPU machine the first index past the last device.
  const Device missing = cuda_device(count);
  const std::string name = missing.str();
  MESSAGE("checking errors for " << name << " (" << count << " device(s) visible)");
  auto check_error = [&](const std::string& m) {
    INFO("message: " << m);
    CHECK(m.find(name) != std::string::npos);
    CHECK(m.find("does not exist") != std::string::npos);
    if (count == 0) CHECK(m.find(no_cuda_device_reason()) != std::string::npos);
  };
  check_error(error_of([&] { Tensor::empty({4}, DType::f32, missing); }));
  check_error(error_of([&] { zeros({2, 3}, DType::f64, missing); }));
  check_error(error_of([&] { ones({3}).to(missing); }));
  check_error(error_of([&] { exec_context(missing); }));
  check_error(error_of([&] { cuda::exec_context_for(count); }));
  check_error(error_of([&] { cuda::synchronize(count); }));
  // The CPU is untouched by the failures.
  CHECK(ones({3}).to_vector() == std::vector<double>{1, 1, 1});
}

// ---- needs a device: each case skips ("skipped: no CUDA device") without one ----------------------

TEST_CASE("the per-device context: one stream, handles bound to it, the allocator, the math mode") {
  SCPN_REQUIRE_CUDA();
  const ExecContext ctx = cuda::exec_context_for(0);
  CHECK(ctx.device == kGpu);
  CHECK(ctx.stream != nullptr);
  CHECK(ctx.blas != nullptr);
  CHECK(ctx.blas_lt != nullptr);
  CHECK(ctx.dnn != nullptr);
  CHECK(bool(ctx.allocate));
  CHECK(bool(ctx.release));
  // The engine's context provider hands out the same context; one compute stream per device.
  const ExecContext engine_ctx = exec_context(kGpu);
  CHECK(engine_ctx.stream == ctx.stream);
  CHECK(engine_ctx.blas == ctx.blas);
  CHECK(engine_ctx.dnn == ctx.dnn);
  cudaStream_t blas_stream = nullptr, dnn_stream = nullptr;
  SCPN_CUBLAS_CHECK(cublasGetStream(static_cast<cublasHandle_t>(ctx.blas), &blas_stream));
  SCPN_CUDNN_CHECK(cudnnGetStream(static_cast<cudnnHandle_t>(ctx.dnn), &dnn_stream));
  CHECK(blas_stream == static_cast<cudaStream_t>(ctx.stream));
  CHECK(dnn_stream == static_cast<cudaStream_t>(ctx.stream));
  {
    cuda::ParityModeGuard parity;
    const ExecContext p = exec_context(kGpu);
    CHECK_FALSE(p.allow_tf32);
    CHECK(p.deterministic);
  }
  CHECK(exec_context(kGpu).allow_tf32 == cuda::math_mode().allow_tf32);
  CHECK_NOTHROW(cuda::synchronize(0));
}

TEST_CASE("caching allocator: a freed block is reused, statistics, peaks, empty_cache") {
  SCPN_REQUIRE_CUDA();
  exec_context(kGpu);  // creates the context (its cuBLAS workspace) before anything is counted
  cuda::synchronize(0);
  cuda::empty_cache(0);
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  INFO("at start: " << cuda::describe(s0));
  CHECK(s0.cached_blocks == 0);
  CHECK(s0.reserved == s0.allocated);  // empty_cache leaves only live blocks

  const int64_t block = int64_t(cuda::size_class(4 * kMiB));
  { Tensor a = Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu); }  // 4 MiB: one cudaMalloc
  const cuda::MemoryStats s1 = cuda::memory_stats(0);
  CHECK(s1.malloc_calls == s0.malloc_calls + 1);
  CHECK(s1.reserved == s0.reserved + block);
  CHECK(s1.allocated == s0.allocated);
  CHECK(s1.cached_blocks == 1);
  {
    // The same class (a few elements fewer) takes the cached block: no cudaMalloc.
    Tensor b = Tensor::empty({int64_t(kMiB) - 7}, DType::f32, kGpu);
    const cuda::MemoryStats s2 = cuda::memory_stats(0);
    CHECK(s2.malloc_calls == s1.malloc_calls);
    CHECK(s2.allocated == s0.allocated + block);
    CHECK(s2.reserved == s1.reserved);
    CHECK(s2.cached_blocks == 0);
    // A second live block of the class needs the driver.
    Tensor c = Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu);
    CHECK(cuda::memory_stats(0).malloc_calls == s1.malloc_calls + 1);
    CHECK(b.raw_data() != c.raw_data());
  }
  const cuda::MemoryStats s3 = cuda::memory_stats(0);
  CHECK(s3.allocated == s0.allocated);
  CHECK(s3.cached_blocks == 2);
  CHECK(s3.reserved == s0.reserved + 2 * block);

  SUBCASE("peak statistics") {
    cuda::reset_peak_stats(0);
    CHECK(cuda::memory_stats(0).peak_allocated == s3.allocated);
    CHECK(cuda::memory_stats(0).peak_reserved == s3.reserved);
    {
      Tensor a = Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu);
      Tensor b = Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu);
      Tensor c = Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu);  // one more than the cache holds
    }
    const cuda::MemoryStats p = cuda::memory_stats(0);
    CHECK(p.peak_allocated == s0.allocated + 3 * block);
    CHECK(p.peak_reserved == s0.reserved + 3 * block);
    CHECK(p.allocated == s0.allocated);
    CHECK(p.malloc_calls == s3.malloc_calls + 1);
  }
  SUBCASE("empty_cache returns every cached block to the driver") {
    cuda::empty_cache(0);
    const cuda::MemoryStats e = cuda::memory_stats(0);
    CHECK(e.cached_blocks == 0);
    CHECK(e.reserved == s0.reserved);
    CHECK(e.reserved == e.allocated);  // nothing the tests freed stays reserved
    CHECK(e.free_calls == s3.free_calls + 2);
    // And the allocator goes on working.
    Tensor again = full({1000}, 2.5, DType::f32, kGpu);
    CHECK(again.to_vector() == std::vector<double>(1000, 2.5));
  }
}

TEST_CASE("caching allocator: an allocation past the cap is an error naming the cap and the statistics") {
  SCPN_REQUIRE_CUDA();
  exec_context(kGpu);
  cuda::synchronize(0);
  cuda::empty_cache(0);
  CapReset reset;
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  const int64_t cap = s0.reserved + int64_t(6 * kMiB);
  cuda::set_memory_cap(0, cap);
  Tensor first = full({int64_t(kMiB)}, 1.0, DType::f32, kGpu);  // 4 MiB: within the cap
  const std::string m = error_of([&] { Tensor::empty({int64_t(kMiB)}, DType::f32, kGpu); });
  INFO("message: " << m);
  CHECK(m.find("cuda:0") != std::string::npos);
  CHECK(m.find(cat("cap of ", cap, " bytes")) != std::string::npos);
  CHECK(m.find("reserved") != std::string::npos);
  CHECK(m.find("cudaMalloc calls") != std::string::npos);
  // Nothing changed by the failure; a smaller request still fits under the cap.
  CHECK(cuda::memory_stats(0).allocated == s0.allocated + int64_t(cuda::size_class(4 * kMiB)));
  Tensor small = full({1000}, 3.0, DType::f32, kGpu);
  CHECK(small.to_vector() == std::vector<double>(1000, 3.0));
  // Without the cap the same request succeeds, and the first tensor is intact.
  cuda::set_memory_cap(0, 0);
  Tensor second = full({int64_t(kMiB)}, 2.0, DType::f32, kGpu);
  CHECK(second.to_vector() == std::vector<double>(kMiB, 2.0));
  CHECK(first.to_vector() == std::vector<double>(kMiB, 1.0));
}

TEST_CASE("transfers: host <-> device round trips are bit-exact, across the 8 MiB staging chunks") {
  SCPN_REQUIRE_CUDA();
  for (size_t n : {size_t(0), size_t(1), kMiB, 7 * kMiB, 8 * kMiB, 20 * kMiB + 3}) {
    CAPTURE(n);
    const std::vector<uint8_t> bytes = pattern(n, uint32_t(n) + 1);
    const Tensor host = host_bytes(bytes);
    const Tensor gpu = host.to(kGpu);
    CHECK(gpu.device() == kGpu);
    CHECK(same_bytes(gpu.to(kCPU), bytes));
    // Device to device (clone copies on the device's stream), read back after further work.
    const Tensor copy = gpu.clone();
    CHECK(copy.raw_data() != gpu.raw_data());
    CHECK(same_bytes(copy.to(kCPU), bytes));
    if (n > 8) {
      // Unaligned starts on both sides: a host slice up, a device slice down.
      CHECK(same_bytes(host.slice(3, int64_t(n)).to(kGpu).to(kCPU), bytes, 3));
      CHECK(same_bytes(gpu.slice(5, int64_t(n) - 1).to(kCPU), bytes, 5));
      // copy_ into an existing device tensor, overwriting it.
      Tensor target = zeros({int64_t(n)}, DType::u8, kGpu);
      target.copy_(host);
      CHECK(same_bytes(target.to(kCPU), bytes));
    }
  }
  // f64 values, NaN payload and signed zero included, survive unchanged.
  const std::vector<double> values = {0.0, -0.0, 1.0 / 3.0, -1e-310, 1e308, std::nan("7")};
  Tensor v = Tensor::empty({int64_t(values.size())}, DType::f64, kCPU);
  std::memcpy(v.data<double>(), values.data(), values.size() * sizeof(double));
  Tensor back = v.to(kGpu).to(kCPU);
  CHECK(std::memcmp(back.data<double>(), values.data(), values.size() * sizeof(double)) == 0);
}

TEST_CASE("pinned host buffers: page-locked, usable for asynchronous copies") {
  SCPN_REQUIRE_CUDA();
  const size_t n = 3 * kMiB + 5;
  const std::vector<uint8_t> bytes = pattern(n, 42);
  auto* pinned = static_cast<uint8_t*>(cuda::pinned_allocate(n));
  REQUIRE(pinned != nullptr);
  cudaPointerAttributes attributes{};
  SCPN_CUDA_CHECK(cudaPointerGetAttributes(&attributes, pinned));
  CHECK(attributes.type == cudaMemoryTypeHost);
  std::memcpy(pinned, bytes.data(), n);
  Tensor device = Tensor::empty({int64_t(n)}, DType::u8, kGpu);
  const cudaStream_t stream = gpu_stream();
  SCPN_CUDA_CHECK(cudaMemcpyAsync(device.raw_data(), pinned, n, cudaMemcpyHostToDevice, stream));
  SCPN_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::memset(pinned, 0, n);
  SCPN_CUDA_CHECK(cudaMemcpyAsync(pinned, device.raw_data(), n, cudaMemcpyDeviceToHost, stream));
  SCPN_CUDA_CHECK(cudaStreamSynchronize(stream));
  CHECK(std::memcmp(pinned, bytes.data(), n) == 0);
  CHECK(same_bytes(device.to(kCPU), bytes));
  cuda::pinned_release(pinned);
  // An empty request still yields a buffer; releasing nothing is a no-op.
  void* empty = cuda::pinned_allocate(0);
  CHECK(empty != nullptr);
  cuda::pinned_release(empty);
  CHECK_NOTHROW(cuda::pinned_release(nullptr));
}

// Tests are plain C++, so the kernel comes as PTX loaded through the runtime's library API. The failed
// launch is an intentional CUDA API error: compute-sanitizer reports it unless run with
// --report-api-errors no (or with this test case excluded: -tce="*launch check*").
TEST_CASE("launch check: a launch with 2048 threads per block is reported with the kernel's name") {
  SCPN_REQUIRE_CUDA();
  static const char kPtx[] =
      ".version 7.0\n"
      ".target sm_52\n"
      ".address_size 64\n"
      ".visible .entry scpn_empty_kernel()\n"
      "{\n"
      "  ret;\n"
      "}\n";
  exec_context(kGpu);  // current device = cuda:0
  cudaLibrary_t library = nullptr;
  const cudaError_t loaded = cudaLibraryLoadData(&library, kPtx, nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (loaded != cudaSuccess) {
    cudaGetLastError();
    MESSAGE("skipped: cannot JIT-load the test kernel: " << cuda_check::describe(loaded));
    return;
  }
  cudaKernel_t kernel = nullptr;
  SCPN_CUDA_CHECK(cudaLibraryGetKernel(&kernel, library, "scpn_empty_kernel"));
  const cudaStream_t stream = gpu_stream();
  const void* function = reinterpret_cast<const void*>(kernel);
  REQUIRE(cudaGetLastError() == cudaSuccess);

  const cudaError_t launched = cudaLaunchKernel(function, dim3(1), dim3(2048), nullptr, 0, stream);
  CHECK(launched != cudaSuccess);
  const int line = __LINE__; const std::string m = error_of([] { SCPN_CUDA_LAUNCH_CHECK("scpn_empty_kernel"); });
  check_message(m, "launch of scpn_empty_kernel", cudaGetErrorName(launched), line);
  CHECK(cudaGetLastError() == cudaSuccess);  // the check consumed the error

  // A valid launch passes the check, and the stream still works.
  SCPN_CUDA_CHECK(cudaLaunchKernel(function, dim3(2), dim3(64), nullptr, 0, stream));
  CHECK_NOTHROW(SCPN_CUDA_LAUNCH_CHECK("scpn_empty_kernel"));
  CHECK_NOTHROW(cuda::synchronize(0));
  SCPN_CUDA_CHECK(cudaLibraryUnload(library));
  CHECK(full({7}, 1.5, DType::f64, kGpu).to_vector() == std::vector<double>(7, 1.5));
}
