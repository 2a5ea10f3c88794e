// CUDA log-softmax over the rows of an [N, C] matrix, forward and backward (contract: kernels/softmax.h):
// a warp per narrow row, a block per wide one; max and sums in double as in kernels/cpu/softmax.cpp.
// Tested against the CPU kernels by tests/ops/test_softmax.cpp (gpu/softmax).
#include "kernels/softmax.h"

#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"

namespace scpn::cuda {
namespace {

template <class T, int kGroup>
__global__ void log_softmax_forward_kernel(int64_t rows, int64_t cols, const T* x, T* y) {
  using Rows = RowLayout<kGroup>;
  const int lane = Rows::lane();
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const double lse = group_row_logsumexp<kGroup>(xr, cols, lane);
    for (int64_t c = lane; c < cols; c += kGroup) yr[c] = T(double(xr[c]) - lse);
  }
}

template <class T, int kGroup>
__global__ void log_softmax_backward_kernel(int64_t rows, int64_t cols, const T* y, const T* gy, T* gx) {
  using Rows = RowLayout<kGroup>;
  const int lane = Rows::lane();
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const T* yr = y + r * cols;
    const T* gr = gy + r * cols;
    T* out = gx + r * cols;
    double gsum = 0;
    for (int64_t c = lane; c < cols; c += kGroup) gsum += double(gr[c]);
    gsum = group_allreduce<kGroup>(gsum, SumOp{});
    for (int64_t c = lane; c < cols; c += kGroup) out[c] = T(double(gr[c]) - exp(double(yr[c])) * gsum);
  }
}

}  // namespace

void log_softmax_forward(const ExecContext& ctx, DType t, const SoftmaxParams& p, const void* x, void* y) {
  switch_float(t, "log_softmax_forward", [&](auto zero) {
    using T = decltype(zero);
    with_row_group(p.cols, [&](auto group) {
      constexpr int kGroup = decltype(group)::value;
      log_softmax_forward_kernel<T, kGroup><<<RowLayout<kGroup>::grid(p.rows), kBlock, 0, stream_of(ctx)>>>(
          p.rows, p.cols, static_cast<const T*>(x), static_cast<T*>(y));
      SCPN_CUDA_LAUNCH_CHECK("log_softmax_forward_kernel");
    });
  });
}

void log_softmax_backward(const ExecContext& ctx, DType t, const SoftmaxParams& p, const void* y, const void* gy,
                          void* gx) {
  switch_float(t, "log_softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    with_row_group(p.cols, [&](auto group) {
      constexpr int kGroup = decltype(group)::value;
      log_softmax_backward_kernel<T, kGroup><<<RowLayout<kGroup>::grid(p.rows), kBlock, 0, stream_of(ctx)>>>(
          p.rows, p.cols, static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx));
      SCPN_CUDA_LAUNCH_CHECK("log_softmax_backward_kernel");
    });
  });
}

}  // namespace scpn::cuda
