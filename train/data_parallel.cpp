// Gradient and statistics averaging for data-parallel training (data_parallel.h).
#include "train/data_parallel.h"

#include "engine/ops/elementwise.h"

namespace scpn::train {

DataParallel::DataParallel(dist::Communicator& comm, std::vector<Tensor> params, std::vector<Tensor> buffers,
                           DataParallelOptions options)
    : comm_(comm), params_(std::move(params)), buffers_(std::move(buffers)), options_(options) {
  SCPN_CHECK(options_.bucket_bytes > 0, "dist.bucket_mb must be positive");
}

void DataParallel::average_tensors(const std::vector<Tensor>& tensors, const std::string& what) {
  NoGradGuard no_grad;
  const double scale = 1.0 / comm_.size();
  // Consecutive tensors of one dtype share a bucket until it is full.
  size_t i = 0;
  for (int bucket = 0; i < tensors.size(); ++bucket) {
    const DType dtype = tensors[i].dtype();
    const size_t element = dtype_size(dtype);
    size_t end = i;
    int64_t count = 0;
    while (end < tensors.size() && tensors[end].dtype() == dtype &&
           (end == i || (count + tensors[end].numel()) * int64_t(element) <= options_.bucket_bytes))
      count += tensors[end++].numel();
    Tensor flat = Tensor::empty({count}, dtype, comm_.device());
    int64_t at = 0;
    for (size_t k = i; k < end; ++k) {
      flat.slice(at, at + tensors[k].numel()).copy_(tensors[k].reshape({tensors[k].numel()}));
      at += tensors[k].numel();
    }
    comm_.all_reduce_sum(flat, cat(what, ", bucket ", bucket));
    const Tensor mean = mul_scalar(flat, scale);
    at = 0;
    for (size_t k = i; k < end; ++k) {
      tensors[k].copy_(mean.slice(at, at + tensors[k].numel()).reshape(tensors[k].shape()));
      at += tensors[k].numel();
    }
    i = end;
  }
}

void DataParallel::average(GradientSlot& slot, const std::string& what) {
  if (comm_.size() == 1) return;
  std::vector<Tensor> grads;
  for (const Tensor& p : params_) {
    Tensor g = slot.get(p);
    if (!g.defined()) continue;
    // Own the storage before writing: a slot's gradient may be shared with another slot or a view.
    Tensor own = g.clone();
    slot.set(p, own);
    grads.push_back(own);
  }
  average_tensors(grads, what);
}

void DataParallel::average_grads(const std::string& what) {
  if (comm_.size() == 1) return;
  std::vector<Tensor> grads;
  for (const Tensor& p : params_) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor own = g.clone();
    p.set_grad(own);
    grads.push_back(own);
  }
  average_tensors(grads, what);
}

void DataParallel::average_buffers(const std::string& what) {
  if (comm_.size() == 1) return;
  average_tensors(buffers_, what);
}

std::vector<double> DataParallel::average_values(const std::vector<double>& values, const std::string& what) {
  if (comm_.size() == 1 || values.empty()) return values;
  Tensor t = from_vector(values, {int64_t(values.size())}, DType::f64, comm_.device());
  comm_.all_reduce_sum(t, what);
  std::vector<double> out = t.to_vector();
  for (double& v : out) v /= comm_.size();
  return out;
}

bool DataParallel::any(bool flag, const std::string& what) {
  if (comm_.size() == 1) return flag;
  Tensor t = full({1}, flag ? 1.0 : 0.0, DType::f64, comm_.device());
  comm_.all_reduce_sum(t, what);
  return t.item() > 0;
}

void DataParallel::broadcast_state(const std::string& what) {
  if (comm_.size() == 1) return;
  NoGradGuard no_grad;
  int index = 0;
  for (const Tensor& t : params_) comm_.broadcast(t.detach(), 0, cat(what, ", parameter ", index++));
  index = 0;
  for (const Tensor& t : buffers_) comm_.broadcast(t, 0, cat(what, ", buffer ", index++));
}

void DataParallel::require_same(const std::string& text, const std::string& what) {
  const std::vector<std::string> all = comm_.all_gather_text(text, what);
  std::string differing;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differing += cat(differing.empty() ? "" : ", ", r);
  SCPN_CHECK(differing.empty(), what, ": rank ", differing, " differ", differing.find(',') == std::string::npos ? "s" : "",
             " from rank 0; every rank must be started with the same configuration");
}

}  // namespace scpn::train
