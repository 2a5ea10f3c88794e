// Naive reference implementations (see reference.h): the definitions as loops, nothing clever.
#include "tests/support/reference.h"

namespace scpn::test::reference {

namespace {

// Calls visit(y_index, x_index, w_index) for every product of the convolution's sum that reads inside
// the image; padding contributes nothing, so it is simply skipped.
template <class Visit>
void for_each_conv_term(const Conv2dShape& s, Visit&& visit) {
  const int64_t P = s.P(), Q = s.Q(), Cg = s.C / s.groups, Kg = s.K / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t h = p * s.stride_h - s.pad_h + r, w = q * s.stride_w - s.pad_w + t;
                if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
                const int64_t c = (k / Kg) * Cg + cg;
                visit(((n * s.K + k) * P + p) * Q + q, ((n * s.C + c) * s.H + h) * s.W + w,
                      ((k * Cg + cg) * s.R + r) * s.S + t);
              }
}

}  // namespace

std::vector<double> conv2d_direct(const Conv2dShape& s, const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& bias) {
  const int64_t PQ = s.P() * s.Q();
  std::vector<double> y(size_t(s.N * s.K * PQ), 0.0);
  if (!bias.empty())
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.K; ++k)
        for (int64_t j = 0; j < PQ; ++j) y[size_t((n * s.K + k) * PQ + j)] = bias[size_t(k)];
  for_each_conv_term(s, [&](int64_t yi, int64_t xi, int64_t wi) { y[size_t(yi)] += x[size_t(xi)] * w[size_t(wi)]; });
  return y;
}

Conv2dGrads conv2d_direct_backward(const Conv2dShape& s, const std::vector<double>& x, const std::vector<double>& w,
                                   const std::vector<double>& dy) {
  Conv2dGrads g;
  g.dx.assign(x.size(), 0.0);
  g.dw.assign(w.size(), 0.0);
  g.db.assign(size_t(s.K), 0.0);
  for_each_conv_term(s, [&](int64_t yi, int64_t xi, int64_t wi) {
    g.dx[size_t(xi)] += dy[size_t(yi)] * w[size_t(wi)];
    g.dw[size_t(wi)] += dy[size_t(yi)] * x[size_t(xi)];
  });
  const int64_t PQ = s.P() * s.Q();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t j = 0; j < PQ; ++j) g.db[size_t(k)] += dy[size_t((n * s.K + k) * PQ + j)];
  return g;
}

}  // namespace scpn::test::reference
