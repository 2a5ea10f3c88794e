// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, with PyTorch's
// semantics (torch.optim.AdamW, amsgrad off), per parameter group.
#pragma once
#include "engine/optim/optimizer.h"

namespace scpn {

// Per parameter, with g its gradient, t its step count (1 on its first update), lr = lr()·lr_scale:
//   p = p − lr·weight_decay·p
//   m = beta1·m + (1 − beta1)·g                 (m, v start at 0)
//   v = beta2·v + (1 − beta2)·g²
//   p = p − lr·(m / (1 − beta1^t)) / (sqrt(v / (1 − beta2^t)) + eps)
struct AdamWOptions {
  double beta1 = 0.9;         // in [0, 1)
  double beta2 = 0.999;       // in [0, 1)
  double eps = 1e-8;          // > 0
  double weight_decay = 1e-2; // >= 0
};

struct AdamWGroup {
  std::vector<Tensor> params;
  AdamWOptions options;
  double lr_scale = 1.0;  // this group's lr = the optimizer's lr × lr_scale
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, double lr, AdamWOptions options = {});
  AdamW(std::vector<AdamWGroup> groups, double lr);

  const AdamWOptions& options(size_t group) const;

 protected:
  nlohmann::json group_options(size_t group) const override;
  std::vector<std::string> check_group_options(const std::string& where,
                                               const nlohmann::json& options) const override;
  void set_group_options(size_t group, const nlohmann::json& options) override;
  void update_group(size_t group, const std::vector<Tensor>& grads) override;

 private:
  std::vector<AdamWOptions> options_;
};

}  // namespace scpn
