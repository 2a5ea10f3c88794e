// The arithmetic of the unary and binary elementwise maps, shared by the CPU and CUDA kernels so that both
// follow the same rules for NaN, ties and signed zeros.
#pragma once
#include <cmath>

#include "kernels/common/host_device.h"
#include "kernels/elementwise.h"

namespace scpn {

// NaN: relu(NaN) = 0, sign(NaN) = 0, maximum(a, NaN) = NaN, maximum(NaN, b) = b. Exact on both backends
// except exp, log and pow, which are each backend's own math library (within a few ulp of each other);
// sqrt and division are correctly rounded everywhere.
template <class T>
SCPN_HD T unary_value(UnaryOp op, T x, T alpha) {
  switch (op) {
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::abs: return std::abs(x);
    case UnaryOp::sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return T(1) / x;
    case UnaryOp::add_scalar: return x + alpha;
    case UnaryOp::mul_scalar: return x * alpha;
    case UnaryOp::pow_scalar: return std::pow(x, alpha);
  }
  return x;
}

template <class T>
SCPN_HD T binary_value(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::relu_backward: return b > T(0) ? a : T(0);
    case BinaryOp::gt: return T(a > b);
    case BinaryOp::ge: return T(a >= b);
    case BinaryOp::eq: return T(a == b);
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
  }
  return a;
}

}  // namespace scpn
