// CPU fused softmax cross-entropy with label smoothing, forward and backward (contract: kernels/loss.h).
// Rows run in parallel; per-row losses are summed afterwards in row order, so the loss is deterministic.
#include "kernels/loss.h"

#include <cmath>
#include <vector>

#include "kernels/common/cross_entropy.h"
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
      double xsum = 0;
      if (eps > 0)  // the sum is only read when ε > 0 (see cross_entropy_row_loss)
        for (int64_t c = 0; c < C; ++c) xsum += double(xr[c]);
      row_loss[size_t(n)] = cross_entropy_row_loss(row_lse, double(xr[targets[n]]), xsum, eps, C);
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
    const SmoothedTarget q = smoothed_target(eps, C);
#pragma omp parallel for if (p.batch * C > kParallelGrain)
    for (int64_t n = 0; n < p.batch; ++n) {
      const T* xr = xs + n * C;
      T* gr = gx + n * C;
      double row_lse = lse[n];
      int64_t target = targets[n];
      for (int64_t c = 0; c < C; ++c) {
        double prob = std::exp(double(xr[c]) - row_lse);
        gr[c] = T(scale * (prob - (c == target ? q.on : q.off)));
      }
    }
  });
}

}  // namespace scpn::cpu
