#include "engine/ops/sparse_channel.h"

#include <vector>

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

void check_kept_index(const char* op, const Tensor& kept_index, const Tensor& data, int64_t channels) {
  check_dim(op, "kept_index", kept_index, 1);
  SCPN_CHECK(kept_index.dtype() == DType::i32, op, ": kept_index must be i32, got ", describe(kept_index));
  SCPN_CHECK(kept_index.device() == data.device(), op, ": device mismatch: kept_index is ", describe(kept_index),
             ", the data is ", describe(data));
  SCPN_CHECK(kept_index.size(0) <= channels, op, ": kept_index lists ", kept_index.size(0),
             " channels of a dimension of size ", channels);
  // The values, where reading them costs nothing (a CUDA index would need a device round trip; the
  // engine builds its indices with kept_index_from_mask, ascending and in range by construction).
  if (kept_index.device() != kCPU) return;
  const int32_t* k = kept_index.data<int32_t>();
  for (int64_t j = 0; j < kept_index.size(0); ++j) {
    SCPN_CHECK(k[j] >= 0 && k[j] < channels, op, ": kept_index[", j, "] = ", k[j], " is outside [0, ", channels, ")");
    SCPN_CHECK(j == 0 || k[j] > k[j - 1], op, ": kept_index must be strictly ascending, but kept_index[", j,
               "] = ", k[j], " follows ", k[j - 1]);
  }
}

// `t` viewed as [outer, channels, inner] around `dim`.
ChannelSelection selection(const char* op, const Shape& shape, int64_t& dim, int64_t kept) {
  dim = wrap_dim(op, dim, int64_t(shape.size()));
  ChannelSelection s;
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[size_t(d)];
  s.channels = shape[size_t(dim)];
  for (size_t d = size_t(dim) + 1; d < shape.size(); ++d) s.inner *= shape[d];
  s.kept = kept;
  return s;
}

Tensor scatter_new(const ChannelSelection& s, const Shape& dense_shape, const Tensor& kept_index, const Tensor& g) {
  Tensor dense = Tensor::empty(dense_shape, g.dtype(), g.device());
  kernels().scatter_channels.on(g.device())(exec_context(g.device()), g.dtype(), s, kept_index.data<int32_t>(),
                                            g.raw_data(), 0.0, dense.raw_data());
  return dense;
}

struct GatherChannelsNode : Node {
  ChannelSelection selection;
  Shape dense_shape;
  Tensor kept_index;
  const char* name() const override { return "gather_channels"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {scatter_new(selection, dense_shape, kept_index, g)};
  }
  void release_saved() override { kept_index = Tensor(); }
};

struct GatherFiltersNode : Node {
  KeptFilterShape shape;
  Tensor weight, score, kept_index;
  const char* name() const override { return "gather_filters"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gw = needs_grad(0) ? Tensor::empty(weight.shape(), weight.dtype(), weight.device()) : Tensor();
    Tensor gs = needs_grad(1) ? Tensor::empty(score.shape(), score.dtype(), score.device()) : Tensor();
    kernels().kept_filters_backward.on(g.device())(exec_context(g.device()), g.dtype(), shape,
                                                   kept_index.data<int32_t>(), g.raw_data(), weight.raw_data(),
                                                   score.raw_data(), gw.defined() ? gw.raw_data() : nullptr,
                                                   gs.defined() ? gs.raw_data() : nullptr);
    return {gw, gs};
  }
  void release_saved() override { weight = score = kept_index = Tensor(); }
};

}  // namespace

Tensor kept_index_from_mask(const Tensor& mask) {
  const char* op = "kept_index_from_mask";
  check_float(op, "mask", mask);
  check_dim(op, "mask", mask, 1);
  Tensor host = mask.to(kCPU).to(DType::f64);
  const double* m = host.data<double>();
  std::vector<double> kept;
  for (int64_t k = 0; k < host.numel(); ++k)
    if (m[k] != 0) kept.push_back(double(k));
  return from_vector(kept, {int64_t(kept.size())}, DType::i32, mask.device());
}

Tensor gather_channels(const Tensor& t, int64_t dim, const Tensor& kept_index) {
  const char* op = "gather_channels";
  check_float(op, "t", t);
  SCPN_CHECK(t.dim() >= 1, op, ": argument 't' must have at least one dimension, got ", describe(t));
  ChannelSelection s = selection(op, t.shape(), dim, kept_index.defined() ? kept_index.size(0) : 0);
  check_kept_index(op, kept_index, t, s.channels);
  Shape out_shape = t.shape();
  out_shape[size_t(dim)] = s.kept;
  Tensor out = Tensor::empty(out_shape, t.dtype(), t.device());
  if (s.compact_numel() > 0)
    kernels().gather_channels.on(t.device())(exec_context(t.device()), t.dtype(), s, kept_index.data<int32_t>(),
                                             t.raw_data(), out.raw_data());
  if (any_requires_grad({&t})) {
    auto node = std::make_shared<GatherChannelsNode>();
    node->selection = s;
    node->dense_shape = t.shape();
    node->kept_index = kept_index;
    record(node, out, {&t});
  }
  return out;
}

Tensor gather_filters(const Tensor& weight, const Tensor& score, const Tensor& kept_index) {
  const char* op = "gather_filters";
  check_float(op, "weight", weight);
  check_same(op, "weight", weight, "score", score);
  SCPN_CHECK(weight.dim() >= 1, op, ": weight must have at least one dimension, got ", describe(weight));
  SCPN_CHECK(score.shape() == Shape{weight.size(0)}, op, ": score ", shape_str(score.shape()),
             " must have one entry per filter of the weight ", shape_str(weight.shape()));
  check_kept_index(op, kept_index, weight, weight.size(0));
  int64_t dim = 0;
  ChannelSelection s = selection(op, weight.shape(), dim, kept_index.size(0));
  Shape out_shape = weight.shape();
  out_shape[0] = s.kept;
  Tensor out = Tensor::empty(out_shape, weight.dtype(), weight.device());
  if (s.compact_numel() > 0)
    kernels().gather_channels.on(weight.device())(exec_context(weight.device()), weight.dtype(), s,
                                                  kept_index.data<int32_t>(), weight.raw_data(), out.raw_data());
  if (any_requires_grad({&weight, &score})) {
    auto node = std::make_shared<GatherFiltersNode>();
    node->shape = {.filters = s.channels, .filter_size = s.inner, .kept = s.kept};
    node->weight = save(weight);
    node->score = save(score);
    node->kept_index = kept_index;
    record(node, out, {&weight, &score});
  }
  return out;
}

void scatter_channels_(const Tensor& dense, int64_t dim, const Tensor& kept_index, const Tensor& compact,
                       double others_scale) {
  const char* op = "scatter_channels_";
  check_float(op, "dense", dense);
  check_same(op, "dense", dense, "compact", compact);
  ChannelSelection s = selection(op, dense.shape(), dim, kept_index.defined() ? kept_index.size(0) : 0);
  check_kept_index(op, kept_index, dense, s.channels);
  Shape expected = dense.shape();
  expected[size_t(dim)] = s.kept;
  SCPN_CHECK(compact.shape() == expected, op, ": compact ", shape_str(compact.shape()), " must be ",
             shape_str(expected), " (dense ", shape_str(dense.shape()), " with ", s.kept, " kept channels along dim ",
             dim, ")");
  if (s.dense_numel() == 0) return;
  kernels().scatter_channels.on(dense.device())(exec_context(dense.device()), dense.dtype(), s,
                                                kept_index.data<int32_t>(), compact.raw_data(), others_scale,
                                                dense.raw_data());
}

}  // namespace scpn
