// conv2d front-end: argument checks, the dispatch to the conv2d kernels, and the backward node that
// computes ∂x, ∂weight and ∂bias with the three backward kernels (each only when needed).
#include "engine/ops/conv2d.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {
namespace {

std::string pair_str(const Conv2dOptions::HW& v) { return cat("[", v.h, ", ", v.w, "]"); }

Conv2dParams checked_params(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  check_float("conv2d", "x", x);
  check_same("conv2d", "x", x, "weight", weight);
  if (bias.defined()) check_same("conv2d", "x", x, "bias", bias);
  check_dim("conv2d", "x", x, 4);
  check_dim("conv2d", "weight", weight, 4);
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  SCPN_CHECK(xs[1] > 0 && xs[2] > 0 && xs[3] > 0, "conv2d: x ", shape_str(xs),
             " must have at least one channel, row and column");
  SCPN_CHECK(ws[0] > 0 && ws[1] > 0 && ws[2] > 0 && ws[3] > 0, "conv2d: weight ", shape_str(ws),
             " has a zero-sized dimension");
  SCPN_CHECK(o.groups >= 1, "conv2d: groups must be >= 1, got ", o.groups);
  SCPN_CHECK(o.stride.h >= 1 && o.stride.w >= 1, "conv2d: stride ", pair_str(o.stride), " must be >= 1");
  SCPN_CHECK(o.padding.h >= 0 && o.padding.w >= 0, "conv2d: padding ", pair_str(o.padding), " must be >= 0");
  SCPN_CHECK(xs[1] % o.groups == 0, "conv2d: groups ", o.groups, " does not divide the ", xs[1],
             " channels of x ", shape_str(xs));
  SCPN_CHECK(ws[0] % o.groups == 0, "conv2d: groups ", o.groups, " does not divide the ", ws[0],
             " filters of weight ", shape_str(ws));
  SCPN_CHECK(xs[1] == ws[1] * o.groups, "conv2d: x ", shape_str(xs), " has ", xs[1], " channels but weight ",
             shape_str(ws), " with groups ", o.groups, " expects ", ws[1] * o.groups);
  if (bias.defined())
    SCPN_CHECK(bias.dim() == 1 && bias.size(0) == ws[0], "conv2d: bias ", shape_str(bias.shape()), " must be [",
               ws[0], "], one value per filter of weight ", shape_str(ws));
  const int64_t padded_h = xs[2] + 2 * o.padding.h, padded_w = xs[3] + 2 * o.padding.w;
  SCPN_CHECK(padded_h >= ws[2] && padded_w >= ws[3], "conv2d: the ", ws[2], "x", ws[3],
             " kernel does not fit the padded input ", padded_h, "x", padded_w, " of x ", shape_str(xs),
             " (padding ", pair_str(o.padding), "): the output would be smaller than 1x1");

  Conv2dParams p;
  p.N = xs[0];
  p.C = xs[1];
  p.H = xs[2];
  p.W = xs[3];
  p.K = ws[0];
  p.R = ws[2];
  p.S = ws[3];
  p.stride_h = o.stride.h;
  p.stride_w = o.stride.w;
  p.pad_h = o.padding.h;
  p.pad_w = o.padding.w;
  p.groups = o.groups;
  return p;
}

struct Conv2dNode : Node {
  Conv2dParams params;
  Tensor x;       // saved when weight needs a gradient
  Tensor weight;  // saved when x needs a gradient
  const char* name() const override { return "conv2d"; }

  std::vector<Tensor> backward(const Tensor& grad_y) override {
    const Device device = grad_y.device();
    const DType dtype = grad_y.dtype();
    const ExecContext ctx = exec_context(device);
    const Conv2dParams& p = params;
    Tensor grad_x, grad_w, grad_b;
    if (needs_grad(0)) {
      grad_x = Tensor::empty({p.N, p.C, p.H, p.W}, dtype, device);
      kernels().conv2d_backward_data.on(device)(ctx, dtype, p, grad_y.raw_data(), weight.raw_data(),
                                                grad_x.raw_data());
    }
    if (needs_grad(1)) {
      grad_w = Tensor::empty({p.K, p.C / p.groups, p.R, p.S}, dtype, device);
      kernels().conv2d_backward_filter.on(device)(ctx, dtype, p, grad_y.raw_data(), x.raw_data(),
                                                  grad_w.raw_data());
    }
    if (needs_grad(2)) {
      grad_b = Tensor::empty({p.K}, dtype, device);
      kernels().conv2d_backward_bias.on(device)(ctx, dtype, p, grad_y.raw_data(), grad_b.raw_data());
    }
    return {grad_x, grad_w, grad_b};
  }
  void release_saved() override { x = weight = Tensor(); }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  const Conv2dParams p = checked_params(x, weight, bias, options);
  Tensor y = Tensor::empty({p.N, p.K, p.P(), p.Q()}, x.dtype(), x.device());
  if (p.N > 0)
    kernels().conv2d_forward.on(x.device())(exec_context(x.device()), x.dtype(), p, x.raw_data(),
                                            weight.raw_data(), bias.defined() ? bias.raw_data() : nullptr,
                                            y.raw_data());
  if (any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<Conv2dNode>();
    node->params = p;
    if (weight.defined() && weight.requires_grad()) node->x = save(x);
    if (x.requires_grad()) node->weight = save(weight);
    record(node, y, {&x, &weight, &bias});
  }
  return y;
}

}  // namespace scpn
