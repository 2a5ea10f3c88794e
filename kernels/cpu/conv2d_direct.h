// Direct 3x3 stride-1 pad-1 convolution for narrow NCHW images (an output row fits in two vector
// registers): no column matrix, each input row is read straight from a zero-padded copy of its image.
// Used by kernels/cpu/conv2d.cpp for the forward and both backward passes.
#pragma once
#include "kernels/conv2d.h"

namespace scpn::cpu {

// Whether the direct path computes this convolution's forward and backward data: 3x3, stride 1, padding
// 1, one group, f32 or f64, and a row of the image no wider than two vectors (32 floats with AVX-512, 16
// with AVX2), or the whole image within one vector (4x4).
bool conv2d_direct_fits(DType t, const Conv2dParams& p);
// Whether it computes the filter gradient too: the shapes above but whole images in a vector, whose
// filter gradient is a GEMM over the batch (one row per image leaves the kernel too little to sum).
bool conv2d_direct_filter_fits(DType t, const Conv2dParams& p);

// The contracts of Conv2dForwardFn and Conv2dBackwardDataFn (kernels/conv2d.h) for the shapes above.
void conv2d_direct_forward(DType t, const Conv2dParams& p, const void* x, const void* w, const void* bias, void* y);
void conv2d_direct_backward_data(DType t, const Conv2dParams& p, const void* dy, const void* w, void* dx);
// Conv2dBackwardFilterFn's contract. Deterministic: the sums do not depend on the number of threads.
void conv2d_direct_backward_filter(DType t, const Conv2dParams& p, const void* x, const void* dy, void* dw);

}  // namespace scpn::cpu
