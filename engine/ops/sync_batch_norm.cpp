// Synchronised batch norm (sync_batch_norm.h), composed from the batch-norm kernels so that it runs on every
// backend that has them: the training kernel gives each rank's mean and variance, the eval-mode backward
// kernel per-channel sums (Σg, Σg·(x - m)·s for any m and s), and the eval-mode forward kernel any
// per-channel affine map (x - m)·s·w + b.
#include "engine/ops/sync_batch_norm.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/dist/communicator.h"
#include "engine/ops/elementwise.h"

namespace scpn {

namespace {

constexpr const char* kOp = "sync_batch_norm";

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

BatchNormShape shape_of(const Tensor& x) {
  BatchNormShape s;
  s.n = x.size(0);
  s.c = x.size(1);
  s.hw = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  return s;
}

// Per channel: sum_g = Σ g and sum_gx = Σ g·(x - center)·scale (the eval-mode backward's dβ and dγ).
void channel_sums(const Tensor& x, const Tensor& g, const Tensor& center, const Tensor& scale, Tensor& sum_g,
                  Tensor& sum_gx) {
  const BatchNormShape s = shape_of(x);
  sum_g = Tensor::empty({s.c}, x.dtype(), x.device());
  sum_gx = Tensor::empty({s.c}, x.dtype(), x.device());
  if (s.c == 0) return;
  kernels().batch_norm_backward.on(x.device())(exec_context(x.device()), x.dtype(), s, false, 0.0, x.raw_data(),
                                               g.raw_data(), nullptr, center.raw_data(), scale.raw_data(), nullptr,
                                               sum_gx.raw_data(), sum_g.raw_data());
}

// y = (x - center) / sqrt(var + eps) · w + b per channel (w, b nullable), through the eval forward kernel.
Tensor affine(const Tensor& x, const Tensor& center, const Tensor& var, double eps, const Tensor& w, const Tensor& b,
              Tensor* save_invstd = nullptr) {
  const BatchNormShape s = shape_of(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean_out, invstd_out;
  if (save_invstd) {
    mean_out = Tensor::empty({s.c}, x.dtype(), x.device());
    invstd_out = Tensor::empty({s.c}, x.dtype(), x.device());
  }
  if (s.c > 0)
    kernels().batch_norm_forward_eval.on(x.device())(
        exec_context(x.device()), x.dtype(), s, eps, x.raw_data(), data_or_null(w), data_or_null(b), center.raw_data(),
        var.raw_data(), y.raw_data(), save_invstd ? mean_out.raw_data() : nullptr,
        save_invstd ? invstd_out.raw_data() : nullptr);
  if (save_invstd) *save_invstd = invstd_out;
  return y;
}

// Sums [C] tensors over the group in double, in one collective.
std::vector<Tensor> group_sum(dist::Communicator& group, const std::vector<Tensor>& parts, const char* what) {
  const int64_t c = parts[0].numel();
  Tensor packed = Tensor::empty({int64_t(parts.size()) * c}, DType::f64, group.device());
  for (size_t i = 0; i < parts.size(); ++i) packed.slice(int64_t(i) * c, int64_t(i + 1) * c).copy_(parts[i]);
  group.all_reduce_sum(packed, what);
  std::vector<Tensor> out;
  for (size_t i = 0; i < parts.size(); ++i) out.push_back(packed.slice(int64_t(i) * c, int64_t(i + 1) * c));
  return out;
}

struct SyncBatchNormNode : Node {
  dist::Communicator* group = nullptr;
  double eps = 0, total = 0;
  Tensor x, weight, mean, var, invstd;  // the global statistics, in x's dtype
  const char* name() const override { return kOp; }
  std::vector<Tensor> backward(const Tensor& g) override {
    NoGradGuard no_grad;
    Tensor sum_g, sum_gxhat;
    channel_sums(x, g, mean, invstd, sum_g, sum_gxhat);  // this rank's dβ and dγ
    Tensor gx;
    if (needs_grad(0)) {
      const std::vector<Tensor> global =
          group_sum(*group, {sum_g, sum_gxhat}, "sync batch norm gradient sums");
      const Tensor mean_g = mul_scalar(global[0], 1.0 / total).to(x.dtype());
      const Tensor mean_gxhat = mul_scalar(global[1], 1.0 / total).to(x.dtype());
      // dx = w·invstd·(g - mean_g) - (x - mean)·invstd·(w·invstd·mean_gxhat)
      const Tensor w_invstd = weight.defined() ? mul(weight, invstd) : invstd;
      const Tensor direct = affine(g, mean_g, var, eps, weight, Tensor());
      const Tensor through_stats = affine(x, mean, var, eps, mul(w_invstd, mean_gxhat), Tensor());
      gx = sub(direct, through_stats);
    }
    return {gx, needs_grad(1) ? sum_gxhat : Tensor(), needs_grad(2) ? sum_g : Tensor()};
  }
  void release_saved() override { x = weight = mean = var = invstd = Tensor(); }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& options, dist::Communicator& group) {
  SCPN_CHECK(options.training, kOp, ": only training mode is synchronised (eval uses the running statistics)");
  SCPN_CHECK(x.device() == group.device(), kOp, ": x is on ", x.device().str(), " but the group's tensors live on ",
             group.device().str());
  const BatchNormShape s = shape_of(x);
  const int64_t c = s.c;
  Tensor mean, var, invstd, y;
  double total = 0;
  {
    NoGradGuard no_grad;
    // This rank's mean and biased variance (the training kernel accumulates them in double).
    Tensor local_mean = Tensor::empty({c}, x.dtype(), x.device()), local_invstd = Tensor::empty({c}, x.dtype(), x.device());
    if (s.per_channel() > 0 && c > 0) {
      Tensor scratch = Tensor::empty(x.shape(), x.dtype(), x.device());
      kernels().batch_norm_forward_train.on(x.device())(exec_context(x.device()), x.dtype(), s, options.eps, 0.0,
                                                        x.raw_data(), nullptr, nullptr, nullptr, nullptr,
                                                        scratch.raw_data(), local_mean.raw_data(), local_invstd.raw_data());
    }
    // Every rank's (count, mean, variance), combined the same way on every rank: M = Σm, mean = Σm·mean_r / M,
    // var = Σm·(var_r + (mean_r - mean)²) / M, in double.
    Tensor mine = Tensor::empty({2 * c + 1}, DType::f64, x.device());
    mine.slice(0, c).copy_(local_mean);
    const Tensor local_var = add_scalar(pow_scalar(local_invstd.to(DType::f64), -2.0), -options.eps);
    mine.slice(c, 2 * c).copy_(local_var);
    mine.slice(2 * c, 2 * c + 1).copy_(full({1}, double(s.per_channel()), DType::f64));
    Tensor all = Tensor::empty({group.size(), 2 * c + 1}, DType::f64, x.device());
    group.all_gather(mine, all, "sync batch norm statistics");
    std::vector<double> counts(static_cast<size_t>(group.size()));
    for (int r = 0; r < group.size(); ++r) {
      counts[size_t(r)] = all.slice(r, r + 1).reshape({2 * c + 1}).slice(2 * c, 2 * c + 1).item();
      total += counts[size_t(r)];
    }
    SCPN_CHECK(total > 1, kOp, ": expected more than 1 value per channel over the group when training, got ", total);
    auto part = [&](int r, int64_t k) { return all.slice(r, r + 1).reshape({2 * c + 1}).slice(k * c, (k + 1) * c); };
    Tensor mean64 = zeros({c}, DType::f64, x.device()), var64 = zeros({c}, DType::f64, x.device());
    for (int r = 0; r < group.size(); ++r)
      if (counts[size_t(r)] > 0) mean64 = add(mean64, mul_scalar(part(r, 0), counts[size_t(r)] / total));
    for (int r = 0; r < group.size(); ++r)
      if (counts[size_t(r)] > 0)
        var64 = add(var64, mul_scalar(add(part(r, 1), square(sub(part(r, 0), mean64))), counts[size_t(r)] / total));
    mean = mean64.to(x.dtype());
    var = var64.to(x.dtype());
    y = affine(x, mean, var, options.eps, weight, bias, &invstd);
    if (running_mean.defined()) {
      const double m = options.momentum;
      running_mean.copy_(add(mul_scalar(running_mean.to(DType::f64), 1 - m), mul_scalar(mean64, m)));
      running_var.copy_(add(mul_scalar(running_var.to(DType::f64), 1 - m), mul_scalar(var64, m * total / (total - 1))));
    }
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<SyncBatchNormNode>();
    node->group = &group;
    node->eps = options.eps;
    node->total = total;
    node->x = save(x);
    node->weight = save(weight);
    node->mean = mean;
    node->var = var;
    node->invstd = invstd;
    record(node, y, {&x, &weight, &bias});
  }
  return y;
}

}  // namespace scpn
