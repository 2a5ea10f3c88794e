// Pooling front-ends: argument checks, output shapes, dispatch and the backward nodes (max pooling keeps
// the argmax indices of its forward; average pooling needs only the input's shape).
#include "engine/ops/pool.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

void check_nchw(const char* op, const Tensor& x) {
  check_float(op, "x", x);
  SCPN_CHECK(x.dim() == 4, op, ": argument 'x' must be 4-D [N, C, H, W], got ", describe(x));
}

struct MaxPool2dNode : Node {
  MaxPool2dParams params;
  Shape input_shape;
  Tensor indices;  // i32, the output's shape: argmax inside each input plane
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty(input_shape, g.dtype(), g.device());
    if (gx.numel() > 0)
      kernels().max_pool2d_backward.on(g.device())(exec_context(g.device()), g.dtype(), params, g.raw_data(),
                                                   indices.data<int32_t>(), gx.raw_data());
    return {gx};
  }
  void release_saved() override { indices = Tensor(); }
};

struct AvgPool1x1Node : Node {
  Shape input_shape;
  const char* name() const override { return "adaptive_avg_pool2d_1x1"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty(input_shape, g.dtype(), g.device());
    const int64_t planes = input_shape[0] * input_shape[1], hw = input_shape[2] * input_shape[3];
    if (gx.numel() > 0)
      kernels().avg_pool_1x1_backward.on(g.device())(exec_context(g.device()), g.dtype(), planes, hw,
                                                     g.raw_data(), gx.raw_data());
    return {gx};
  }
};

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const char* op = "max_pool2d";
  check_nchw(op, x);
  SCPN_CHECK(kernel >= 1, op, ": kernel must be >= 1, got ", kernel);
  SCPN_CHECK(stride >= 1, op, ": stride must be >= 1, got ", stride);
  SCPN_CHECK(padding >= 0 && padding <= kernel / 2, op, ": padding must be in [0, kernel / 2] = [0, ",
             kernel / 2, "], got ", padding);
  const int64_t h = x.size(2), w = x.size(3);
  SCPN_CHECK(h >= 1 && w >= 1 && h + 2 * padding >= kernel && w + 2 * padding >= kernel, op, ": input ",
             shape_str(x.shape()), " is too small for kernel ", kernel, " with padding ", padding);

  MaxPool2dParams p;
  p.n = x.size(0);
  p.c = x.size(1);
  p.h = h;
  p.w = w;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  p.out_h = (h + 2 * padding - kernel) / stride + 1;
  p.out_w = (w + 2 * padding - kernel) / stride + 1;

  const Shape out_shape{p.n, p.c, p.out_h, p.out_w};
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor indices = Tensor::empty(out_shape, DType::i32, x.device());
  if (y.numel() > 0)
    kernels().max_pool2d_forward.on(x.device())(exec_context(x.device()), x.dtype(), p, x.raw_data(),
                                                y.raw_data(), indices.data<int32_t>());
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<MaxPool2dNode>();
    node->params = p;
    node->input_shape = x.shape();
    node->indices = indices;
    record(node, y, {&x});
  }
  return y;
}

Tensor adaptive_avg_pool2d_1x1(const Tensor& x) {
  const char* op = "adaptive_avg_pool2d_1x1";
  check_nchw(op, x);
  SCPN_CHECK(x.size(2) >= 1 && x.size(3) >= 1, op, ": input ", shape_str(x.shape()),
             " has an empty spatial plane (H or W is 0)");
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor y = Tensor::empty({x.size(0), x.size(1), 1, 1}, x.dtype(), x.device());
  if (planes > 0)
    kernels().avg_pool_1x1_forward.on(x.device())(exec_context(x.device()), x.dtype(), planes, hw, x.raw_data(),
                                                  y.raw_data());
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<AvgPool1x1Node>();
    node->input_shape = x.shape();
    record(node, y, {&x});
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  Tensor pooled = adaptive_avg_pool2d_1x1(x);
  return pooled.reshape({x.size(0), x.size(1)});
}

}  // namespace scpn
