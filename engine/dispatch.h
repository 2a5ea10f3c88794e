// The one join between the engine and the kernels: the dispatch table (one slot per kernel, a CPU and a
// CUDA function pointer each, typed by the contract headers kernels/F.h) and the context handed to a kernel.
// An op front end calls `kernels().conv2d_forward.on(device)(exec_context(device), ...)`.
#pragma once
#include "kernels/batch_norm.h"
#include "kernels/common/error.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/grad_integration.h"
#include "kernels/l2_normalize.h"
#include "kernels/loss.h"
#include "kernels/masked_weight.h"
#include "kernels/optimizer.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/select.h"
#include "kernels/softmax.h"
#include "kernels/sparse_channel.h"

namespace scpn {

// A kernel's two implementations; `Fn` is the function type its contract declares (kernels/F.h).
template <class Fn>
struct KernelSlot {
  const char* name;
  Fn* cpu = nullptr;
  Fn* cuda = nullptr;

  explicit KernelSlot(const char* kernel_name) : name(kernel_name) {}
  bool supports(Device d) const { return (d.is_cpu() ? cpu : cuda) != nullptr; }
  Fn* on(Device d) const {
    Fn* f = d.is_cpu() ? cpu : cuda;
    if (!f) throw Error(cat("kernel '", name, "' has no implementation for device ", d.str()));
    return f;
  }
};

struct KernelTable {
  // elementwise.h
  KernelSlot<FillFn> fill{"fill"};
  KernelSlot<CastFn> cast{"cast"};
  KernelSlot<RandomFn> random{"random"};
  KernelSlot<UnaryFn> unary{"unary"};
  KernelSlot<BinaryFn> binary{"binary"};
  KernelSlot<WhereFn> where{"where"};
  KernelSlot<AxpyFn> axpy{"axpy"};
  // reduce.h
  KernelSlot<ReduceFn> reduce{"reduce"};
  // gemm.h
  KernelSlot<GemmFn> gemm{"gemm"};
  // conv2d.h
  KernelSlot<Conv2dForwardFn> conv2d_forward{"conv2d_forward"};
  KernelSlot<Conv2dBackwardDataFn> conv2d_backward_data{"conv2d_backward_data"};
  KernelSlot<Conv2dBackwardFilterFn> conv2d_backward_filter{"conv2d_backward_filter"};
  KernelSlot<Conv2dBackwardBiasFn> conv2d_backward_bias{"conv2d_backward_bias"};
  // batch_norm.h
  KernelSlot<BatchNormForwardTrainFn> batch_norm_forward_train{"batch_norm_forward_train"};
  KernelSlot<BatchNormForwardEvalFn> batch_norm_forward_eval{"batch_norm_forward_eval"};
  KernelSlot<BatchNormBackwardFn> batch_norm_backward{"batch_norm_backward"};
  KernelSlot<BatchNormForwardTrainFn> batch_norm_relu_forward_train{"batch_norm_relu_forward_train"};
  KernelSlot<BatchNormReluBackwardFn> batch_norm_relu_backward{"batch_norm_relu_backward"};
  // pool.h
  KernelSlot<MaxPool2dForwardFn> max_pool2d_forward{"max_pool2d_forward"};
  KernelSlot<MaxPool2dBackwardFn> max_pool2d_backward{"max_pool2d_backward"};
  KernelSlot<AvgPool1x1ForwardFn> avg_pool_1x1_forward{"avg_pool_1x1_forward"};
  KernelSlot<AvgPool1x1BackwardFn> avg_pool_1x1_backward{"avg_pool_1x1_backward"};
  // softmax.h, loss.h
  KernelSlot<LogSoftmaxForwardFn> log_softmax_forward{"log_softmax_forward"};
  KernelSlot<LogSoftmaxBackwardFn> log_softmax_backward{"log_softmax_backward"};
  KernelSlot<CrossEntropyForwardFn> cross_entropy_forward{"cross_entropy_forward"};
  KernelSlot<CrossEntropyBackwardFn> cross_entropy_backward{"cross_entropy_backward"};
  // l2_normalize.h
  KernelSlot<L2NormalizeForwardFn> l2_normalize_forward{"l2_normalize_forward"};
  KernelSlot<L2NormalizeBackwardFn> l2_normalize_backward{"l2_normalize_backward"};
  // select.h (k-th value for masks)
  KernelSlot<AbsKthValuesFn> abs_kth_values{"abs_kth_values"};
  KernelSlot<MagnitudeMaskFn> magnitude_mask{"magnitude_mask"};
  // masked_weight.h
  KernelSlot<MaskedWeightForwardFn> masked_weight_forward{"masked_weight_forward"};
  KernelSlot<MaskedWeightBackwardFn> masked_weight_backward{"masked_weight_backward"};
  // sparse_channel.h
  KernelSlot<GatherChannelsFn> gather_channels{"gather_channels"};
  KernelSlot<ScatterChannelsFn> scatter_channels{"scatter_channels"};
  KernelSlot<KeptFiltersBackwardFn> kept_filters_backward{"kept_filters_backward"};
  // optimizer.h
  KernelSlot<SgdStepFn> sgd_step{"sgd_step"};
  KernelSlot<AdamWStepFn> adamw_step{"adamw_step"};
  // grad_integration.h
  KernelSlot<GradIntegrateFn> grad_integrate{"grad_integrate"};
  KernelSlot<GradSumSquaresFn> grad_sum_squares{"grad_sum_squares"};
  KernelSlot<GradScaleFn> grad_scale{"grad_scale"};
};

// The process-wide table, filled on first use by register_cpu_kernels() (engine/register_cpu.cpp) and,
// in CUDA builds, register_cuda_kernels() (engine/cuda/register.cpp): one line per kernel, no static
// self-registration (linkers drop it from static libraries).
KernelTable& kernels();
void register_cpu_kernels(KernelTable&);
void register_cuda_kernels(KernelTable&);  // defined only in CUDA builds

// What a kernel on `device` is handed: the device and, on the CPU, the registered GEMM; on CUDA the
// device's stream, library handles and allocator, from the provider the CUDA backend installs.
ExecContext exec_context(Device device);
using ContextProvider = ExecContext (*)(Device);
void set_cuda_context_provider(ContextProvider provider);

}  // namespace scpn
