// Contract of the batch-norm family: per-channel normalisation of x viewed as [N, C, HW] (contiguous NCHW;
// BatchNorm1d's [N, C] is HW = 1), forward in training and eval mode and one backward for both. Every array
// has the one dtype passed (f32 or f64 on the CPU).
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// x is [n, c, hw]; every per-channel array (weight, bias, running and saved statistics) holds c values.
struct BatchNormShape {
  int64_t n = 0, c = 0, hw = 1;
  int64_t per_channel() const { return n * hw; }  // m: values that one channel's statistics are over
};

// Training forward. Per channel: mean = Σx / m, var = Σ(x - mean)² / m (biased),
// invstd = 1 / sqrt(var + eps), y = (x - mean) · invstd · weight + bias.
// weight and bias may be null (weight = 1, bias = 0). Writes y, save_mean[c], save_invstd[c] (overwrite).
// When running_mean / running_var are non-null (both or neither) they are updated in place:
//   running_mean = (1 - momentum) · running_mean + momentum · mean
//   running_var  = (1 - momentum) · running_var  + momentum · var · m / (m - 1)   (unbiased; m > 1)
// Statistics are accumulated in double.
using BatchNormForwardTrainFn = void(const ExecContext&, DType, const BatchNormShape&, double eps,
                                     double momentum, const void* x, const void* weight, const void* bias,
                                     void* running_mean, void* running_var, void* y, void* save_mean,
                                     void* save_invstd);

// Eval forward: y = (x - running_mean) / sqrt(running_var + eps) · weight + bias (weight/bias nullable).
// When save_mean / save_invstd are non-null they receive running_mean and 1 / sqrt(running_var + eps),
// so that backward never reads running statistics that may have moved since. Overwrites its outputs.
using BatchNormForwardEvalFn = void(const ExecContext&, DType, const BatchNormShape&, double eps,
                                    const void* x, const void* weight, const void* bias,
                                    const void* running_mean, const void* running_var, void* y,
                                    void* save_mean, void* save_invstd);

// Backward, from the mean / invstd the forward saved. With xhat = (x - mean) · invstd, w = weight (1 if
// null) and per-channel sums over the m values:
//   grad_bias   = Σ g
//   grad_weight = Σ g · xhat
//   training: grad_x = w · invstd · (g - Σg / m - xhat · Σ(g · xhat) / m)   (through the batch statistics)
//   eval:     grad_x = w · invstd · g                                        (statistics are constants)
// Any of grad_x, grad_weight, grad_bias may be null (not computed). Overwrites its outputs. `eps` is the
// forward's: the formulas do not need it (invstd carries it), but cuDNN's backward asks for the same value.
using BatchNormBackwardFn = void(const ExecContext&, DType, const BatchNormShape&, bool training, double eps,
                                 const void* x, const void* grad_y, const void* weight, const void* mean,
                                 const void* invstd, void* grad_x, void* grad_weight, void* grad_bias);

// relu(batch_norm(x)) in training mode as one kernel: BatchNormForwardTrainFn's contract, then
// y = y > 0 ? y : 0 (the relu op's rule, NaN included). Saves the separate ReLU's pass over y and, in the
// backward, its pass over the gradient.
// Its backward is BatchNormBackwardFn's (training) with g·[y > 0] in place of g, y the fused forward's
// output. Only the CPU has them; elsewhere the op runs relu(batch_norm(x)) (engine/ops/batch_norm.cpp).
using BatchNormReluBackwardFn = void(const ExecContext&, DType, const BatchNormShape&, const void* x, const void* y,
                                     const void* grad_y, const void* weight, const void* mean, const void* invstd,
                                     void* grad_x, void* grad_weight, void* grad_bias);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/batch_norm.cpp
BatchNormForwardTrainFn batch_norm_forward_train;
BatchNormForwardEvalFn batch_norm_forward_eval;
BatchNormBackwardFn batch_norm_backward;
BatchNormForwardTrainFn batch_norm_relu_forward_train;
BatchNormReluBackwardFn batch_norm_relu_backward;
}  // namespace cpu

namespace cuda {  // kernels/cuda/batch_norm.cu
BatchNormForwardTrainFn batch_norm_forward_train;
BatchNormForwardEvalFn batch_norm_forward_eval;
BatchNormBackwardFn batch_norm_backward;
}  // namespace cuda

namespace cudnn {  // kernels/cudnn/batch_norm.cpp: cuDNN's spatial batch norm
BatchNormForwardTrainFn batch_norm_forward_train;
BatchNormForwardEvalFn batch_norm_forward_eval;
BatchNormBackwardFn batch_norm_backward;
}  // namespace cudnn

}  // namespace scpn
