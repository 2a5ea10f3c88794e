// CPU fused softmax cross-entropy with label smoothing, forward and backward (contract: kernels/loss.h).
// Rows run in parallel; per-row losses are summed afterwards in row order, so the loss is deterministic.
#include "kernels/loss.h"

#include <cmath>
#include <vector>

#include "kernels/common/logsumexp.h"
#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void cross_entropy_forward(const ExecContext&, DType t, const CrossEntropyParams& p, const void* logits,
                           const int64_t* targets, void* loss, double* lse) {
  with_float_type(t, "cross_entropy_forward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(logits);
    const int64_t C = p.classes;
    const double eps = p.label_smoothing;
    std::vector<double> row_loss(size_t(p.batch));
#pragma omp parallel for if (p.batch * C > kParallelGrain)
    for (int64_t n = 0; n < p.batch; ++n) {
      const T* xr = xs + n * C;
      double row_lse = row_logsumexp(xr, C);
      lse[n] = row_lse;
      double l = row_lse - (1.0 - eps) * double(xr[targets[n]]);
      if (eps > 0) {  // skipped at ε = 0 so that 0 · (−inf) cannot turn a finite loss into NaN
        double xsum = 0;
        for (int64_t c = 0; c < C; ++c) xsum += double(xr[c]);
        l -= eps / double(C) * xsum;
      }
      row_loss[size_t(n)] = l;
    }
    double total = 0;
    for (double l : row_loss) total += l;
    *static_cast<T*>(loss) = T(total / double(p.batch));
  });
}

void cross_entropy_backward(const ExecContext&, DType t, const CrossEntropyParams& p, const void* logits,
                            const int64_t* targets, const double* lse, const void* grad_loss, void* grad_logits) {
  with_float_type(t, "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(logits);
    T* gx = static_cast<T*>(grad_logits);
    const int64_t C = p.classes;
    const double eps = p.label_smoothing;
    const double scale = double(*static_cast<const T*>(grad_loss)) / double(p.batch);
    const double q_off = eps / double(C);  // smoothed target mass of every class
    const double q_on = 1.0 - eps + q_off;  // ... plus the one-hot part at the target
#pragma omp parallel for if (p.batch * C > kParallelGrain)
    for (int64_t n = 0; n < p.batch; ++n) {
      const T* xr = xs + n * C;
      T* gr = gx + n * C;
      double row_lse = lse[n];
      int64_t target = targets[n];
      for (int64_t c = 0; c < C; ++c) {
        double prob = std::exp(double(xr[c]) - row_lse);
        gr[c] = T(scale * (prob - (c == target ? q_on : q_off)));
      }
    }
  });
}

}  // namespace scpn::cpu
