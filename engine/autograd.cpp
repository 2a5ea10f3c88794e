// The backward walk, gradient slots and grad mode.
#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/dispatch.h"
#include "engine/non_finite.h"

namespace scpn {

namespace {
thread_local bool g_grad_enabled = true;

// dst += src, both the same shape, dtype and device.
void add_into(const Tensor& dst, const Tensor& src) {
  kernels().axpy.on(dst.device())(exec_context(dst.device()), dst.dtype(), dst.numel(), 1.0, src.raw_data(),
                                  dst.raw_data());
}

// a + b in a fresh tensor, both the same shape, dtype and device: one pass (a copy of a, then b added
// into it, reads a twice and writes the result twice).
Tensor sum_of(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (out.numel() == 0) return out;
  BroadcastLayout flat;
  flat.ndim = 1;
  flat.shape[0] = a.numel();
  flat.a_stride[0] = flat.b_stride[0] = 1;
  kernels().binary.on(a.device())(exec_context(a.device()), BinaryOp::add, a.dtype(), flat, a.raw_data(),
                                  b.raw_data(), out.raw_data());
  return out;
}

void check_grad_matches(const char* where, const Shape& expected, DType dtype, const Tensor& g) {
  if (g.shape() != expected || g.dtype() != dtype)
    throw Error(cat("autograd: ", where, " produced a gradient of shape ", shape_str(g.shape()), " ",
                    dtype_name(g.dtype()), " for an input of shape ", shape_str(expected), " ",
                    dtype_name(dtype)));
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor record(const std::shared_ptr<Node>& node, const Tensor& output, std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs) {
    Edge e;
    if (t && t->defined() && t->requires_grad()) {
      if (t->grad_fn())
        e.node = t->grad_fn();
      else
        e.leaf = t->impl_ptr();
    }
    node->inputs.push_back(std::move(e));
  }
  output.impl()->grad_fn = node;
  output.impl()->requires_grad = true;
  if (check_op_outputs()) check_forward_output(node->name(), output);
  return output;
}

Tensor GradientSlot::get(const Tensor& leaf) const {
  auto it = grads_.find(leaf.impl());
  return it == grads_.end() ? Tensor() : it->second;
}

void GradientSlot::accumulate(const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
  auto it = grads_.find(leaf.get());
  if (it == grads_.end()) {
    grads_.emplace(leaf.get(), g.clone());  // own copy: g may alias another gradient
    keep_alive_.push_back(leaf);            // the key must not be reused by a new tensor
  } else {
    add_into(it->second, g);
  }
}

void GradientSlot::set(const Tensor& leaf, const Tensor& g) {
  if (!grads_.count(leaf.impl())) keep_alive_.push_back(leaf.impl_ptr());
  grads_[leaf.impl()] = g;
}

static void accumulate_leaf(const std::shared_ptr<TensorImpl>& leaf, const Tensor& g, GradientSlot* slot) {
  check_grad_matches("backward", leaf->shape, leaf->dtype, g);
  if (slot) {
    slot->accumulate(leaf, g);
  } else if (!leaf->grad.defined()) {
    leaf->grad = g.clone();
  } else {
    add_into(leaf->grad, g);
  }
}

void backward(const Tensor& output, const Tensor& grad_output, const BackwardOptions& opt) {
  if (!output.requires_grad())
    throw Error(cat("backward: the tensor of shape ", shape_str(output.shape()),
                    " does not require grad (no input of the computation requires grad)"));
  Tensor seed = grad_output;
  if (!seed.defined()) {
    if (output.numel() != 1)
      throw Error(cat("backward: output of shape ", shape_str(output.shape()),
                      " is not a scalar; pass a gradient of the same shape"));
    seed = ones(output.shape(), output.dtype(), output.device());
  }
  check_grad_matches("backward's grad_output", output.shape(), output.dtype(), seed);

  if (!output.grad_fn()) {  // a leaf: its gradient is the seed itself
    accumulate_leaf(output.impl_ptr(), seed, opt.slot);
    return;
  }

  // Iterative post-order DFS gives a topological order (inputs before consumers); walk it reversed.
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack{{output.grad_fn().get(), 0}};
  visited.insert(output.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node* child = node->inputs[next++].node.get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> pending;
  pending[output.grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached this node
    Tensor g = std::move(found->second);
    pending.erase(found);
    if (node->saved_released)
      throw Error(cat("backward: trying to run backward through '", node->name(),
                      "' a second time, but its saved tensors were freed after the first backward; "
                      "pass retain_graph=true to the first call"));
    std::vector<Tensor> grads = node->backward(g);
    if (check_op_outputs()) check_backward_outputs(node->name(), grads);
    if (!opt.retain_graph) {
      node->release_saved();
      node->saved_released = true;
    }
    if (grads.size() != node->inputs.size())
      throw Error(cat("autograd: node '", node->name(), "' returned ", grads.size(), " gradients for ",
                      node->inputs.size(), " inputs"));
    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& e = node->inputs[i];
      if (!e.active() || !grads[i].defined()) continue;
      if (e.leaf) {
        accumulate_leaf(e.leaf, grads[i], opt.slot);
      } else {
        auto p = pending.find(e.node.get());
        if (p == pending.end()) {
          pending.emplace(e.node.get(), grads[i]);
        } else {
          // Sum into a fresh tensor: the pending one may alias a gradient held elsewhere.
          p->second = sum_of(p->second, grads[i]);
        }
      }
    }
  }
}

}  // namespace scpn
