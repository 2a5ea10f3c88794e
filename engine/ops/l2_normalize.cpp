// l2_normalize front-end and its backward node.
#include "engine/ops/l2_normalize.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

struct L2NormalizeNode : Node {
  Tensor y, norm;  // output and per-row unclamped norms of the forward
  L2NormalizeParams params;
  const char* name() const override { return "l2_normalize"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
    if (gx.numel() > 0)
      kernels().l2_normalize_backward.on(y.device())(exec_context(y.device()), y.dtype(), params, y.raw_data(),
                                                     norm.raw_data(), g.raw_data(), gx.raw_data());
    return {gx};
  }
  void release_saved() override { y = norm = Tensor(); }
};

}  // namespace

Tensor l2_normalize(const Tensor& x, double eps) {
  check_float("l2_normalize", "x", x);
  check_dim("l2_normalize", "x", x, 2);
  SCPN_CHECK(eps >= 0.0, "l2_normalize: eps must be >= 0, got ", eps);
  L2NormalizeParams params;
  params.rows = x.size(0);
  params.cols = x.size(1);
  params.eps = eps;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor norm = Tensor::empty({params.rows}, x.dtype(), x.device());
  if (y.numel() > 0)
    kernels().l2_normalize_forward.on(x.device())(exec_context(x.device()), x.dtype(), params, x.raw_data(),
                                                  y.raw_data(), norm.raw_data());
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<L2NormalizeNode>();
    node->y = save(y);
    node->norm = norm;
    node->params = params;
    record(node, y, {&x});
  }
  return y;
}

}  // namespace scpn
