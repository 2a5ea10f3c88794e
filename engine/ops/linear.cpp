// matmul and linear: argument checks, the forward GEMM through the dispatch table, and backward nodes
// whose gradients are GEMMs with transposed operands (no copies: the kernel reads op(X) in place).
#include "engine/ops/linear.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace scpn {

namespace {

// op(a) · op(b) for contiguous row-major 2-D operands, where op(X) = Xᵀ when its flag is set.
Tensor gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b) {
  const int64_t m = trans_a ? a.size(1) : a.size(0);
  const int64_t k = trans_a ? a.size(0) : a.size(1);
  const int64_t n = trans_b ? b.size(0) : b.size(1);
  Tensor out = Tensor::empty({m, n}, a.dtype(), a.device());
  // beta = 0 overwrites: `out` is uninitialised.
  const GemmArgs g = dense_gemm(trans_a, trans_b, m, n, k, a.raw_data(), b.raw_data(), out.raw_data());
  kernels().gemm.on(a.device())(exec_context(a.device()), a.dtype(), g);
  return out;
}

struct MatmulNode : Node {
  Tensor a, b;  // a is needed for db, b for da
  const char* name() const override { return "matmul"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor da, db;
    if (needs_grad(0)) da = gemm(g, false, b, true);  // g [m, n] · bᵀ [n, k]
    if (needs_grad(1)) db = gemm(a, true, g, false);  // aᵀ [k, m] · g [m, n]
    return {da, db};
  }
  void release_saved() override { a = b = Tensor(); }
};

struct LinearNode : Node {
  Tensor x, weight;  // x is needed for dweight, weight for dx
  const char* name() const override { return "linear"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx, dweight, dbias;
    if (needs_grad(0)) dx = gemm(g, false, weight, false);  // g [N, out] · weight [out, in]
    if (needs_grad(1)) dweight = gemm(g, true, x, false);   // gᵀ [out, N] · x [N, in]
    if (needs_grad(2)) {
      NoGradGuard no_grad;
      dbias = sum(g, {0});  // [out]
    }
    return {dx, dweight, dbias};
  }
  void release_saved() override { x = weight = Tensor(); }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float("matmul", "a", a);
  check_same("matmul", "a", a, "b", b);
  check_dim("matmul", "a", a, 2);
  check_dim("matmul", "b", b, 2);
  SCPN_CHECK(a.size(1) == b.size(0), "matmul: a ", shape_str(a.shape()), " and b ", shape_str(b.shape()),
             ": inner dimensions differ (", a.size(1), " vs ", b.size(0), ")");
  Tensor out = gemm(a, false, b, false);
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<MatmulNode>();
    if (b.requires_grad()) node->a = save(a);
    if (a.requires_grad()) node->b = save(b);
    record(node, out, {&a, &b});
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float("linear", "x", x);
  check_same("linear", "x", x, "weight", weight);
  check_dim("linear", "x", x, 2);
  check_dim("linear", "weight", weight, 2);
  SCPN_CHECK(x.size(1) == weight.size(1), "linear: x ", shape_str(x.shape()), " and weight ",
             shape_str(weight.shape()), ": in_features differ");
  if (bias.defined()) {
    check_same("linear", "x", x, "bias", bias);
    SCPN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias ", shape_str(bias.shape()),
               " does not match weight ", shape_str(weight.shape()), ": expected [", weight.size(0), "]");
  }
  Tensor out = gemm(x, false, weight, true);  // x [N, in] · weightᵀ [in, out]
  if (bias.defined()) {
    NoGradGuard no_grad;  // the bias gradient is LinearNode's, not add's
    out = add(out, bias);
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<LinearNode>();
    if (weight.requires_grad()) node->x = save(x);
    if (x.requires_grad()) node->weight = save(weight);
    record(node, out, {&x, &weight, &bias});
  }
  return out;
}

}  // namespace scpn
