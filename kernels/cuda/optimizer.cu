// CUDA SGD and AdamW (contract: kernels/optimizer.h): the whole tensor list of a call in ONE launch
// (multi-tensor apply). Each tensor is cut into chunks of kTensorChunk elements; a table of descriptors
// and each tensor's first chunk goes to the device in one copy; every block takes chunks in a grid-stride
// loop and finds the owning tensor by binary search. The element update is the CPU's own
// (kernels/common/optimizer_update.h); tests/gpu/test_optimizer.cpp compares with the CPU kernels.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/common/optimizer_update.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/scratch.h"
#include "kernels/optimizer.h"

namespace scpn::cuda {

namespace {

// Elements per block work item: small tensors (biases, BN) take one block each, large ones spread.
constexpr int64_t kTensorChunk = 16384;
constexpr int64_t kMaxBlocks = 132 * 16;

template <class T>
struct SgdTensorDesc {
  int64_t n;
  T* param;
  const T* grad;
  T* momentum_buffer;  // null without momentum
  bool first_step;
};

template <class T>
struct AdamWTensorDesc {
  int64_t n;
  T* param;
  const T* grad;
  T* exp_avg;
  T* exp_avg_sq;
  AdamWScalars<T> scalars;  // per tensor: the bias corrections depend on its step count
};

// The device copy of a descriptor table followed by chunk_begin[count + 1] (tensor t owns chunks
// [chunk_begin[t], chunk_begin[t + 1])). Tensors without elements are left out on the host.
template <class Desc>
class TensorTable {
 public:
  TensorTable(const ExecContext& ctx, const std::vector<Desc>& descs)
      : count_(int64_t(descs.size())),
        desc_bytes_((descs.size() * sizeof(Desc) + 7) / 8 * 8),
        device_(ctx, desc_bytes_ + (descs.size() + 1) * sizeof(int64_t)) {
    std::vector<unsigned char> host(device_.bytes());
    std::memcpy(host.data(), descs.data(), descs.size() * sizeof(Desc));
    int64_t chunk = 0;
    for (size_t t = 0; t <= descs.size(); ++t) {
      std::memcpy(host.data() + desc_bytes_ + t * sizeof(int64_t), &chunk, sizeof(int64_t));
      if (t < descs.size()) chunk += (descs[t].n + kTensorChunk - 1) / kTensorChunk;
    }
    chunks_ = chunk;
    // A pageable source is staged by the driver before the call returns, so `host` may die right after.
    SCPN_CUDA_CHECK(cudaMemcpyAsync(device_.get(), host.data(), host.size(), cudaMemcpyHostToDevice, stream_of(ctx)));
  }
  const Desc* descs() const { return device_.as<Desc>(); }
  const int64_t* chunk_begin() const {
    return reinterpret_cast<const int64_t*>(static_cast<const unsigned char*>(device_.get()) + desc_bytes_);
  }
  int64_t count() const { return count_; }
  int64_t chunks() const { return chunks_; }
  unsigned blocks() const { return unsigned(std::clamp<int64_t>(chunks_, 1, kMaxBlocks)); }

 private:
  int64_t count_;
  size_t desc_bytes_;
  Scratch device_;
  int64_t chunks_ = 0;
};

// The tensor owning chunk c: the last t with chunk_begin[t] <= c (chunk_begin[0] = 0 <= c < chunk_begin[count]).
__device__ inline int64_t owner_of(const int64_t* chunk_begin, int64_t count, int64_t c) {
  int64_t lo = 0, hi = count - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (chunk_begin[mid] <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

template <class T>
__global__ void sgd_multi_tensor_kernel(SgdScalars<T> s, const SgdTensorDesc<T>* tensors, const int64_t* chunk_begin,
                                        int64_t count, int64_t chunks) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t owner = owner_of(chunk_begin, count, c);
    const SgdTensorDesc<T> t = tensors[owner];
    const int64_t begin = (c - chunk_begin[owner]) * kTensorChunk;
    const int64_t end = begin + kTensorChunk < t.n ? begin + kTensorChunk : t.n;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      T* buf = t.momentum_buffer ? t.momentum_buffer + i : nullptr;
      t.param[i] = sgd_element(s, t.first_step, t.param[i], t.grad[i], buf);
    }
  }
}

template <class T>
__global__ void adamw_multi_tensor_kernel(const AdamWTensorDesc<T>* tensors, const int64_t* chunk_begin, int64_t count,
                                          int64_t chunks) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t owner = owner_of(chunk_begin, count, c);
    const AdamWTensorDesc<T> t = tensors[owner];
    const int64_t begin = (c - chunk_begin[owner]) * kTensorChunk;
    const int64_t end = begin + kTensorChunk < t.n ? begin + kTensorChunk : t.n;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      adamw_element(t.scalars, t.grad[i], t.param[i], t.exp_avg[i], t.exp_avg_sq[i]);
  }
}

}  // namespace

void sgd_step(const ExecContext& ctx, DType dtype, const SgdStepArgs& args) {
  switch_float(dtype, "sgd_step", [&](auto zero) {
    using T = decltype(zero);
    std::vector<SgdTensorDesc<T>> descs;
    for (int64_t k = 0; k < args.count; ++k) {
      const SgdTensor& t = args.tensors[k];
      if (t.n <= 0) continue;
      descs.push_back({t.n, static_cast<T*>(t.param), static_cast<const T*>(t.grad), static_cast<T*>(t.momentum_buffer),
                       t.first_step});
    }
    if (descs.empty()) return;
    const TensorTable<SgdTensorDesc<T>> table(ctx, descs);
    sgd_multi_tensor_kernel<T><<<table.blocks(), kBlock, 0, stream_of(ctx)>>>(
        sgd_scalars<T>(args), table.descs(), table.chunk_begin(), table.count(), table.chunks());
    SCPN_CUDA_LAUNCH_CHECK("sgd_multi_tensor_kernel");
  });
}

void adamw_step(const ExecContext& ctx, DType dtype, const AdamWStepArgs& args) {
  switch_float(dtype, "adamw_step", [&](auto zero) {
    using T = decltype(zero);
    std::vector<AdamWTensorDesc<T>> descs;
    for (int64_t k = 0; k < args.count; ++k) {
      const AdamWTensor& t = args.tensors[k];
      if (t.n <= 0) continue;
      descs.push_back({t.n, static_cast<T*>(t.param), static_cast<const T*>(t.grad), static_cast<T*>(t.exp_avg),
                       static_cast<T*>(t.exp_avg_sq), adamw_scalars<T>(args, t.step)});
    }
    if (descs.empty()) return;
    const TensorTable<AdamWTensorDesc<T>> table(ctx, descs);
    adamw_multi_tensor_kernel<T><<<table.blocks(), kBlock, 0, stream_of(ctx)>>>(table.descs(), table.chunk_begin(),
                                                                                table.count(), table.chunks());
    SCPN_CUDA_LAUNCH_CHECK("adamw_multi_tensor_kernel");
  });
}

}  // namespace scpn::cuda
