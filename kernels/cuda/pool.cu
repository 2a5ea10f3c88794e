// CUDA pooling (contract: kernels/pool.h): max pooling with i32 argmax indices and 1x1 adaptive average
// pooling. The max-pool backward gathers per input pixel instead of scattering with float atomics, so
// overlapping windows add in a fixed order (the CPU's). Tested against the CPU by tests/ops/test_pool.cpp (gpu/pool).
#include "kernels/pool.h"

#include "kernels/common/max_pool_window.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"

namespace scpn::cuda {
namespace {

// One thread per output value; the window scan (ties, NaN) is the CPU's own (kernels/common/max_pool_window.h).
template <class T>
__global__ void max_pool2d_forward_kernel(MaxPool2dParams p, const T* x, T* y, int32_t* indices) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, total = p.n * p.c * out_plane;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = i / out_plane, o = i - plane * out_plane;
    const int64_t oh = o / p.out_w, ow = o - oh * p.out_w;
    const WindowMax<T> best = max_pool_window(x + plane * in_plane, p, oh, ow);
    y[i] = best.value;
    indices[i] = int32_t(best.index);
  }
}

// The output positions [begin, end) along one axis whose windows contain input position `in`: those o
// with o·stride − pad <= in <= o·stride − pad + kernel − 1.
struct OutputRange {
  int64_t begin, end;
};
__device__ OutputRange windows_covering(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t out) {
  const int64_t lowest = in + pad - kernel + 1;  // o·stride >= lowest
  const int64_t begin = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  const int64_t last = (in + pad) / stride;  // o·stride <= in + pad; in + pad >= 0
  return {begin, last + 1 < out ? last + 1 : out};
}

// One thread per input value: visit every window that can hold it and add the gradients of those whose
// argmax points at it. The windows are visited in row-major output order from 0, the order in which the
// CPU's scatter adds into the same pixel, so even tied overlaps give the CPU's bits. The indices come from
// the forward, so each lies inside its own window and no contribution is missed.
template <class T>
__global__ void max_pool2d_backward_kernel(MaxPool2dParams p, const T* grad_y, const int32_t* indices, T* grad_x) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, total = p.n * p.c * in_plane;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = i / in_plane, pixel = i - plane * in_plane;
    const int64_t ih = pixel / p.w, iw = pixel - ih * p.w;
    const OutputRange rows = windows_covering(ih, p.kernel_h, p.stride_h, p.pad_h, p.out_h);
    const OutputRange cols = windows_covering(iw, p.kernel_w, p.stride_w, p.pad_w, p.out_w);
    const T* gy = grad_y + plane * out_plane;
    const int32_t* ip = indices + plane * out_plane;
    T sum = 0;
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
        const int64_t o = oh * p.out_w + ow;
        if (ip[o] == int32_t(pixel)) sum += gy[o];
      }
    }
    grad_x[i] = sum;
  }
}

// A warp per plane (ResNet's head pools 7x7 = 49 values), summed in double like the CPU.
template <class T>
__global__ void avg_pool_1x1_forward_kernel(int64_t planes, int64_t hw, const T* x, T* y) {
  using Planes = RowLayout<kWarpSize>;
  const int lane = Planes::lane();
  for (int64_t q = Planes::first_row(); q < planes; q += Planes::row_stride()) {
    const T* xp = x + q * hw;
    double sum = 0;
    for (int64_t i = lane; i < hw; i += kWarpSize) sum += double(xp[i]);
    sum = group_allreduce<kWarpSize>(sum, SumOp{});
    if (lane == 0) y[q] = T(sum / double(hw));
  }
}

template <class T>
__global__ void avg_pool_1x1_backward_kernel(int64_t planes, int64_t hw, const T* grad_y, T* grad_x) {
  const int64_t total = planes * hw;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    grad_x[i] = T(double(grad_y[i / hw]) / double(hw));
}

}  // namespace

void max_pool2d_forward(const ExecContext& ctx, DType t, const MaxPool2dParams& p, const void* x, void* y,
                        int32_t* indices) {
  switch_float(t, "max_pool2d_forward", [&](auto zero) {
    using T = decltype(zero);
    max_pool2d_forward_kernel<T><<<grid_for(p.n * p.c * p.out_h * p.out_w), kBlock, 0, stream_of(ctx)>>>(
        p, static_cast<const T*>(x), static_cast<T*>(y), indices);
    SCPN_CUDA_LAUNCH_CHECK("max_pool2d_forward_kernel");
  });
}

void max_pool2d_backward(const ExecContext& ctx, DType t, const MaxPool2dParams& p, const void* grad_y,
                         const int32_t* indices, void* grad_x) {
  switch_float(t, "max_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    max_pool2d_backward_kernel<T><<<grid_for(p.n * p.c * p.h * p.w), kBlock, 0, stream_of(ctx)>>>(
        p, static_cast<const T*>(grad_y), indices, static_cast<T*>(grad_x));
    SCPN_CUDA_LAUNCH_CHECK("max_pool2d_backward_kernel");
  });
}

void avg_pool_1x1_forward(const ExecContext& ctx, DType t, int64_t planes, int64_t hw, const void* x, void* y) {
  switch_float(t, "avg_pool_1x1_forward", [&](auto zero) {
    using T = decltype(zero);
    avg_pool_1x1_forward_kernel<T><<<RowLayout<kWarpSize>::grid(planes), kBlock, 0, stream_of(ctx)>>>(
        planes, hw, static_cast<const T*>(x), static_cast<T*>(y));
    SCPN_CUDA_LAUNCH_CHECK("avg_pool_1x1_forward_kernel");
  });
}

void avg_pool_1x1_backward(const ExecContext& ctx, DType t, int64_t planes, int64_t hw, const void* grad_y,
                           void* grad_x) {
  switch_float(t, "avg_pool_1x1_backward", [&](auto zero) {
    using T = decltype(zero);
    avg_pool_1x1_backward_kernel<T><<<grid_for(planes * hw), kBlock, 0, stream_of(ctx)>>>(
        planes, hw, static_cast<const T*>(grad_y), static_cast<T*>(grad_x));
    SCPN_CUDA_LAUNCH_CHECK("avg_pool_1x1_backward_kernel");
  });
}

}  // namespace scpn::cuda
