// Naive reference implementations used as test oracles: the plainest loops that state each op's
// definition, on std::vector<double>, independent of the engine's kernels. Slow by design; keep the
// shapes small. Each function documents its layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace scpn::test::reference {

// Geometry of a 2-D convolution: x [N, C, H, W], w [K, C/groups, R, S], y [N, K, P, Q] with
// P = (H + 2·pad_h − R) / stride_h + 1 and Q likewise.
struct Conv2dShape {
  int64_t N = 1, C = 1, H = 1, W = 1;
  int64_t K = 1, R = 1, S = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, groups = 1;
  int64_t P() const { return (H + 2 * pad_h - R) / stride_h + 1; }
  int64_t Q() const { return (W + 2 * pad_w - S) / stride_w + 1; }
};

// Direct 7-loop convolution (cross-correlation with zero padding, as PyTorch defines conv2d):
// y[n,k,p,q] = bias[k] + Σ_{c', r, s} x[n, g·C/groups + c', p·stride_h − pad_h + r, q·stride_w − pad_w + s]
//              · w[k, c', r, s],  g = k / (K/groups). An empty bias means none.
std::vector<double> conv2d_direct(const Conv2dShape& shape, const std::vector<double>& x,
                                  const std::vector<double>& w, const std::vector<double>& bias = {});

// The gradients of conv2d_direct for an output gradient dy [N, K, P, Q], by the same loops run in
// reverse (each product x·w of the forward sends dy·w to dx and dy·x to dw).
struct Conv2dGrads {
  std::vector<double> dx, dw, db;
};
Conv2dGrads conv2d_direct_backward(const Conv2dShape& shape, const std::vector<double>& x,
                                   const std::vector<double>& w, const std::vector<double>& dy);

}  // namespace scpn::test::reference
