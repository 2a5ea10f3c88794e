// Elementwise ops: front-ends, broadcasting and their backward nodes.
#include "engine/ops/elementwise.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/reduce.h"

namespace scpn {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SCPN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Strides (in elements) of a contiguous tensor of shape `s` seen through broadcast shape `out`.
void broadcast_strides(const Shape& s, const Shape& out, int64_t* strides) {
  size_t pad = out.size() - s.size();
  int64_t stride = 1;
  for (size_t i = out.size(); i-- > 0;) {
    int64_t d = i < pad ? 1 : s[i - pad];
    strides[i] = d == 1 ? 0 : stride;
    stride *= d;
  }
}

Tensor binary_raw(const char* op_name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same(op_name, "a", a, "b", b);
  check_float(op_name, "a", a);
  Shape out_shape = broadcast_shapes(op_name, a.shape(), b.shape());
  BroadcastLayout L;
  L.ndim = int(out_shape.size());
  for (int i = 0; i < L.ndim; ++i) L.shape[i] = out_shape[size_t(i)];
  broadcast_strides(a.shape(), out_shape, L.a_stride);
  broadcast_strides(b.shape(), out_shape, L.b_stride);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel() > 0)
    kernels().binary.on(a.device())(exec_context(a.device()), op, a.dtype(), L, a.raw_data(), b.raw_data(),
                                    out.raw_data());
  return out;
}

Tensor unary_raw(const char* op_name, UnaryOp op, const Tensor& x, double alpha = 0) {
  check_float(op_name, "x", x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0)
    kernels().unary.on(x.device())(exec_context(x.device()), op, x.dtype(), x.numel(), x.raw_data(), alpha,
                                   out.raw_data());
  return out;
}

struct BinaryNode : Node {
  BinaryOp op;
  Tensor a, b;  // saved only where the gradient needs them
  Shape a_shape, b_shape;
  const char* name() const override {
    switch (op) {
      case BinaryOp::add: return "add";
      case BinaryOp::sub: return "sub";
      case BinaryOp::mul: return "mul";
      case BinaryOp::div: return "div";
      default: return "maximum";
    }
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::add:
        if (needs_grad(0)) ga = sum_to(g, a_shape);
        if (needs_grad(1)) gb = sum_to(g, b_shape);
        break;
      case BinaryOp::sub:
        if (needs_grad(0)) ga = sum_to(g, a_shape);
        if (needs_grad(1)) gb = sum_to(neg(g), b_shape);
        break;
      case BinaryOp::mul:
        if (needs_grad(0)) ga = sum_to(mul(g, b), a_shape);
        if (needs_grad(1)) gb = sum_to(mul(g, a), b_shape);
        break;
      case BinaryOp::div:
        if (needs_grad(0)) ga = sum_to(div(g, b), a_shape);
        if (needs_grad(1)) gb = sum_to(neg(div(mul(g, a), square(b))), b_shape);
        break;
      default: {  // maximum: the gradient goes to a where a >= b, else to b
        Tensor take_a = binary_raw("maximum", BinaryOp::ge, a, b);
        Tensor g_a = mul(g, take_a);
        if (needs_grad(0)) ga = sum_to(g_a, a_shape);
        if (needs_grad(1)) gb = sum_to(sub(g, g_a), b_shape);
      }
    }
    return {ga, gb};
  }
  void release_saved() override { a = b = Tensor(); }
};

Tensor binary(const char* op_name, BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(op_name, op, a, b);
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<BinaryNode>();
    node->op = op;
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    if (op != BinaryOp::add && op != BinaryOp::sub) {
      node->a = save(a);
      node->b = save(b);
    }
    record(node, out, {&a, &b});
  }
  return out;
}

struct UnaryNode : Node {
  UnaryOp op;
  double alpha = 0;
  Tensor x, y;  // input and output, saved as the gradient needs
  const char* name() const override {
    switch (op) {
      case UnaryOp::relu: return "relu";
      case UnaryOp::abs: return "abs";
      case UnaryOp::sign: return "sign";
      case UnaryOp::neg: return "neg";
      case UnaryOp::exp: return "exp";
      case UnaryOp::log: return "log";
      case UnaryOp::sqrt: return "sqrt";
      case UnaryOp::square: return "square";
      case UnaryOp::reciprocal: return "reciprocal";
      case UnaryOp::add_scalar: return "add_scalar";
      case UnaryOp::mul_scalar: return "mul_scalar";
      case UnaryOp::pow_scalar: return "pow_scalar";
    }
    return "unary";
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    switch (op) {
      case UnaryOp::relu: return {binary_raw("relu", BinaryOp::relu_backward, g, y)};
      case UnaryOp::abs: return {mul(g, sign(x))};
      case UnaryOp::sign: return {zeros(g.shape(), g.dtype(), g.device())};
      case UnaryOp::neg: return {neg(g)};
      case UnaryOp::exp: return {mul(g, y)};
      case UnaryOp::log: return {div(g, x)};
      case UnaryOp::sqrt: return {div(mul_scalar(g, 0.5), y)};
      case UnaryOp::square: return {mul(g, mul_scalar(x, 2.0))};
      case UnaryOp::reciprocal: return {neg(mul(g, square(y)))};
      case UnaryOp::add_scalar: return {g};
      case UnaryOp::mul_scalar: return {mul_scalar(g, alpha)};
      case UnaryOp::pow_scalar: return {mul(g, mul_scalar(pow_scalar(x, alpha - 1.0), alpha))};
    }
    return {Tensor()};
  }
  void release_saved() override { x = y = Tensor(); }
};

Tensor unary(const char* op_name, UnaryOp op, const Tensor& x, double alpha = 0) {
  Tensor out = unary_raw(op_name, op, x, alpha);
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<UnaryNode>();
    node->op = op;
    node->alpha = alpha;
    bool needs_x = op == UnaryOp::abs || op == UnaryOp::log || op == UnaryOp::square || op == UnaryOp::pow_scalar;
    bool needs_y = op == UnaryOp::relu || op == UnaryOp::exp || op == UnaryOp::sqrt || op == UnaryOp::reciprocal;
    if (needs_x) node->x = save(x);
    if (needs_y) node->y = save(out);
    record(node, out, {&x});
  }
  return out;
}

struct WhereNode : Node {
  Tensor cond;
  const char* name() const override { return "where"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor z = zeros(g.shape(), g.dtype(), g.device());
    Tensor ga, gb;
    if (needs_grad(1)) ga = where(cond, g, z);
    if (needs_grad(2)) gb = where(cond, z, g);
    return {Tensor(), ga, gb};
  }
  void release_saved() override { cond = Tensor(); }
};

Tensor compare(const char* op_name, BinaryOp op, const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  Tensor r = binary_raw(op_name, op, a, b);
  return r.to(DType::u8);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinaryOp::div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary("maximum", BinaryOp::maximum, a, b); }

Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::relu, x); }
Tensor abs(const Tensor& x) { return unary("abs", UnaryOp::abs, x); }
Tensor sign(const Tensor& x) { return unary("sign", UnaryOp::sign, x); }
Tensor neg(const Tensor& x) { return unary("neg", UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::sqrt, x); }
Tensor square(const Tensor& x) { return unary("square", UnaryOp::square, x); }
Tensor add_scalar(const Tensor& x, double s) { return unary("add_scalar", UnaryOp::add_scalar, x, s); }
Tensor mul_scalar(const Tensor& x, double s) { return unary("mul_scalar", UnaryOp::mul_scalar, x, s); }
Tensor pow_scalar(const Tensor& x, double p) { return unary("pow_scalar", UnaryOp::pow_scalar, x, p); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same("where", "a", a, "b", b);
  check_defined("where", "cond", cond);
  SCPN_CHECK(cond.dtype() == DType::u8, "where: cond must be u8, got ", describe(cond));
  SCPN_CHECK(cond.shape() == a.shape() && a.shape() == b.shape(), "where: shapes must match: cond ",
             shape_str(cond.shape()), ", a ", shape_str(a.shape()), ", b ", shape_str(b.shape()));
  SCPN_CHECK(cond.device() == a.device(), "where: device mismatch: cond is ", describe(cond), ", a is ", describe(a));
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  kernels().where.on(a.device())(exec_context(a.device()), a.dtype(), a.numel(), cond.data<uint8_t>(),
                                 a.raw_data(), b.raw_data(), out.raw_data());
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<WhereNode>();
    node->cond = cond;
    record(node, out, {&cond, &a, &b});
  }
  return out;
}

Tensor greater(const Tensor& a, const Tensor& b) { return compare("greater", BinaryOp::gt, a, b); }
Tensor greater_equal(const Tensor& a, const Tensor& b) { return compare("greater_equal", BinaryOp::ge, a, b); }

Tensor expand(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Shape out = broadcast_shapes("expand", x.shape(), shape);
  SCPN_CHECK(out == shape, "expand: shape ", shape_str(x.shape()), " cannot be expanded to ", shape_str(shape));
  return add(x, zeros(shape, x.dtype(), x.device()));  // broadcast through the add kernel
}

void axpy_(const Tensor& y, double alpha, const Tensor& x) {
  check_same("axpy_", "y", y, "x", x);
  SCPN_CHECK(x.shape() == y.shape(), "axpy_: shapes differ: y ", shape_str(y.shape()), ", x ", shape_str(x.shape()));
  kernels().axpy.on(y.device())(exec_context(y.device()), y.dtype(), y.numel(), alpha, x.raw_data(), y.raw_data());
}

void fill_(const Tensor& t, double value) {
  check_defined("fill_", "t", t);
  kernels().fill.on(t.device())(exec_context(t.device()), t.dtype(), t.numel(), value, t.raw_data());
}

}  // namespace scpn
