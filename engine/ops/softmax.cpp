// log_softmax / softmax front-ends and the log-softmax backward node.
#include "engine/ops/softmax.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"

namespace scpn {

namespace {

SoftmaxParams params_of(const Tensor& x) {
  SoftmaxParams p;
  p.rows = x.size(0);
  p.cols = x.size(1);
  return p;
}

struct LogSoftmaxNode : Node {
  Tensor y;  // the forward's output: softmax = exp(y)
  const char* name() const override { return "log_softmax"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
    if (gx.numel() > 0)
      kernels().log_softmax_backward.on(y.device())(exec_context(y.device()), y.dtype(), params_of(y),
                                                    y.raw_data(), g.raw_data(), gx.raw_data());
    return {gx};
  }
  void release_saved() override { y = Tensor(); }
};

}  // namespace

Tensor log_softmax(const Tensor& x) {
  check_float("log_softmax", "x", x);
  check_dim("log_softmax", "x", x, 2);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (y.numel() > 0)
    kernels().log_softmax_forward.on(x.device())(exec_context(x.device()), x.dtype(), params_of(x), x.raw_data(),
                                                 y.raw_data());
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<LogSoftmaxNode>();
    node->y = save(y);
    record(node, y, {&x});
  }
  return y;
}

Tensor softmax(const Tensor& x) {
  check_float("softmax", "x", x);
  check_dim("softmax", "x", x, 2);
  return exp(log_softmax(x));
}

}  // namespace scpn
