#include "engine/ops/masked_weight.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

struct MaskedWeightNode : Node {
  MaskedWeightParams params;
  Tensor weight, score, mask;
  const char* name() const override { return "masked_weight"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gw = needs_grad(0) ? Tensor::empty(weight.shape(), weight.dtype(), weight.device()) : Tensor();
    Tensor gs = needs_grad(1) ? Tensor::empty(score.shape(), score.dtype(), score.device()) : Tensor();
    kernels().masked_weight_backward.on(g.device())(exec_context(g.device()), g.dtype(), params, g.raw_data(),
                                                    weight.raw_data(), score.raw_data(), mask.raw_data(),
                                                    gw.defined() ? gw.raw_data() : nullptr,
                                                    gs.defined() ? gs.raw_data() : nullptr);
    return {gw, gs, Tensor()};
  }
  void release_saved() override { weight = score = mask = Tensor(); }
};

}  // namespace

Tensor masked_weight(const Tensor& weight, const Tensor& score, const Tensor& mask) {
  const char* op = "masked_weight";
  check_float(op, "weight", weight);
  check_same(op, "weight", weight, "score", score);
  check_same(op, "weight", weight, "mask", mask);
  SCPN_CHECK(weight.dim() >= 1, op, ": weight must have at least one dimension, got ", describe(weight));
  SCPN_CHECK(mask.shape() == score.shape(), op, ": mask ", shape_str(mask.shape()), " and score ",
             shape_str(score.shape()), " must have the same shape");
  MaskedWeightParams p;
  p.filters = weight.size(0);
  p.filter_size = p.filters == 0 ? 0 : weight.numel() / p.filters;
  if (score.shape() == weight.shape()) {
    p.per_filter = false;
  } else if (score.shape() == Shape{weight.size(0)}) {
    p.per_filter = true;
  } else {
    throw Error(cat(op, ": score ", shape_str(score.shape()), " must have the weight's shape ",
                    shape_str(weight.shape()), " or one entry per filter [", weight.size(0), "]"));
  }
  Tensor out = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
  kernels().masked_weight_forward.on(weight.device())(exec_context(weight.device()), weight.dtype(), p,
                                                      weight.raw_data(), mask.raw_data(), out.raw_data());
  if (any_requires_grad({&weight, &score})) {
    auto node = std::make_shared<MaskedWeightNode>();
    node->params = p;
    node->weight = save(weight);
    node->score = save(score);
    node->mask = save(mask);
    record(node, out, {&weight, &score, &mask});
  }
  return out;
}

}  // namespace scpn
