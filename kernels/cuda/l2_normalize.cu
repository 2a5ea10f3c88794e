// CUDA row-wise L2 normalisation with a clamped norm, forward and backward (contract: kernels/l2_normalize.h):
// a warp per narrow row, a block per wide one; norms and dot products in double as in
// kernels/cpu/l2_normalize.cpp. Tested against the CPU kernels by tests/ops/test_l2_normalize.cpp (gpu/l2_normalize).
#include "kernels/l2_normalize.h"

#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"

namespace scpn::cuda {
namespace {

template <class T, int kGroup>
__global__ void l2_normalize_forward_kernel(int64_t rows, int64_t cols, double eps, const T* x, T* y, T* norm) {
  using Rows = RowLayout<kGroup>;
  const int lane = Rows::lane();
  for (int64_t n = Rows::first_row(); n < rows; n += Rows::row_stride()) {
    const T* xr = x + n * cols;
    T* yr = y + n * cols;
    double sq = 0;
    for (int64_t d = lane; d < cols; d += kGroup) sq += double(xr[d]) * double(xr[d]);
    sq = group_allreduce<kGroup>(sq, SumOp{});
    // Rounded to T before use, as on the CPU, so the forward and the backward test the same norm against eps.
    const T row_norm_t = T(sqrt(sq));
    if (lane == 0) norm[n] = row_norm_t;
    const double row_norm = double(row_norm_t);
    // std::max(row_norm, eps) of the CPU kernel, spelled out: fmax would turn a NaN norm into eps.
    const double inv = 1.0 / (row_norm < eps ? eps : row_norm);
    for (int64_t d = lane; d < cols; d += kGroup) yr[d] = T(double(xr[d]) * inv);
  }
}

template <class T, int kGroup>
__global__ void l2_normalize_backward_kernel(int64_t rows, int64_t cols, double eps, const T* y, const T* norm,
                                             const T* gy, T* gx) {
  using Rows = RowLayout<kGroup>;
  const int lane = Rows::lane();
  for (int64_t n = Rows::first_row(); n < rows; n += Rows::row_stride()) {
    const T* yr = y + n * cols;
    const T* gr = gy + n * cols;
    T* out = gx + n * cols;
    const double row_norm = double(norm[n]);
    // The branch depends on the row only, so the whole group takes it together (the reduction needs that).
    if (row_norm >= eps) {
      // d(x/‖x‖) = (I − y yᵀ)/‖x‖: remove the component of gy along y, then scale.
      double dot = 0;
      for (int64_t d = lane; d < cols; d += kGroup) dot += double(yr[d]) * double(gr[d]);
      dot = group_allreduce<kGroup>(dot, SumOp{});
      for (int64_t d = lane; d < cols; d += kGroup) out[d] = T((double(gr[d]) - double(yr[d]) * dot) / row_norm);
    } else {
      for (int64_t d = lane; d < cols; d += kGroup) out[d] = T(double(gr[d]) / eps);
    }
  }
}

}  // namespace

void l2_normalize_forward(const ExecContext& ctx, DType t, const L2NormalizeParams& p, const void* x, void* y,
                          void* norm) {
  switch_float(t, "l2_normalize_forward", [&](auto zero) {
    using T = decltype(zero);
    with_row_group(p.cols, [&](auto group) {
      constexpr int kGroup = decltype(group)::value;
      l2_normalize_forward_kernel<T, kGroup><<<RowLayout<kGroup>::grid(p.rows), kBlock, 0, stream_of(ctx)>>>(
          p.rows, p.cols, p.eps, static_cast<const T*>(x), static_cast<T*>(y), static_cast<T*>(norm));
      SCPN_CUDA_LAUNCH_CHECK("l2_normalize_forward_kernel");
    });
  });
}

void l2_normalize_backward(const ExecContext& ctx, DType t, const L2NormalizeParams& p, const void* y,
                           const void* norm, const void* gy, void* gx) {
  switch_float(t, "l2_normalize_backward", [&](auto zero) {
    using T = decltype(zero);
    with_row_group(p.cols, [&](auto group) {
      constexpr int kGroup = decltype(group)::value;
      l2_normalize_backward_kernel<T, kGroup><<<RowLayout<kGroup>::grid(p.rows), kBlock, 0, stream_of(ctx)>>>(
          p.rows, p.cols, p.eps, static_cast<const T*>(y), static_cast<const T*>(norm), static_cast<const T*>(gy),
          static_cast<T*>(gx));
      SCPN_CUDA_LAUNCH_CHECK("l2_normalize_backward_kernel");
    });
  });
}

}  // namespace scpn::cuda
