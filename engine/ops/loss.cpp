// cross_entropy front-end: argument and target checks, the fused kernels and the backward node.
#include "engine/ops/loss.h"

#include "engine/autograd.h"
#include "engine/ops/checks.h"

namespace scpn {

namespace {

struct CrossEntropyNode : Node {
  Tensor logits, targets, lse;  // lse: per-row log-sum-exp from the forward
  CrossEntropyParams params;
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    kernels().cross_entropy_backward.on(logits.device())(exec_context(logits.device()), logits.dtype(), params,
                                                         logits.raw_data(), targets.data<int64_t>(),
                                                         lse.data<double>(), g.raw_data(), gx.raw_data());
    return {gx};
  }
  void release_saved() override { logits = targets = lse = Tensor(); }
};

// The first target outside [0, classes), read on the host (a copy for device tensors: N values).
void check_targets_in_range(const Tensor& targets, int64_t classes) {
  Tensor host = targets.device().is_cpu() ? targets : targets.to(kCPU);
  const int64_t* t = host.data<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i)
    SCPN_CHECK(t[i] >= 0 && t[i] < classes, "cross_entropy: target ", t[i], " at index ", i,
               " is out of range [0, ", classes, ")");
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing) {
  const char* op = "cross_entropy";
  check_float(op, "logits", logits);
  check_dim(op, "logits", logits, 2);
  check_defined(op, "targets", targets);
  SCPN_CHECK(targets.dtype() == DType::i64, op, ": argument 'targets' must be i64, got ", describe(targets));
  SCPN_CHECK(targets.device() == logits.device(), op, ": device mismatch: logits is ", describe(logits),
             ", targets is ", describe(targets));
  const int64_t N = logits.size(0), C = logits.size(1);
  SCPN_CHECK(N >= 1 && C >= 1, op, ": logits must have at least one row and one class, got ", describe(logits));
  SCPN_CHECK(targets.shape() == Shape{N}, op, ": targets must have shape [", N, "] to match logits ",
             describe(logits), ", got ", describe(targets));
  SCPN_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
             label_smoothing);
  check_targets_in_range(targets, C);

  CrossEntropyParams params;
  params.batch = N;
  params.classes = C;
  params.label_smoothing = label_smoothing;
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor lse = Tensor::empty({N}, DType::f64, logits.device());
  kernels().cross_entropy_forward.on(logits.device())(exec_context(logits.device()), logits.dtype(), params,
                                                      logits.raw_data(), targets.data<int64_t>(), loss.raw_data(),
                                                      lse.data<double>());
  if (any_requires_grad({&logits})) {
    auto node = std::make_shared<CrossEntropyNode>();
    node->logits = save(logits);
    node->targets = save(targets);
    node->lse = lse;
    node->params = params;
    record(node, loss, {&logits});  // targets are class indices: no gradient
  }
  return loss;
}

}  // namespace scpn
