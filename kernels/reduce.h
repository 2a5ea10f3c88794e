// Contract of the reduction family. A tensor is viewed as [outer, reduce, inner] (contiguous) and the
// middle dimension is reduced: out[o, i] = op over r of x[o, r, i]. Reducing several dimensions is a
// sequence of such calls. Sums accumulate in double on the CPU. Overwrites out.
#pragma once
#include <cstdint>

#include "kernels/context.h"

namespace scpn {

enum class ReduceOp : uint8_t { sum, max, min };
using ReduceFn = void(const ExecContext&, ReduceOp, DType, int64_t outer, int64_t reduce,
                      int64_t inner, const void* x, void* out);

// The backends' implementations, one declaration each (registered in engine/register_cpu.cpp and
// engine/cuda/register.cpp).
namespace cpu {  // kernels/cpu/reduce.cpp
ReduceFn reduce;
}  // namespace cpu

namespace cuda {  // kernels/cuda/reduce.cu
ReduceFn reduce;
}  // namespace cuda

}  // namespace scpn
