// Differentiable matrix products on top of the GEMM kernels (kernels/gemm.h): a plain matmul and the
// fully connected layer. Operands are 2-D, contiguous, same dtype (f32 or f64) and device; errors name
// the op and the shapes. Backward passes are GEMMs too (not themselves differentiable: no double backward).
#pragma once
#include "engine/tensor.h"

namespace scpn {

// a [m, k] · b [k, n] → [m, n].
// Gradients: da = g · bᵀ  [m, k],  db = aᵀ · g  [k, n]   (g = dL/d(out), [m, n]).
Tensor matmul(const Tensor& a, const Tensor& b);

// The fully connected layer, PyTorch's convention: y = x · weightᵀ + bias.
//   x [N, in], weight [out, in], bias [out] or an undefined Tensor (no bias) → y [N, out].
// Gradients (g = dL/dy, [N, out]):
//   dx = g · weight  [N, in],   dweight = gᵀ · x  [out, in],   dbias = Σ_N g  [out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace scpn
