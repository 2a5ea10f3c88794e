// Define-by-run reverse-mode autograd: every op that sees an input requiring grad records a Node (its
// backward function with the tensors it saved), and backward() walks the graph from the output.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tensor.h"

namespace scpn {

// One input of a node: either another node's output, or a leaf tensor that wants a gradient.
struct Edge {
  std::shared_ptr<Node> node;         // set when the input was produced by an op
  std::shared_ptr<TensorImpl> leaf;   // set when the input is a leaf with requires_grad
  bool active() const { return node || leaf; }
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Gradients with respect to each input, in the order the inputs were recorded; an undefined tensor
  // means "no gradient" for that input. `grad_output` has the shape of the op's output.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // Frees saved tensors after backward (unless the graph is retained).
  virtual void release_saved() {}

  std::vector<Edge> inputs;
  bool saved_released = false;
  // Whether input i needs a gradient (lets backward skip work).
  bool needs_grad(size_t i) const { return i < inputs.size() && inputs[i].active(); }
};

// Gradients of leaves, keyed by leaf, for callers that want them outside .grad(): the SCPN step keeps one
// slot per task and never touches .grad for them.
class GradientSlot {
 public:
  Tensor get(const Tensor& leaf) const;  // undefined if the leaf received no gradient
  bool has(const Tensor& leaf) const { return grads_.count(leaf.impl()) != 0; }
  void accumulate(const std::shared_ptr<TensorImpl>& leaf, const Tensor& g);
  void set(const Tensor& leaf, const Tensor& g);
  void clear() { grads_.clear(); }
  size_t size() const { return grads_.size(); }

 private:
  std::unordered_map<const TensorImpl*, Tensor> grads_;
  std::vector<std::shared_ptr<TensorImpl>> keep_alive_;
};

struct BackwardOptions {
  GradientSlot* slot = nullptr;  // leaf gradients go here instead of .grad() when set
  bool retain_graph = false;     // keep saved tensors so backward can run through the graph again
};

// Runs backward from `output`. For a scalar output grad_output may be undefined (taken as 1). Walks the
// graph in reverse topological order, iteratively, so deep ResNets cannot overflow the stack; each leaf's
// gradient goes to leaf.grad() (accumulating) or to options.slot.
void backward(const Tensor& output, const Tensor& grad_output = Tensor(), const BackwardOptions& = {});

// Grad mode: when disabled, ops record nothing (evaluation, optimizer updates).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any of the tensors requires grad: the op must record a node.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Connects `node` to its inputs (in order) and makes it the grad_fn of `output`. Inputs that need no
// gradient get an inactive edge. Returns output for chaining.
Tensor record(const std::shared_ptr<Node>& node, const Tensor& output, std::initializer_list<const Tensor*> inputs);

// A saved tensor for backward: the same storage without history, so a node never owns its own output's
// grad_fn (which would be a reference cycle).
inline Tensor save(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

}  // namespace scpn
