// NaN/Inf detection (see non_finite.h): a host scan that locates the values, a device-side sum of squares
// that only says which tensors hold any, and the debug mode's per-op checks.
#include "engine/non_finite.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <utility>

#include "engine/dispatch.h"

namespace scpn {

namespace {

std::atomic<bool> g_check_op_outputs{false};

bool is_float(DType d) { return d == DType::f32 || d == DType::f64 || d == DType::bf16 || d == DType::f16; }

}  // namespace

std::string non_finite_name(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return cat(value);
}

std::optional<NonFiniteValues> find_non_finite(const Tensor& t) {
  if (!t.defined() || !is_float(t.dtype()) || t.numel() == 0) return std::nullopt;
  const std::vector<double> values = t.to_vector();
  NonFiniteValues v;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    if (v.count++ == 0) {
      v.first_index = int64_t(i);
      v.first_value = values[i];
    }
  }
  if (v.count == 0) return std::nullopt;
  return v;
}

std::string describe_non_finite(const Tensor& t, const NonFiniteValues& v) {
  return cat(v.count, " of ", t.numel(), v.count == 1 ? " values is" : " values are", " non-finite, the first ",
             non_finite_name(v.first_value), " at index ", v.first_index);
}

std::vector<size_t> non_finite_tensors(const std::vector<Tensor>& tensors) {
  // The sum-of-squares kernel reads f32 and f64; half-precision tensors are scanned on the host.
  std::map<std::pair<std::string, int>, std::vector<size_t>> groups;
  std::vector<size_t> found;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (!t.defined() || t.numel() == 0 || !is_float(t.dtype())) continue;
    if (t.dtype() == DType::f32 || t.dtype() == DType::f64)
      groups[{t.device().str(), int(t.dtype())}].push_back(i);
    else if (find_non_finite(t))
      found.push_back(i);
  }
  for (const auto& [key, members] : groups) {
    const Device device = tensors[members.front()].device();
    const DType dtype = tensors[members.front()].dtype();
    std::vector<int64_t> sizes;
    std::vector<void*> buffers;
    for (size_t i : members) {
      sizes.push_back(tensors[i].numel());
      buffers.push_back(tensors[i].raw_data());
    }
    Tensor sums = Tensor::empty({int64_t(members.size())}, DType::f64, device);
    kernels().grad_sum_squares.on(device)(exec_context(device), dtype,
                                          GradListArgs{sizes.data(), buffers.data(), int64_t(sizes.size())},
                                          sums.data<double>());
    const std::vector<double> s = sums.to_vector();
    for (size_t k = 0; k < members.size(); ++k) {
      // Squares are summed in double, which f32 values cannot overflow; an f64 tensor of values beyond
      // 1e154 can, so an infinite sum is confirmed on the host.
      if (std::isfinite(s[k])) continue;
      if (dtype == DType::f32 || find_non_finite(tensors[members[k]])) found.push_back(members[k]);
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

void set_check_op_outputs(bool on) { g_check_op_outputs = on; }
bool check_op_outputs() { return g_check_op_outputs; }

void check_forward_output(const char* op, const Tensor& output) {
  if (auto v = find_non_finite(output))
    throw NonFiniteOpError(cat("op '", op, "' (forward) produced a non-finite output of shape ", shape_str(output.shape()),
                               ": ", describe_non_finite(output, *v)));
}

void check_backward_outputs(const char* op, const std::vector<Tensor>& input_grads) {
  for (size_t i = 0; i < input_grads.size(); ++i)
    if (auto v = find_non_finite(input_grads[i]))
      throw NonFiniteOpError(cat("op '", op, "' (backward) produced a non-finite gradient for its input ", i,
                                 " (shape ", shape_str(input_grads[i].shape()), "): ",
                                 describe_non_finite(input_grads[i], *v)));
}

}  // namespace scpn
