// CUDA SGD and AdamW (contract: kernels/optimizer.h): the whole tensor list of a call in ONE launch
// (multi-tensor apply, kernels/cuda/multi_tensor.h), with the CPU's own element update
// (kernels/common/optimizer_update.h).
#include <cstdint>
#include <vector>

#include "kernels/common/optimizer_update.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/multi_tensor.h"
#include "kernels/optimizer.h"

namespace scpn::cuda {

namespace {

// Elements per block work item: small tensors (biases, BN) take one block each, large ones spread.
constexpr int64_t kTensorChunk = 16384;

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

// The device copy of a descriptor table and chunk_begin[count + 1] (tensor t owns chunks
// [chunk_begin[t], chunk_begin[t + 1])), in one upload. Tensors without elements are left out on the host.
template <class Desc>
class TensorTable {
 public:
  TensorTable(const ExecContext& ctx, const std::vector<Desc>& descs) : count_(int64_t(descs.size())) {
    std::vector<int64_t> sizes(descs.size());
    for (size_t t = 0; t < descs.size(); ++t) sizes[t] = descs[t].n;
    const std::vector<int64_t> chunk_begin = chunk_offsets(sizes.data(), count_, kTensorChunk);
    chunks_ = chunk_begin.back();
    descs_at_ = upload_.append(descs);
    chunk_begin_at_ = upload_.append(chunk_begin);
    upload_.send(ctx);
  }
  const Desc* descs() const { return upload_.at<Desc>(descs_at_); }
  const int64_t* chunk_begin() const { return upload_.at<int64_t>(chunk_begin_at_); }
  int64_t count() const { return count_; }
  int64_t chunks() const { return chunks_; }
  unsigned blocks() const { return multi_tensor_blocks(chunks_); }

 private:
  int64_t count_;
  int64_t chunks_ = 0;
  PackedUpload upload_;
  size_t descs_at_ = 0, chunk_begin_at_ = 0;
};

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
