// Tensor construction, views, copies, conversion, printing and the factories.
#include "engine/tensor.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/memory.h"
#include "kernels/common/philox.h"

namespace scpn {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Storage::Storage(size_t nbytes, Device d) : bytes(nbytes), device(d) { data = allocate_bytes(nbytes, d); }
Storage::~Storage() { release_bytes(data, bytes, device); }

static ExecContext ctx_for(Device d) { return exec_context(d); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) throw Error(cat("Tensor::empty: negative dimension in shape ", shape_str(shape)));
  if (shape.size() > size_t(kMaxDims))
    throw Error(cat("Tensor::empty: shape ", shape_str(shape), " has more than ", kMaxDims, " dimensions"));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

const TensorImpl& Tensor::checked() const {
  if (!impl_) throw Error("use of an undefined tensor");
  return *impl_;
}
const Shape& Tensor::shape() const { return checked().shape; }
int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t k = d < 0 ? d + n : d;
  if (k < 0 || k >= n) throw Error(cat("size(", d, ") out of range for shape ", shape_str(shape())));
  return shape()[size_t(k)];
}
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return checked().dtype; }
Device Tensor::device() const { return checked().storage->device; }
void* Tensor::raw_data() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data) + t.byte_offset;
}

bool Tensor::requires_grad() const { return checked().requires_grad; }
Tensor& Tensor::requires_grad_(bool on) {
  if (checked().grad_fn) throw Error("requires_grad_() is only for leaf tensors; this one was produced by an op");
  if (on && !is_floating(dtype()))
    throw Error(cat("requires_grad_() on a ", dtype_name(dtype()), " tensor: only floating tensors have gradients"));
  impl_->requires_grad = on;
  return *this;
}
bool Tensor::is_leaf() const { return checked().grad_fn == nullptr; }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked().grad_fn; }
Tensor Tensor::grad() const { return checked().grad; }
void Tensor::set_grad(const Tensor& g) const {
  if (g.defined() && g.shape() != shape())
    throw Error(cat("set_grad: gradient shape ", shape_str(g.shape()), " differs from tensor shape ",
                    shape_str(shape())));
  impl_->grad = g;
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->byte_offset = t.byte_offset;
  impl->shape = t.shape;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

// Views record a node so gradients flow through them: the gradient is the incoming one reshaped back.
namespace {
struct ReshapeNode : Node {
  Shape input_shape;
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.reshape(input_shape)}; }
};
struct SliceNode : Node {
  Shape input_shape;
  int64_t begin = 0;
  const char* name() const override { return "slice"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor full_grad = zeros(input_shape, g.dtype(), g.device());
    full_grad.slice(begin, begin + g.size(0)).copy_(g);
    return {full_grad};
  }
};
}  // namespace

Tensor Tensor::reshape(const Shape& new_shape) const {
  const TensorImpl& t = checked();
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw Error(cat("reshape: more than one -1 in ", shape_str(new_shape)));
      infer = int64_t(i);
    } else if (s[i] < 0) {
      throw Error(cat("reshape: invalid dimension in ", shape_str(new_shape)));
    } else {
      known *= s[i];
    }
  }
  int64_t n = numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      throw Error(cat("reshape: cannot view shape ", shape_str(t.shape), " as ", shape_str(new_shape)));
    s[size_t(infer)] = n / known;
  }
  if (shape_numel(s) != n)
    throw Error(cat("reshape: cannot view shape ", shape_str(t.shape), " (", n, " elements) as ",
                    shape_str(new_shape)));
  Tensor out = detach();
  out.impl_->shape = s;
  if (any_requires_grad({this})) {
    auto node = std::make_shared<ReshapeNode>();
    node->input_shape = t.shape;
    record(node, out, {this});
  }
  return out;
}

Tensor Tensor::flatten(int64_t start_dim) const {
  int64_t n = dim();
  int64_t s = start_dim < 0 ? start_dim + n : start_dim;
  if (s < 0 || s >= std::max<int64_t>(n, 1))
    throw Error(cat("flatten: start_dim ", start_dim, " out of range for shape ", shape_str(shape())));
  Shape out(shape().begin(), shape().begin() + s);
  int64_t rest = 1;
  for (int64_t i = s; i < n; ++i) rest *= shape()[size_t(i)];
  out.push_back(rest);
  return reshape(out);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  const TensorImpl& t = checked();
  if (dim() == 0) throw Error("slice: a scalar tensor has no dim 0");
  int64_t rows = t.shape[0];
  if (begin < 0 || end > rows || begin > end)
    throw Error(cat("slice: rows [", begin, ", ", end, ") out of range for shape ", shape_str(t.shape)));
  Tensor out = detach();
  int64_t row_elems = rows == 0 ? 0 : numel() / rows;
  out.impl_->byte_offset += size_t(begin * row_elems) * dtype_size(t.dtype);
  out.impl_->shape[0] = end - begin;
  if (any_requires_grad({this})) {
    auto node = std::make_shared<SliceNode>();
    node->input_shape = t.shape;
    node->begin = begin;
    record(node, out, {this});
  }
  return out;
}

void Tensor::copy_(const Tensor& src) const {
  if (src.shape() != shape())
    throw Error(cat("copy_: source shape ", shape_str(src.shape()), " differs from destination shape ",
                    shape_str(shape())));
  if (src.dtype() == dtype()) {
    copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
    return;
  }
  if (src.device() == device()) {
    kernels().cast.on(device())(ctx_for(device()), numel(), src.dtype(), src.raw_data(), dtype(), raw_data());
    return;
  }
  // Different device and dtype: convert where the source lives, then move.
  Tensor converted = src.to(dtype());
  copy_bytes(raw_data(), device(), converted.raw_data(), converted.device(), nbytes());
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

namespace {
// Gradients cross a device or dtype change unchanged in value.
struct ToNode : Node {
  Device device;
  DType dtype;
  const char* name() const override { return "to"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.to(device).to(dtype)}; }
};
Tensor record_to(const Tensor& src, Tensor out) {
  if (any_requires_grad({&src})) {
    auto node = std::make_shared<ToNode>();
    node->device = src.device();
    node->dtype = src.dtype();
    record(node, out, {&src});
  }
  return out;
}
}  // namespace

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = Tensor::empty(shape(), dtype(), d);
  copy_bytes(out.raw_data(), d, raw_data(), device(), nbytes());
  return record_to(*this, out);
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), t, device());
  kernels().cast.on(device())(ctx_for(device()), numel(), dtype(), raw_data(), t, out.raw_data());
  return record_to(*this, out);
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = detach().to(kCPU).to(DType::f64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + host.numel());
}

double Tensor::item() const {
  if (numel() != 1) throw Error(cat("item() on a tensor of shape ", shape_str(shape()), ": needs exactly one element"));
  return to_vector()[0];
}

std::string Tensor::str(int64_t max_elements) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << dtype_name(dtype()) << ", " << device().str() << ", " << shape_str(shape());
  if (requires_grad()) os << ", requires_grad";
  os << ")\n";
  std::vector<double> v = to_vector();
  int64_t n = int64_t(v.size());
  int64_t last = dim() > 0 ? shape().back() : 1;
  os << std::setprecision(6);
  for (int64_t i = 0; i < n && i < max_elements; ++i) {
    os << (i % std::max<int64_t>(last, 1) == 0 ? (i ? "\n  " : "  ") : " ") << v[size_t(i)];
  }
  if (n > max_elements) os << " ... (" << n - max_elements << " more)";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

// ---- factories --------------------------------------------------------------------------------------

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  kernels().fill.on(device)(ctx_for(device), dtype, t.numel(), value, t.raw_data());
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  if (int64_t(values.size()) != shape_numel(shape))
    throw Error(cat("from_vector: ", values.size(), " values for shape ", shape_str(shape)));
  Tensor host = Tensor::empty(shape, DType::f64, kCPU);
  std::copy(values.begin(), values.end(), host.data<double>());
  return host.to(dtype).to(device);
}

Tensor arange(int64_t n, DType dtype, Device device) {
  std::vector<double> v(size_t(std::max<int64_t>(n, 0)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  return from_vector(v, {int64_t(v.size())}, dtype, device);
}

static Tensor random_tensor(const Shape& shape, RandomDist dist, double a, double b, Generator& gen,
                            DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  int64_t n = t.numel();
  kernels().random.on(device)(ctx_for(device), dtype, n, dist, a, b, gen.seed, gen.offset, t.raw_data());
  gen.offset += dist == RandomDist::uniform ? philox_uniform_blocks(uint64_t(n)) : philox_normal_blocks(uint64_t(n));
  return t;
}

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype, Device device) {
  if (!(low <= high)) throw Error(cat("uniform: low ", low, " > high ", high));
  return random_tensor(shape, RandomDist::uniform, low, high, gen, dtype, device);
}
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype, Device device) {
  if (!(stddev >= 0)) throw Error(cat("normal: stddev ", stddev, " is negative"));
  return random_tensor(shape, RandomDist::normal, mean, stddev, gen, dtype, device);
}

int64_t fan_in(const Shape& s) {
  if (s.size() < 2) throw Error(cat("fan_in: weight shape ", shape_str(s), " needs at least 2 dimensions"));
  int64_t f = s[1];
  for (size_t i = 2; i < s.size(); ++i) f *= s[i];
  return f;
}

Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype, Device device) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in(shape)));
  return uniform(shape, -bound, bound, gen, dtype, device);
}
Tensor kaiming_normal(const Shape& shape, double a, Generator& gen, DType dtype, Device device) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  return normal(shape, 0.0, gain / std::sqrt(double(fan_in(shape))), gen, dtype, device);
}

}  // namespace scpn
