// Batch norm front-end: argument checks, the forward dispatch (training or eval kernel) and the backward
// node, which keeps the statistics the forward used (batch or a snapshot of the running ones).
#include "engine/ops/batch_norm.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/sync_batch_norm.h"

namespace scpn {

namespace {

constexpr const char* kOp = "batch_norm";

// A per-channel tensor: undefined, or x's dtype and device with shape [C].
void check_per_channel(const char* arg, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  check_same(kOp, "x", x, arg, t);
  SCPN_CHECK(t.dim() == 1 && t.size(0) == x.size(1), kOp, ": argument '", arg, "' must have shape [",
             x.size(1), "] (one value per channel of x ", shape_str(x.shape()), "), got ",
             shape_str(t.shape()));
}

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

struct BatchNormNode : Node {
  BatchNormShape shape;
  bool training = true;
  double eps = 0;
  Tensor x, weight, mean, invstd;  // mean/invstd: the statistics the forward normalised with
  Tensor relu_y;                   // a fused ReLU's output (training only); undefined without one
  const char* name() const override { return relu_y.defined() ? "batch_norm (relu)" : kOp; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx, gw, gb;
    if (needs_grad(0)) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (needs_grad(1)) gw = Tensor::empty({shape.c}, x.dtype(), x.device());
    if (needs_grad(2)) gb = Tensor::empty({shape.c}, x.dtype(), x.device());
    void* gx_data = gx.defined() ? gx.raw_data() : nullptr;
    void* gw_data = gw.defined() ? gw.raw_data() : nullptr;
    void* gb_data = gb.defined() ? gb.raw_data() : nullptr;
    if (shape.c > 0 && relu_y.defined())
      kernels().batch_norm_relu_backward.on(x.device())(exec_context(x.device()), x.dtype(), shape, x.raw_data(),
                                                        relu_y.raw_data(), g.raw_data(), data_or_null(weight),
                                                        mean.raw_data(), invstd.raw_data(), gx_data, gw_data, gb_data);
    else if (shape.c > 0)
      kernels().batch_norm_backward.on(x.device())(exec_context(x.device()), x.dtype(), shape, training, eps,
                                                   x.raw_data(), g.raw_data(), data_or_null(weight),
                                                   mean.raw_data(), invstd.raw_data(), gx_data, gw_data, gb_data);
    return {gx, gw, gb};
  }
  void release_saved() override { x = weight = mean = invstd = relu_y = Tensor(); }
};

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& options) {
  check_float(kOp, "x", x);
  SCPN_CHECK(x.dim() == 2 || x.dim() == 4, kOp, ": argument 'x' must be 2-D [N, C] or 4-D [N, C, H, W], got ",
             describe(x));
  check_per_channel("weight", weight, x);
  check_per_channel("bias", bias, x);
  check_per_channel("running_mean", running_mean, x);
  check_per_channel("running_var", running_var, x);
  SCPN_CHECK(running_mean.defined() == running_var.defined(), kOp,
             ": running_mean and running_var must be given together, got running_mean ", describe(running_mean),
             " and running_var ", describe(running_var));
  SCPN_CHECK(options.training || running_mean.defined(), kOp,
             ": eval mode (training = false) needs running_mean and running_var");
  SCPN_CHECK(options.momentum >= 0 && options.momentum <= 1, kOp, ": momentum must be in [0, 1], got ",
             options.momentum);
  SCPN_CHECK(options.eps >= 0, kOp, ": eps must be >= 0, got ", options.eps);

  // A ReLU with no fused kernel for this case: the two ops.
  const bool fused_relu = options.relu && options.training && !options.sync_group &&
                          kernels().batch_norm_relu_forward_train.supports(x.device()) &&
                          kernels().batch_norm_relu_backward.supports(x.device());
  if (options.relu && !fused_relu) {
    BatchNormOptions plain = options;
    plain.relu = false;
    return relu(batch_norm(x, weight, bias, running_mean, running_var, plain));
  }

  // Synchronised: the statistics are over the group's batch, which may have one row per rank.
  if (options.training && options.sync_group)
    return sync_batch_norm(x, weight, bias, running_mean, running_var, options, *options.sync_group);

  BatchNormShape s;
  s.n = x.size(0);
  s.c = x.size(1);
  s.hw = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  SCPN_CHECK(!options.training || s.per_channel() > 1, kOp,
             ": expected more than 1 value per channel when training, got x of shape ", shape_str(x.shape()));

  const bool record_grad = any_requires_grad({&x, &weight, &bias});
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean, invstd;  // the statistics normalised with, kept for backward
  ExecContext ctx = exec_context(x.device());
  if (options.training) {
    mean = Tensor::empty({s.c}, x.dtype(), x.device());
    invstd = Tensor::empty({s.c}, x.dtype(), x.device());
    if (s.c > 0)
      (fused_relu ? kernels().batch_norm_relu_forward_train : kernels().batch_norm_forward_train).on(x.device())(
          ctx, x.dtype(), s, options.eps, options.momentum, x.raw_data(), data_or_null(weight),
          data_or_null(bias), running_mean.defined() ? running_mean.raw_data() : nullptr,
          running_var.defined() ? running_var.raw_data() : nullptr, y.raw_data(), mean.raw_data(),
          invstd.raw_data());
  } else {
    if (record_grad) {
      mean = Tensor::empty({s.c}, x.dtype(), x.device());
      invstd = Tensor::empty({s.c}, x.dtype(), x.device());
    }
    if (s.c > 0)
      kernels().batch_norm_forward_eval.on(x.device())(
          ctx, x.dtype(), s, options.eps, x.raw_data(), data_or_null(weight), data_or_null(bias),
          running_mean.raw_data(), running_var.raw_data(), y.raw_data(),
          mean.defined() ? mean.raw_data() : nullptr, invstd.defined() ? invstd.raw_data() : nullptr);
  }

  if (record_grad) {
    auto node = std::make_shared<BatchNormNode>();
    node->shape = s;
    node->training = options.training;
    node->eps = options.eps;
    node->x = save(x);
    node->weight = save(weight);
    node->mean = mean;
    node->invstd = invstd;
    if (fused_relu) node->relu_y = save(y);
    record(node, y, {&x, &weight, &bias});
  }
  return y;
}

}  // namespace scpn
