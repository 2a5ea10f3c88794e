// Direct 3x3 pad-1 convolution for narrow NCHW images (an output row fits in two vector registers): no
// column matrix, each input row is read straight from a zero-padded copy of its image.
// Used by kernels/cpu/conv2d.cpp for the forward and both backward passes.
#pragma once
#include "kernels/conv2d.h"

namespace scpn::cpu {

// Whether the direct path computes this convolution's forward: 3x3, padding 1, stride 1 or 2, one group,
// f32 or f64, and an output row no wider than two vectors (32 floats with AVX-512, 16 with AVX2), or the
// whole output within one vector (4x4).
bool conv2d_direct_fits(DType t, const Conv2dParams& p);
// Its backward data pass: the same shapes (stride 2 has a kernel of its own).
bool conv2d_direct_data_fits(DType t, const Conv2dParams& p);
// Its filter gradient: the same shapes as the forward.
bool conv2d_direct_filter_fits(DType t, const Conv2dParams& p);

// The contracts of Conv2dForwardFn and Conv2dBackwardDataFn (kernels/conv2d.h) for the shapes above.
void conv2d_direct_forward(DType t, const Conv2dParams& p, const void* x, const void* w, const void* bias, void* y);
void conv2d_direct_backward_data(DType t, const Conv2dParams& p, const void* dy, const void* w, void* dx);
// Conv2dBackwardFilterFn's contract. Deterministic: the sums do not depend on the number of threads.
void conv2d_direct_backward_filter(DType t, const Conv2dParams& p, const void* x, const void* dy, void* dw);

}  // namespace scpn::cpu
