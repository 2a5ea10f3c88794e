// Argument checks shared by op front-ends. Every message starts with the op's name and names the
// offending shapes, dtypes or devices, so a user can find the call that failed.
#pragma once
#include <string>

#include "engine/dispatch.h"
#include "engine/tensor.h"

namespace scpn {

inline std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return cat(dtype_name(t.dtype()), " ", shape_str(t.shape()), " on ", t.device().str());
}

inline void check_defined(const char* op, const char* arg, const Tensor& t) {
  SCPN_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}

// Floating point and defined.
inline void check_float(const char* op, const char* arg, const Tensor& t) {
  check_defined(op, arg, t);
  SCPN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": argument '", arg,
             "' must be f32 or f64, got ", describe(t));
}

// Same dtype and device as the reference argument.
inline void check_same(const char* op, const char* arg_a, const Tensor& a, const char* arg_b, const Tensor& b) {
  check_defined(op, arg_a, a);
  check_defined(op, arg_b, b);
  SCPN_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", arg_a, " is ", describe(a), ", ", arg_b, " is ",
             describe(b));
  SCPN_CHECK(a.device() == b.device(), op, ": device mismatch: ", arg_a, " is ", describe(a), ", ", arg_b,
             " is ", describe(b));
}

inline void check_dim(const char* op, const char* arg, const Tensor& t, int64_t expected) {
  check_defined(op, arg, t);
  SCPN_CHECK(t.dim() == expected, op, ": argument '", arg, "' must be ", expected, "-D, got ", describe(t));
}

// Normalises a possibly negative dimension index.
inline int64_t wrap_dim(const char* op, int64_t d, int64_t ndim) {
  int64_t k = d < 0 ? d + ndim : d;
  SCPN_CHECK(k >= 0 && k < ndim, op, ": dimension ", d, " out of range for a ", ndim, "-D tensor");
  return k;
}

}  // namespace scpn
