// CPU k-th smallest magnitudes and magnitude masks (contract: kernels/select.h). One copy of |S| serves
// every requested rank: the ranks are selected in ascending order, each selection partitioning only the
// part above the previous rank, so m ranks cost about m linear passes instead of a full sort.
#include "kernels/select.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void abs_kth_values(const ExecContext&, DType t, const AbsKthParams& p, const void* scores, const int64_t* ks,
                    void* workspace, void* out) {
  with_float_type(t, "abs_kth_values", [&](auto zero) {
    using T = decltype(zero);
    const T* s = static_cast<const T*>(scores);
    T* w = static_cast<T*>(workspace);
#pragma omp parallel for if (p.n > kParallelGrain)
    for (int64_t i = 0; i < p.n; ++i) w[i] = std::abs(s[i]);

    // NaN ranks above every number (as torch.sort orders it): move NaNs to the end once, so the
    // selections below compare with a plain `<`, which NaN would otherwise break.
    const int64_t numbers = std::partition(w, w + p.n, [](T v) { return !std::isnan(v); }) - w;

    std::vector<int64_t> ranks(ks, ks + p.count);
    std::sort(ranks.begin(), ranks.end());
    ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
    // Invariant: w[0, done) holds the `done` smallest magnitudes, none above anything in w[done, n).
    int64_t done = 0;
    for (int64_t k : ranks) {
      if (k > numbers) break;  // ranks past the numbers land on NaN
      std::nth_element(w + done, w + (k - 1), w + numbers);
      done = k;
    }
    T* o = static_cast<T*>(out);
    for (int64_t j = 0; j < p.count; ++j) o[j] = ks[j] <= numbers ? w[ks[j] - 1] : std::numeric_limits<T>::quiet_NaN();
  });
}

void magnitude_mask(const ExecContext&, DType t, int64_t n, const void* scores, double threshold, void* out) {
  with_float_type(t, "magnitude_mask", [&](auto zero) {
    using T = decltype(zero);
    const T* s = static_cast<const T*>(scores);
    T* o = static_cast<T*>(out);
    const T tau = T(threshold);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = std::abs(s[i]) >= tau ? T(1) : T(0);
  });
}

}  // namespace scpn::cpu
