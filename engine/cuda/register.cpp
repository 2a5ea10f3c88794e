// Fills the CUDA column of the dispatch table: one line per kernel. Batch norm has two implementations
// (cuDNN's and ours); SCPN_CUDA_BATCH_NORM=ours|cudnn, read once here, picks one, and the default is the
// one tools/bench_cuda_ops measured faster on the H100/H200 (docs/benchmarks.md).
#include <cstdlib>
#include <string>

#include "engine/dispatch.h"

namespace scpn {

namespace {
bool batch_norm_from_cudnn() {
  const char* e = std::getenv("SCPN_CUDA_BATCH_NORM");
  if (!e) return true;
  const std::string v = e;
  if (v != "ours" && v != "cudnn") throw Error(cat("SCPN_CUDA_BATCH_NORM='", v, "' is not 'ours' or 'cudnn'"));
  return v == "cudnn";
}
}  // namespace

void register_cuda_kernels(KernelTable& k) {
  // elementwise.h
  k.fill.cuda = cuda::fill;
  k.cast.cuda = cuda::cast;
  k.random.cuda = cuda::random;
  k.unary.cuda = cuda::unary;
  k.binary.cuda = cuda::binary;
  k.where.cuda = cuda::where;
  k.axpy.cuda = cuda::axpy;
  // reduce.h
  k.reduce.cuda = cuda::reduce;
  // gemm.h
  k.gemm.cuda = cublas::gemm;
  // conv2d.h
  k.conv2d_forward.cuda = cudnn::conv2d_forward;
  k.conv2d_backward_data.cuda = cudnn::conv2d_backward_data;
  k.conv2d_backward_filter.cuda = cudnn::conv2d_backward_filter;
  k.conv2d_backward_bias.cuda = cuda::conv2d_backward_bias;
  // batch_norm.h
  if (batch_norm_from_cudnn()) {
    k.batch_norm_forward_train.cuda = cudnn::batch_norm_forward_train;
    k.batch_norm_forward_eval.cuda = cudnn::batch_norm_forward_eval;
    k.batch_norm_backward.cuda = cudnn::batch_norm_backward;
  } else {
    k.batch_norm_forward_train.cuda = cuda::batch_norm_forward_train;
    k.batch_norm_forward_eval.cuda = cuda::batch_norm_forward_eval;
    k.batch_norm_backward.cuda = cuda::batch_norm_backward;
  }
  // pool.h
  k.max_pool2d_forward.cuda = cuda::max_pool2d_forward;
  k.max_pool2d_backward.cuda = cuda::max_pool2d_backward;
  k.avg_pool_1x1_forward.cuda = cuda::avg_pool_1x1_forward;
  k.avg_pool_1x1_backward.cuda = cuda::avg_pool_1x1_backward;
  // softmax.h, loss.h
  k.log_softmax_forward.cuda = cuda::log_softmax_forward;
  k.log_softmax_backward.cuda = cuda::log_softmax_backward;
  k.cross_entropy_forward.cuda = cuda::cross_entropy_forward;
  k.cross_entropy_backward.cuda = cuda::cross_entropy_backward;
  // l2_normalize.h
  k.l2_normalize_forward.cuda = cuda::l2_normalize_forward;
  k.l2_normalize_backward.cuda = cuda::l2_normalize_backward;
  // select.h
  k.abs_kth_values.cuda = cuda::abs_kth_values;
  k.magnitude_mask.cuda = cuda::magnitude_mask;
  // masked_weight.h
  k.masked_weight_forward.cuda = cuda::masked_weight_forward;
  k.masked_weight_backward.cuda = cuda::masked_weight_backward;
  // sparse_channel.h
  k.gather_channels.cuda = cuda::gather_channels;
  k.scatter_channels.cuda = cuda::scatter_channels;
  k.kept_filters_backward.cuda = cuda::kept_filters_backward;
  // optimizer.h
  k.sgd_step.cuda = cuda::sgd_step;
  k.adamw_step.cuda = cuda::adamw_step;
  // grad_integration.h
  k.grad_integrate.cuda = cuda::grad_integrate;
  k.grad_sum_squares.cuda = cuda::grad_sum_squares;
  k.grad_scale.cuda = cuda::grad_scale;
}

}  // namespace scpn
