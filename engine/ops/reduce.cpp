// Reductions: sum / mean / amax over dimensions, and sum_to (the adjoint of broadcasting).
#include "engine/ops/reduce.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise.h"

namespace scpn {

namespace {

// Reduces the listed (sorted, unique) dims, keeping them as size 1.
Tensor reduce_keepdim(const Tensor& x, const std::vector<int64_t>& dims, ReduceOp op) {
  Tensor cur = x;
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
    int64_t d = *it;
    const Shape& s = cur.shape();
    if (s[size_t(d)] == 1) continue;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < d; ++i) outer *= s[size_t(i)];
    for (size_t i = size_t(d) + 1; i < s.size(); ++i) inner *= s[i];
    Shape out_shape = s;
    out_shape[size_t(d)] = 1;
    Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
    kernels().reduce.on(x.device())(exec_context(x.device()), op, x.dtype(), outer, s[size_t(d)], inner,
                                    cur.raw_data(), out.raw_data());
    cur = out;
  }
  return cur.same(x) ? x.clone() : cur;
}

std::vector<int64_t> normalise_dims(const char* op, const Tensor& x, std::vector<int64_t> dims) {
  if (dims.empty())
    for (int64_t i = 0; i < x.dim(); ++i) dims.push_back(i);
  for (auto& d : dims) d = wrap_dim(op, d, x.dim());
  std::sort(dims.begin(), dims.end());
  SCPN_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": repeated dimension in dims");
  return dims;
}

Shape drop_dims(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i)
    if (!std::binary_search(dims.begin(), dims.end(), int64_t(i))) out.push_back(s[i]);
  return out;
}

struct SumNode : Node {
  Shape input_shape, keepdim_shape;
  double scale = 1.0;  // 1/count for mean
  const char* name() const override { return scale == 1.0 ? "sum" : "mean"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gk = g.reshape(keepdim_shape);
    if (scale != 1.0) gk = mul_scalar(gk, scale);
    return {expand(gk, input_shape)};
  }
};

Tensor sum_impl(const char* op, const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_mean) {
  check_float(op, "x", x);
  dims = normalise_dims(op, x, std::move(dims));
  Tensor out;
  {
    NoGradGuard no_grad;
    out = reduce_keepdim(x, dims, ReduceOp::sum);
  }
  Shape keep_shape = out.shape();
  int64_t count = x.numel() / std::max<int64_t>(out.numel(), 1);
  double scale = is_mean ? 1.0 / double(std::max<int64_t>(count, 1)) : 1.0;
  if (is_mean) {
    NoGradGuard no_grad;
    out = mul_scalar(out, scale);
  }
  if (!keepdim) out = out.reshape(drop_dims(x.shape(), dims));
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<SumNode>();
    node->input_shape = x.shape();
    node->keepdim_shape = keep_shape;
    node->scale = scale;
    record(node, out, {&x});
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return sum_impl("sum", x, std::move(dims), keepdim, false);
}
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return sum_impl("mean", x, std::move(dims), keepdim, true);
}

Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_float("amax", "x", x);
  SCPN_CHECK(x.numel() > 0, "amax: empty tensor ", describe(x));
  dims = normalise_dims("amax", x, std::move(dims));
  NoGradGuard no_grad;
  Tensor out = reduce_keepdim(x, dims, ReduceOp::max);
  return keepdim ? out : out.reshape(drop_dims(x.shape(), dims));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  SCPN_CHECK(shape.size() <= size_t(x.dim()), "sum_to: cannot sum ", shape_str(x.shape()), " to ", shape_str(shape));
  size_t pad = size_t(x.dim()) - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < size_t(x.dim()); ++i) {
    int64_t target = i < pad ? 1 : shape[i - pad];
    if (target == 1 && x.shape()[i] != 1) dims.push_back(int64_t(i));
    else SCPN_CHECK(target == x.shape()[i] || i < pad, "sum_to: cannot sum ", shape_str(x.shape()), " to ", shape_str(shape));
  }
  Tensor s = dims.empty() ? x : sum(x, dims, true);
  return s.reshape(shape);
}

}  // namespace scpn
