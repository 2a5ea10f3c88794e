// Row log-sum-exp shared by the softmax and loss kernels: m + log Σ exp(x − m), m = max(x), computed in
// double. Shifting by the maximum keeps logits of ±1000 finite. The maximum skips NaN, but a NaN still
// reaches the sum, so NaN (and +inf, through inf − inf) propagate to the result instead of being hidden.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"

namespace scpn {

template <class T>
SCPN_HD double row_logsumexp(const T* x, int64_t n) {
  double m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = double(x[i]) > m ? double(x[i]) : m;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += exp(double(x[i]) - m);
  return m + log(s);
}

}  // namespace scpn
