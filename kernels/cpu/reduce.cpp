// CPU reduction over the middle dimension of an [outer, reduce, inner] view.
#include "kernels/reduce.h"

#include <limits>
#include <vector>

#include "kernels/cpu/dtype_switch.h"

namespace scpn::cpu {

void reduce(const ExecContext&, ReduceOp op, DType t, int64_t outer, int64_t red, int64_t inner, const void* x,
            void* out) {
  with_float_type(t, "reduce", [&](auto zero) {
    using T = decltype(zero);
    const T* xs = static_cast<const T*>(x);
    T* o = static_cast<T*>(out);
#pragma omp parallel for if (outer * red * inner > kParallelGrain)
    for (int64_t b = 0; b < outer; ++b) {
      std::vector<double> acc(size_t(inner), op == ReduceOp::sum ? 0.0
                                             : op == ReduceOp::max ? -std::numeric_limits<double>::infinity()
                                                                   : std::numeric_limits<double>::infinity());
      const T* base = xs + b * red * inner;
      for (int64_t r = 0; r < red; ++r) {
        const T* row = base + r * inner;
        for (int64_t i = 0; i < inner; ++i) {
          double v = row[i];
          double& a = acc[size_t(i)];
          a = op == ReduceOp::sum ? a + v : op == ReduceOp::max ? (v > a ? v : a) : (v < a ? v : a);
        }
      }
      for (int64_t i = 0; i < inner; ++i) o[b * inner + i] = T(acc[size_t(i)]);
    }
  });
}

}  // namespace scpn::cpu
