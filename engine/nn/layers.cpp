#include "engine/nn/layers.h"

#include <cmath>

#include "engine/ops/linear.h"

namespace scpn::nn {

namespace {
// PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor default_bias(int64_t n, int64_t fan, Generator& gen, DType dtype) {
  double bound = 1.0 / std::sqrt(double(fan));
  return uniform({n}, -bound, bound, gen, dtype);
}
}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Conv2dOptions options, bool bias,
               Generator& gen, DType dtype)
    : options_(options),
      weight_(register_parameter(
          "weight", kaiming_uniform({out_channels, in_channels / options.groups, kernel, kernel}, std::sqrt(5.0), gen, dtype))) {
  if (bias) bias_ = &register_parameter("bias", default_bias(out_channels, fan_in(weight_.shape()), gen, dtype));
}

Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight_, bias_ ? *bias_ : Tensor(), options_); }

BatchNorm::BatchNorm(int64_t channels, DType dtype, double momentum, double eps)
    : momentum_(momentum),
      eps_(eps),
      weight_(register_parameter("weight", ones({channels}, dtype))),
      bias_(register_parameter("bias", zeros({channels}, dtype))),
      running_mean_(register_buffer("running_mean", zeros({channels}, dtype))),
      running_var_(register_buffer("running_var", ones({channels}, dtype))) {}

Tensor BatchNorm::forward(const Tensor& x) const {
  return batch_norm(x, weight_, bias_, running_mean_, running_var_, {is_training(), momentum_, eps_});
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen, DType dtype)
    : weight_(register_parameter("weight", kaiming_uniform({out_features, in_features}, std::sqrt(5.0), gen, dtype))) {
  if (bias) bias_ = &register_parameter("bias", default_bias(out_features, in_features, gen, dtype));
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight_, bias_ ? *bias_ : Tensor()); }

}  // namespace scpn::nn
