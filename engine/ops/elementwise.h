// Differentiable elementwise ops. Operands must share dtype (f32 or f64 for arithmetic) and device; errors
// name the op and the shapes.
#pragma once
#include "engine/tensor.h"

namespace scpn {

// Binary ops broadcast numpy-style (trailing dimensions aligned, size-1 dimensions stretched), which covers
// the per-channel ([C,1,1] or [1,C,1,1]) and same-shape cases the network needs; the gradient of a
// broadcast operand is summed back to its shape.
Tensor add(const Tensor& a, const Tensor& b);  // d/da = 1,   d/db = 1
Tensor sub(const Tensor& a, const Tensor& b);  // d/da = 1,   d/db = -1
Tensor mul(const Tensor& a, const Tensor& b);  // d/da = b,   d/db = a
Tensor div(const Tensor& a, const Tensor& b);  // d/da = 1/b, d/db = -a/b²
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger (a on ties)

Tensor relu(const Tensor& x);                  // d/dx = [x > 0]
Tensor abs(const Tensor& x);                   // d/dx = sign(x)
Tensor sign(const Tensor& x);                  // d/dx = 0 (sign(0) = 0)
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor pow_scalar(const Tensor& x, double p);  // d/dx = p·x^(p-1)

// cond is a u8 tensor of the same shape as a and b; d/da = cond, d/db = 1 - cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparison masks (no gradient): u8 tensors of a's shape, b broadcast.
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);

// The broadcast shape of two shapes, or an error naming `op` and both shapes.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// x broadcast to `shape` (materialised), with gradient summed back.
Tensor expand(const Tensor& x, const Shape& shape);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, double s) { return add_scalar(x, s); }
inline Tensor operator-(const Tensor& x, double s) { return add_scalar(x, -s); }
inline Tensor operator*(const Tensor& x, double s) { return mul_scalar(x, s); }
inline Tensor operator*(double s, const Tensor& x) { return mul_scalar(x, s); }
inline Tensor operator/(const Tensor& x, double s) { return mul_scalar(x, 1.0 / s); }

// In-place, no autograd (optimizers, accumulation): y += alpha·x.
void axpy_(const Tensor& y, double alpha, const Tensor& x);
// In-place, no autograd: t[:] = value.
void fill_(const Tensor& t, double value);

}  // namespace scpn
