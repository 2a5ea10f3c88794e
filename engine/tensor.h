// Tensor: shared storage + shape + dtype + device, contiguous row-major. Views (reshape, flatten,
// dim-0 slices) share storage; everything else materialises. A tensor that requires grad carries the
// autograd node that produced it (grad_fn) or, for a leaf, accumulates into grad().
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "kernels/common/half.h"

namespace scpn {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw bytes on one device. Allocation and release go through engine/memory.cpp.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  Storage(size_t nbytes, Device d);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;
struct TensorImpl;

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  // Uninitialised contents.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }

  void* raw_data() const;  // the first element; device memory for CUDA tensors
  template <class T>
  T* data() const {
    if (dtype() != dtype_of<T>())
      throw Error(cat("data<", dtype_name(dtype_of<T>()), ">() on a ", dtype_name(dtype()), " tensor"));
    return static_cast<T*>(raw_data());
  }

  // Autograd.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);  // only on leaves
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  Tensor detach() const;  // same storage, no history

  // Views and copies.
  Tensor reshape(const Shape& shape) const;  // one entry may be -1
  Tensor flatten(int64_t start_dim = 1) const;
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  void copy_(const Tensor& src) const;  // same shape; converts dtype and device

  double item() const;                      // a one-element tensor as double
  std::vector<double> to_vector() const;    // all elements as double, in order (any device)
  std::string str(int64_t max_elements = 64) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
  const TensorImpl& checked() const;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t byte_offset = 0;
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- factories -------------------------------------------------------------------------------------

// A seeded Philox stream (kernels/common/philox.h). Each draw consumes whole blocks and advances the
// offset, so the same (seed, offset) reproduces the same numbers on any device.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;
  explicit Generator(uint64_t s = 0, uint64_t o = 0) : seed(s), offset(o) {}
};

Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = kCPU);
Tensor arange(int64_t n, DType dtype = DType::f32, Device device = kCPU);
// Values given in row-major order; converted to dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                   Device device = kCPU);
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::f32,
               Device device = kCPU);
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype = DType::f32,
              Device device = kCPU);
// He initialisation for a weight of shape [fan_out, fan_in, ...] (fan_in = shape[1] * receptive field),
// with leaky-ReLU slope a: gain = sqrt(2 / (1 + a²)). uniform bound = gain·sqrt(3 / fan_in),
// normal stddev = gain / sqrt(fan_in). kaiming_uniform(a = √5) is PyTorch's default conv/linear init.
Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype = DType::f32,
                       Device device = kCPU);
Tensor kaiming_normal(const Shape& shape, double a, Generator& gen, DType dtype = DType::f32,
                      Device device = kCPU);
int64_t fan_in(const Shape& weight_shape);

}  // namespace scpn
