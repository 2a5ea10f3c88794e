// Fills the CPU column of the dispatch table: one line per kernel (declared in its contract kernels/F.h).
#include "engine/dispatch.h"

namespace scpn {

void register_cpu_kernels(KernelTable& k) {
  k.fill.cpu = cpu::fill;
  k.cast.cpu = cpu::cast;
  k.random.cpu = cpu::random;
  k.unary.cpu = cpu::unary;
  k.binary.cpu = cpu::binary;
  k.where.cpu = cpu::where;
  k.axpy.cpu = cpu::axpy;
  k.reduce.cpu = cpu::reduce;
  // gemm.h
#if defined(SCPN_HAVE_OPENBLAS)
  k.gemm.cpu = cpu::select_gemm(cpu::gemm_ours, cpu::gemm_openblas);
#else
  k.gemm.cpu = cpu::select_gemm(cpu::gemm_ours, nullptr);
#endif
  // conv2d.h
  k.conv2d_forward.cpu = cpu::conv2d_forward;
  k.conv2d_backward_data.cpu = cpu::conv2d_backward_data;
  k.conv2d_backward_filter.cpu = cpu::conv2d_backward_filter;
  k.conv2d_backward_bias.cpu = cpu::conv2d_backward_bias;
  // batch_norm.h
  k.batch_norm_forward_train.cpu = cpu::batch_norm_forward_train;
  k.batch_norm_forward_eval.cpu = cpu::batch_norm_forward_eval;
  k.batch_norm_backward.cpu = cpu::batch_norm_backward;
  k.batch_norm_relu_forward_train.cpu = cpu::batch_norm_relu_forward_train;
  k.batch_norm_relu_backward.cpu = cpu::batch_norm_relu_backward;
  // pool.h
  k.max_pool2d_forward.cpu = cpu::max_pool2d_forward;
  k.max_pool2d_backward.cpu = cpu::max_pool2d_backward;
  k.avg_pool_1x1_forward.cpu = cpu::avg_pool_1x1_forward;
  k.avg_pool_1x1_backward.cpu = cpu::avg_pool_1x1_backward;
  // softmax.h, loss.h
  k.log_softmax_forward.cpu = cpu::log_softmax_forward;
  k.log_softmax_backward.cpu = cpu::log_softmax_backward;
  k.cross_entropy_forward.cpu = cpu::cross_entropy_forward;
  k.cross_entropy_backward.cpu = cpu::cross_entropy_backward;
  // l2_normalize.h
  k.l2_normalize_forward.cpu = cpu::l2_normalize_forward;
  k.l2_normalize_backward.cpu = cpu::l2_normalize_backward;
  // select.h
  k.abs_kth_values.cpu = cpu::abs_kth_values;
  k.magnitude_mask.cpu = cpu::magnitude_mask;
  // masked_weight.h
  k.masked_weight_forward.cpu = cpu::masked_weight_forward;
  k.masked_weight_backward.cpu = cpu::masked_weight_backward;
  // sparse_channel.h
  k.gather_channels.cpu = cpu::gather_channels;
  k.scatter_channels.cpu = cpu::scatter_channels;
  k.kept_filters_backward.cpu = cpu::kept_filters_backward;
  // optimizer.h
  k.sgd_step.cpu = cpu::sgd_step;
  k.adamw_step.cpu = cpu::adamw_step;
  // grad_integration.h
  k.grad_integrate.cpu = cpu::grad_integrate;
  k.grad_sum_squares.cpu = cpu::grad_sum_squares;
  k.grad_scale.cpu = cpu::grad_scale;
}

}  // namespace scpn
