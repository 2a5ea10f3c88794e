// Finding NaN and ±Inf in tensors, and the debug mode in which autograd checks every op's output (forward:
// each op that records a graph node; backward: each gradient a node returns) and names the first op that
// produced a non-finite value. train/non_finite.h builds the training step's checks on these.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace scpn {

// Where a tensor's non-finite values are: how many, and the first one (index in row-major order, value).
struct NonFiniteValues {
  int64_t count = 0, first_index = 0;
  double first_value = 0;
};

// "nan", "inf" or "-inf" (a NaN's sign bit is left out: it means nothing and printf shows "-nan").
std::string non_finite_name(double value);

// Scans the tensor on the host (a copy for device tensors); nothing for integer dtypes or a finite tensor.
std::optional<NonFiniteValues> find_non_finite(const Tensor& t);
// "3 of 64 values are non-finite, the first nan at index 5"
std::string describe_non_finite(const Tensor& t, const NonFiniteValues& v);

// Indices (into `tensors`) of the floating-point tensors holding a NaN or ±Inf, found with one
// sum-of-squares kernel per (device, dtype) on the tensors' own devices (only the sums come back), so a
// whole model is checked at the cost of one pass over its memory. Undefined and integer tensors pass.
std::vector<size_t> non_finite_tensors(const std::vector<Tensor>& tensors);

// The debug mode (train_scpn: debug.detect_non_finite). Off by default: every check copies the op's
// output to the host. Process-wide, as the ops are.
void set_check_op_outputs(bool on);
bool check_op_outputs();

// Thrown by the checks below: "op 'conv2d' (forward) produced a non-finite output of shape [16, 2, 28, 28]:
// 784 of 25088 values are non-finite, the first nan at index 0".
class NonFiniteOpError : public Error {
 public:
  using Error::Error;
};

// Called by autograd when check_op_outputs() is on: after an op recorded its node, and after a node's
// backward returned the gradients of its inputs.
void check_forward_output(const char* op, const Tensor& output);
void check_backward_outputs(const char* op, const std::vector<Tensor>& input_grads);

}  // namespace scpn
