// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, with PyTorch's
// semantics (torch.optim.SGD), per parameter group. The SCPN recipe: lr 0.1, momentum 0.9, weight decay
// 5e-4 on everything except the projector's and classifier's biases (a second group with decay 0).
#pragma once
#include "engine/optim/optimizer.h"

namespace scpn {

// Per parameter, with g its gradient (see kernels/optimizer.h for the kernel):
//   g = g + weight_decay·p
//   buf = g on the parameter's first step, else momentum·buf + (1 − dampening)·g   (momentum > 0 only)
//   g = nesterov ? g + momentum·buf : buf                                          (momentum > 0 only)
//   p = p − lr·lr_scale·g
// momentum = 0 keeps no buffer. nesterov needs momentum > 0 and dampening = 0.
struct SgdOptions {
  double momentum = 0;      // >= 0
  double dampening = 0;     // in [0, 1]
  double weight_decay = 0;  // >= 0
  bool nesterov = false;
};

struct SgdGroup {
  std::vector<Tensor> params;
  SgdOptions options;
  double lr_scale = 1.0;  // this group's lr = the optimizer's lr × lr_scale
};

class SGD : public Optimizer {
 public:
  // One group.
  SGD(std::vector<Tensor> params, double lr, SgdOptions options = {});
  SGD(std::vector<SgdGroup> groups, double lr);

  const SgdOptions& options(size_t group) const;

 protected:
  nlohmann::json group_options(size_t group) const override;
  std::vector<std::string> check_group_options(const std::string& where,
                                               const nlohmann::json& options) const override;
  void set_group_options(size_t group, const nlohmann::json& options) override;
  void update_group(size_t group, const std::vector<Tensor>& grads) override;

 private:
  std::vector<SgdOptions> options_;
};

}  // namespace scpn
