// CUDA fused softmax cross-entropy with label smoothing, forward and backward (contract: kernels/loss.h).
// The forward writes each row's lse and loss (f64) with a warp or block per row, then one block sums the
// row losses in a fixed order, so the loss is deterministic. Tested by tests/ops/test_loss.cpp (gpu/loss).
#include "kernels/loss.h"

#include "kernels/common/cross_entropy.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_reduce.h"
#include "kernels/cuda/scratch.h"

namespace scpn::cuda {
namespace {

template <class T, int kGroup>
__global__ void cross_entropy_rows_kernel(int64_t batch, int64_t classes, double eps, const T* logits,
                                          const int64_t* targets, double* lse, double* row_loss) {
  using Rows = RowLayout<kGroup>;
  const int lane = Rows::lane();
  for (int64_t n = Rows::first_row(); n < batch; n += Rows::row_stride()) {
    const T* xr = logits + n * classes;
    const double row_lse = group_row_logsumexp<kGroup>(xr, classes, lane);
    double xsum = 0;
    if (eps > 0) {  // the same for the whole group, so every thread joins the reduction
      for (int64_t c = lane; c < classes; c += kGroup) xsum += double(xr[c]);
      xsum = group_allreduce<kGroup>(xsum, SumOp{});
    }
    if (lane == 0) {
      lse[n] = row_lse;
      row_loss[n] = cross_entropy_row_loss(row_lse, double(xr[targets[n]]), xsum, eps, classes);
    }
  }
}

// One block: each thread sums a strided share of the rows, then the block combines the shares. The
// order depends only on the batch size, never on timing.
template <class T>
__global__ void mean_of_rows_kernel(int64_t batch, const double* row_loss, T* loss) {
  double s = 0;
  for (int64_t n = threadIdx.x; n < batch; n += kBlock) s += row_loss[n];
  s = group_allreduce<kBlock>(s, SumOp{});
  if (threadIdx.x == 0) *loss = T(s / double(batch));
}

template <class T>
__global__ void cross_entropy_backward_kernel(int64_t batch, int64_t classes, SmoothedTarget q, const T* logits,
                                              const int64_t* targets, const double* lse, const T* grad_loss,
                                              T* grad_logits) {
  const double scale = double(*grad_loss) / double(batch);
  const int64_t total = batch * classes;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / classes, c = i - n * classes;
    const double prob = exp(double(logits[i]) - lse[n]);
    grad_logits[i] = T(scale * (prob - (c == targets[n] ? q.on : q.off)));
  }
}

}  // namespace

void cross_entropy_forward(const ExecContext& ctx, DType t, const CrossEntropyParams& p, const void* logits,
                           const int64_t* targets, void* loss, double* lse) {
  switch_float(t, "cross_entropy_forward", [&](auto zero) {
    using T = decltype(zero);
    // Row losses stay on the device until the fixed-order sum; the buffer returns to the allocator once
    // both kernels are enqueued (stream-ordered reuse, kernels/cuda/scratch.h).
    Scratch row_loss(ctx, size_t(p.batch) * sizeof(double));
    with_row_group(p.classes, [&](auto group) {
      constexpr int kGroup = decltype(group)::value;
      cross_entropy_rows_kernel<T, kGroup><<<RowLayout<kGroup>::grid(p.batch), kBlock, 0, stream_of(ctx)>>>(
          p.batch, p.classes, p.label_smoothing, static_cast<const T*>(logits), targets, lse,
          row_loss.as<double>());
      SCPN_CUDA_LAUNCH_CHECK("cross_entropy_rows_kernel");
    });
    mean_of_rows_kernel<T><<<1, kBlock, 0, stream_of(ctx)>>>(p.batch, row_loss.as<double>(), static_cast<T*>(loss));
    SCPN_CUDA_LAUNCH_CHECK("mean_of_rows_kernel");
  });
}

void cross_entropy_backward(const ExecContext& ctx, DType t, const CrossEntropyParams& p, const void* logits,
                            const int64_t* targets, const double* lse, const void* grad_loss, void* grad_logits) {
  switch_float(t, "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = p.batch * p.classes;
    cross_entropy_backward_kernel<T><<<grid_for(total), kBlock, 0, stream_of(ctx)>>>(
        p.batch, p.classes, smoothed_target(p.label_smoothing, p.classes), static_cast<const T*>(logits), targets,
        lse, static_cast<const T*>(grad_loss), static_cast<T*>(grad_logits));
    SCPN_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
  });
}

}  // namespace scpn::cuda
