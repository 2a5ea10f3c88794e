// Contract of the select family: exact k-th smallest magnitudes of a score tensor, several ranks from one
// ranking, and the magnitude mask M = (|S| >= τ) built from one of them (SCPN_METHOD.md §3).
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

// Scores are a contiguous buffer of n elements of one float dtype, shape irrelevant.
struct AbsKthParams {
  int64_t n = 0;      // number of scores (> 0)
  int64_t count = 0;  // number of ranks m
};

// out[j] = the ks[j]-th smallest of |scores| (1-based; ties counted with multiplicity, so
// #{i : |s_i| < out[j]} < ks[j] <= #{i : |s_i| <= out[j]}). NaN scores rank above every number.
// `ks` lives in host memory, each in [1, n] (the front-end checks), in any order, repeats allowed.
// `workspace` holds n elements of the scores' dtype on the scores' device and is clobbered (it receives
// the copy of |scores| that is ranked once for all ks). `out` holds `count` elements of the scores' dtype
// on the device. Overwrites out. The masks of all capacities of a training step come from one call, so
// they share one ranking and are nested.
using AbsKthValuesFn = void(const ExecContext&, DType, const AbsKthParams&, const void* scores,
                            const int64_t* ks, void* workspace, void* out);

// out[i] = |scores[i]| >= threshold ? 1 : 0, in the scores' dtype (ties at the threshold are kept; NaN
// gives 0). The threshold is compared after conversion to the dtype, which is exact for a value that came
// from abs_kth_values. Overwrites out.
using MagnitudeMaskFn = void(const ExecContext&, DType, int64_t n, const void* scores, double threshold,
                             void* out);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/select.cpp
AbsKthValuesFn abs_kth_values;
MagnitudeMaskFn magnitude_mask;
}  // namespace cpu

namespace cuda {  // kernels/cuda/select.cu
AbsKthValuesFn abs_kth_values;
MagnitudeMaskFn magnitude_mask;
}  // namespace cuda

}  // namespace scpn
