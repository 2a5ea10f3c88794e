// Batch norm on cuDNN's spatial batch normalisation (contract: kernels/batch_norm.h), x viewed as
// [n, c, hw, 1] (BatchNorm1d is hw = 1). Where cuDNN has no equivalent (eval-mode backward, a backward
// without grad_x, shapes over its 32-bit sizes) our kernels (kernels/cuda/batch_norm.cu) run instead.
#include "kernels/batch_norm.h"
#include "kernels/elementwise.h"

#include <algorithm>
#include <limits>

#include "kernels/cuda/scratch.h"
#include "kernels/cudnn/descriptors.h"

namespace scpn::cudnn {

namespace {

// cuDNN's tensor descriptors hold int sizes and strides; larger tensors (and empty ones, which it rejects)
// go to our kernels.
bool fits_cudnn(const BatchNormShape& s) {
  const int64_t limit = std::numeric_limits<int>::max();
  return s.n > 0 && s.hw > 0 && s.c > 0 && s.c <= limit && s.n * s.hw <= limit && s.n * s.c * s.hw <= limit;
}


struct BatchNormDescriptors {
  TensorDescriptor x;       // x, y and their gradients: [n, c, hw, 1]
  TensorDescriptor params;  // per-channel arrays: [1, c, 1, 1], derived by cuDNN
  BatchNormDescriptors(DType t, const BatchNormShape& s, const char* kernel) {
    x.set_nchw(data_type(t, kernel), int(s.n), int(s.c), int(s.hw), 1);
    SCPN_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(params.get(), x.get(), CUDNN_BATCHNORM_SPATIAL));
  }
};

// cuDNN needs a scale and a bias. A per-channel input: the caller's array, or `value` repeated in scratch
// memory when it is null (ones for a null weight, zeros for a null bias).
class ChannelInput {
 public:
  ChannelInput(const ExecContext& ctx, DType t, int64_t c, const void* given, double value)
      : scratch_(ctx, given ? 0 : size_t(c) * dtype_size(t)), ptr_(given) {
    if (!given) {
      cuda::fill(ctx, t, c, value, scratch_.get());
      ptr_ = scratch_.get();
    }
  }
  const void* get() const { return ptr_; }

 private:
  cuda::Scratch scratch_;
  const void* ptr_;
};

// A per-channel output: the caller's array, or scratch memory whose contents are dropped when it is null
// (cuDNN always writes grad_weight and grad_bias).
class ChannelOutput {
 public:
  ChannelOutput(const ExecContext& ctx, DType t, int64_t c, void* given)
      : scratch_(ctx, given ? 0 : size_t(c) * dtype_size(t)), ptr_(given ? given : scratch_.get()) {}
  void* get() const { return ptr_; }

 private:
  cuda::Scratch scratch_;
  void* ptr_;
};

cudnnHandle_t handle_of(const ExecContext& ctx) { return static_cast<cudnnHandle_t>(ctx.dnn); }

}  // namespace

// cuDNN's saveMean / saveInvVariance are our save_mean / save_invstd (its "inverse variance" is
// 1 / sqrt(var + eps), the same number). exponentialAverageFactor is our momentum; the running variance
// cuDNN keeps is the unbiased estimate (PyTorch hands its running_var, documented as unbiased, straight
// to cuDNN). Both running pointers may be null together.
void batch_norm_forward_train(const ExecContext& ctx, DType t, const BatchNormShape& s, double eps, double momentum,
                              const void* x, const void* weight, const void* bias, void* running_mean,
                              void* running_var, void* y, void* save_mean, void* save_invstd) {
  constexpr const char* kKernel = "batch_norm_forward_train";
  data_type(t, kKernel);
  if (!fits_cudnn(s) || eps < CUDNN_BN_MIN_EPSILON) {
    cuda::batch_norm_forward_train(ctx, t, s, eps, momentum, x, weight, bias, running_mean, running_var, y,
                                   save_mean, save_invstd);
    return;
  }
  const BatchNormDescriptors d(t, s, kKernel);
  const ChannelInput scale(ctx, t, s.c, weight, 1.0), shift(ctx, t, s.c, bias, 0.0);
  const Blend one(1.0), zero(0.0);
  const bool running = running_mean && running_var;
  SCPN_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      handle_of(ctx), CUDNN_BATCHNORM_SPATIAL, one.for_type(t), zero.for_type(t), d.x.get(), x, d.x.get(), y,
      d.params.get(), scale.get(), shift.get(), momentum, running ? running_mean : nullptr,
      running ? running_var : nullptr, eps, save_mean, save_invstd));
}

void batch_norm_forward_eval(const ExecContext& ctx, DType t, const BatchNormShape& s, double eps, const void* x,
                             const void* weight, const void* bias, const void* running_mean,
                             const void* running_var, void* y, void* save_mean, void* save_invstd) {
  constexpr const char* kKernel = "batch_norm_forward_eval";
  data_type(t, kKernel);
  if (!fits_cudnn(s) || eps < CUDNN_BN_MIN_EPSILON) {
    cuda::batch_norm_forward_eval(ctx, t, s, eps, x, weight, bias, running_mean, running_var, y, save_mean,
                                  save_invstd);
    return;
  }
  const BatchNormDescriptors d(t, s, kKernel);
  const ChannelInput scale(ctx, t, s.c, weight, 1.0), shift(ctx, t, s.c, bias, 0.0);
  const Blend one(1.0), zero(0.0);
  SCPN_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      handle_of(ctx), CUDNN_BATCHNORM_SPATIAL, one.for_type(t), zero.for_type(t), d.x.get(), x, d.x.get(), y,
      d.params.get(), scale.get(), shift.get(), running_mean, running_var, eps));
  // The statistics for backward (running_mean and 1 / sqrt(running_var + eps)) are not a cuDNN output:
  // our eval kernel over an empty batch writes exactly those and touches nothing else.
  if (save_mean || save_invstd) {
    BatchNormShape stats_only = s;
    stats_only.n = 0;
    cuda::batch_norm_forward_eval(ctx, t, stats_only, eps, nullptr, nullptr, nullptr, running_mean, running_var,
                                  nullptr, save_mean, save_invstd);
  }
}

void batch_norm_backward(const ExecContext& ctx, DType t, const BatchNormShape& s, bool training, double eps, const void* x,
                         const void* grad_y, const void* weight, const void* mean, const void* invstd, void* grad_x,
                         void* grad_weight, void* grad_bias) {
  constexpr const char* kKernel = "batch_norm_backward";
  data_type(t, kKernel);
  // cuDNN's backward is the training one and always computes grad_x; computing a whole grad_x only to drop
  // it would cost more than our kernels' per-channel sums.
  if (!training || !grad_x || !fits_cudnn(s) || eps < CUDNN_BN_MIN_EPSILON) {
    cuda::batch_norm_backward(ctx, t, s, training, eps, x, grad_y, weight, mean, invstd, grad_x, grad_weight, grad_bias);
    return;
  }
  const BatchNormDescriptors d(t, s, kKernel);
  const ChannelInput scale(ctx, t, s.c, weight, 1.0);
  const ChannelOutput d_scale(ctx, t, s.c, grad_weight), d_bias(ctx, t, s.c, grad_bias);
  const Blend one(1.0), zero(0.0);
  // Blend factors 1 and 0 for both the data and the parameter gradients: every output is overwritten. The
  // backward gets the forward's eps, as cuDNN asks, although with saved statistics it should not need it.
  SCPN_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      handle_of(ctx), CUDNN_BATCHNORM_SPATIAL, one.for_type(t), zero.for_type(t), one.for_type(t), zero.for_type(t),
      d.x.get(), x, d.x.get(), grad_y, d.x.get(), grad_x, d.params.get(), scale.get(), d_scale.get(), d_bias.get(),
      eps, mean, invstd));
}

}  // namespace scpn::cudnn
