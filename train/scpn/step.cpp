#include "train/scpn/step.h"

#include <algorithm>
#include <chrono>

#include "engine/autograd.h"
#include "engine/concurrent.h"
#include "engine/devices.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/optim/clip.h"
#include "engine/random.h"
#include "train/non_finite.h"

namespace scpn::train {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Streams of the step's own randomness, distinct from model init (seed) and the data pipeline.
constexpr uint64_t kIntegrationStream = 0x5C9E'0001;
constexpr uint64_t kCapacityStream = 0x5C9E'0002;

}  // namespace

ScpnStep::ScpnStep(models::ResNet& model, Optimizer& optimizer, StepOptions options, uint64_t seed)
    : model_(model), optimizer_(optimizer), options_(std::move(options)), seed_(seed) {
  for (double c : options_.capacities) {
    models::check_capacity("train.capacities", c);
    SCPN_CHECK(c < 1.0, "train.capacities: 1.0 is the parent, which every step trains; list capacities below 1");
  }
  for (auto& [name, conv] : model_.convs()) {
    prunable_.push_back(conv->weight());
    if (conv->pruned()) {
      prunable_.push_back(conv->score());
      scores_.push_back(conv->score());
    }
  }
  for (auto& [name, p] : model_.named_parameters()) {
    all_.push_back(p);
    bool is_prunable = false;
    for (auto& q : prunable_) is_prunable |= q.same(p);
    if (!is_prunable) head_.push_back(p);
  }
}

std::vector<double> ScpnStep::step_capacities(int64_t step_index) const {
  std::vector<double> caps = options_.capacities;
  for (int64_t i = 0; i < options_.extra_random_capacities; ++i) {
    double u = philox_uniform(seed_ ^ kCapacityStream, uint64_t(step_index) * 64, uint64_t(i));
    caps.push_back(0.1 + 0.9 * u);  // (0.1, 1): u < 1 so never the parent
  }
  return caps;
}

models::ForwardContext ScpnStep::subnet_context(double capacity) const {
  models::ForwardContext ctx{.capacity = capacity, .bn_stats = options_.bn_stats};
  ctx.compact_channels = options_.compact_subnets;
  if (dp_ && sync_bn_) ctx.sync_bn = &dp_->comm();
  return ctx;
}

models::ForwardContext ScpnStep::parent_context() const {
  models::ForwardContext ctx{.capacity = 1.0, .bn_stats = options_.bn_stats};
  if (dp_ && sync_bn_) ctx.sync_bn = &dp_->comm();
  return ctx;
}

void ScpnStep::set_data_parallel(DataParallel* dp, bool sync_bn) {
  dp_ = dp && dp->size() > 1 ? dp : nullptr;
  sync_bn_ = sync_bn;
}

// The losses of the log are the ranks' mean: the loss of the global batch (equal shards).
void ScpnStep::average_losses(StepResult& r, int64_t step_index) {
  if (!dp_) return;
  std::vector<double> v = r.subnet_losses;
  v.push_back(r.parent_loss);
  v = dp_->average_values(v, cat("step ", step_index, " losses"));
  r.parent_loss = v.back();
  v.pop_back();
  r.subnet_losses = v;
}

StepResult ScpnStep::run(const Tensor& images, const Tensor& labels, int64_t step_index) {
  model_.train();
  switch (options_.mode) {
    case TrainMode::scpn: return run_scpn(images, labels, step_index);
    case TrainMode::sum: return run_sum(images, labels, step_index);
    case TrainMode::parent: return run_parent(images, labels, step_index);
  }
  throw Error("ScpnStep: unknown mode");
}

StepResult ScpnStep::run_scpn(const Tensor& images, const Tensor& labels, int64_t step_index) {
  auto t_start = Clock::now();
  StepResult r;
  r.capacities = step_capacities(step_index);
  // One ranking of every layer's scores serves all capacities of the step (and the parent's ones-mask).
  model_.prepare_masks(r.capacities);

  // Pass i < N is the subnetwork at r.capacities[i], backpropagated into slot i + 1; pass N is the parent
  // (all-ones masks, the parent's BatchNorm running statistics move), into slot 0. The passes share no
  // mutable state: the model is only read, each pass writes its own slot and its capacity's statistics.
  const int64_t subnets = int64_t(r.capacities.size()), passes = subnets + 1;
  const auto n = static_cast<size_t>(passes);
  std::vector<GradientSlot> slots(n);
  std::vector<double> losses(n), forward_ms(n), backward_ms(n);
  auto run_pass = [&](int64_t i) {
    const bool parent = i == subnets;
    auto t0 = Clock::now();
    const models::ForwardContext ctx = parent ? parent_context() : subnet_context(r.capacities[size_t(i)]);
    Tensor loss = cross_entropy(model_.forward(images, ctx).logits, labels, options_.label_smoothing);
    forward_ms[size_t(i)] = ms_since(t0);
    t0 = Clock::now();
    GradientSlot& slot = slots[size_t(parent ? 0 : i + 1)];
    backward(loss, Tensor(), BackwardOptions{&slot});
    if (dp_) {
      dp_->average(slot, parent ? cat("step ", step_index, " gradients of the parent")
                                : cat("step ", step_index, " gradients of subnetwork ", i));
    }
    if (!parent) {
      if (options_.task_clip_norm > 0) clip_grad_norm(slot, all_, options_.task_clip_norm);
      // Keep Gᵢ[S] ⊙ M(cᵢ): a subnetwork's score gradient only for the weights it kept.
      for (auto& [name, conv] : model_.convs()) {
        if (!conv->pruned()) continue;
        Tensor g = slot.get(conv->score());
        if (g.defined()) slot.set(conv->score(), mul(g, conv->mask(r.capacities[size_t(i)])));
      }
    }
    backward_ms[size_t(i)] = ms_since(t0);
    losses[size_t(i)] = loss.item();
  };
  // Whole groups of `at_once` passes side by side (one thread each), the rest one after another on all
  // threads: with 5 passes on 2 cores, the subnetworks two at a time, then the parent.
  const int at_once = concurrent_passes(images.device(), passes);
  const int64_t side_by_side = at_once > 1 ? passes / at_once * at_once : 0;
  run_concurrently(side_by_side, at_once, run_pass);
  for (int64_t i = side_by_side; i < passes; ++i) run_pass(i);
  model_.clear_masks();

  r.timings.concurrent_passes = side_by_side > 0 ? at_once : 1;
  for (int64_t i = 0; i < subnets; ++i) {
    r.subnet_losses.push_back(losses[size_t(i)]);
    r.timings.subnet_forward_ms.push_back(forward_ms[size_t(i)]);
    r.timings.subnet_backward_ms.push_back(backward_ms[size_t(i)]);
  }
  r.parent_loss = losses.back();
  r.timings.parent_forward_ms = forward_ms.back();
  r.timings.parent_backward_ms = backward_ms.back();

  // The head keeps the parent's gradient; the prunable tensors get the integrated one.
  auto t0 = Clock::now();
  for (auto& p : head_) p.set_grad(slots[0].get(p));
  Generator order_gen(seed_ ^ kIntegrationStream, uint64_t(step_index) * uint64_t(prunable_.size() + 1) * 4);
  IntegrationStats stats = integrate_gradients(prunable_, slots, options_.integration, order_gen);
  r.projected_rows = stats.projected_rows;
  r.task_rows = stats.task_rows;
  r.timings.integration_ms = ms_since(t0);

  finish(r, step_index);
  r.timings.total_ms = ms_since(t_start);
  return r;
}

// How many passes run side by side: only on the CPU (a GPU runs one pass's kernels at a time) and without
// data parallelism (every pass's gradients are averaged over the ranks in the same order on all of them).
int ScpnStep::concurrent_passes(Device device, int64_t passes) const {
  if (!device.is_cpu() || dp_) return 1;
  const int64_t threads = cpu_threads();
  if (options_.concurrent_passes > 0) return int(std::min<int64_t>(options_.concurrent_passes, threads));
  return threads >= 2 && threads <= passes ? int(threads) : 1;
}

StepResult ScpnStep::run_sum(const Tensor& images, const Tensor& labels, int64_t step_index) {
  auto t_start = Clock::now();
  StepResult r;
  r.capacities = step_capacities(step_index);
  model_.prepare_masks(r.capacities);
  Tensor total;
  for (double c : r.capacities) {
    auto t0 = Clock::now();
    Tensor loss = cross_entropy(model_.forward(images, subnet_context(c)).logits, labels, options_.label_smoothing);
    r.timings.subnet_forward_ms.push_back(ms_since(t0));
    r.timings.subnet_backward_ms.push_back(0.0);  // one backward for all, counted as the parent's
    r.subnet_losses.push_back(loss.item());
    total = total.defined() ? add(total, loss) : loss;
  }
  auto t0 = Clock::now();
  Tensor parent_loss = cross_entropy(model_.forward(images, parent_context()).logits, labels,
                                     options_.label_smoothing);
  r.timings.parent_forward_ms = ms_since(t0);
  r.parent_loss = parent_loss.item();
  total = total.defined() ? add(total, parent_loss) : parent_loss;
  t0 = Clock::now();
  optimizer_.zero_grad();
  backward(total);
  if (dp_) dp_->average_grads(cat("step ", step_index, " gradients"));
  r.timings.parent_backward_ms = ms_since(t0);
  model_.clear_masks();
  finish(r, step_index);
  r.timings.total_ms = ms_since(t_start);
  return r;
}

StepResult ScpnStep::run_parent(const Tensor& images, const Tensor& labels, int64_t step_index) {
  auto t_start = Clock::now();
  StepResult r;
  auto t0 = Clock::now();
  Tensor loss = cross_entropy(model_.forward(images, parent_context()).logits, labels, options_.label_smoothing);
  r.timings.parent_forward_ms = ms_since(t0);
  r.parent_loss = loss.item();
  t0 = Clock::now();
  optimizer_.zero_grad();
  backward(loss);
  if (dp_) dp_->average_grads(cat("step ", step_index, " gradients"));
  r.timings.parent_backward_ms = ms_since(t0);
  finish(r, step_index);
  r.timings.total_ms = ms_since(t_start);
  return r;
}

void ScpnStep::finish(StepResult& r, int64_t step_index) {
  auto t0 = Clock::now();
  average_losses(r, step_index);
  std::vector<Tensor> grads;
  for (auto& p : all_) grads.push_back(p.grad());
  r.grad_norm = clip_grad_norm(grads, options_.clip_norm > 0 ? options_.clip_norm : 1e300);
  // Parameters and optimizer state never see a non-finite value (train/non_finite.h).
  r.non_finite = describe_non_finite_step(r, model_);
  if (!r.non_finite.empty()) {
    optimizer_.zero_grad();
    SCPN_CHECK(!options_.throw_on_non_finite, "training diverged: ", r.non_finite, "; lower train.lr or check the data");
    r.timings.optimizer_ms = ms_since(t0);
    return;
  }
  optimizer_.step();
  if (dp_ && !sync_bn_) dp_->average_buffers(cat("step ", step_index, " BatchNorm statistics"));
  r.timings.optimizer_ms = ms_since(t0);
}

}  // namespace scpn::train
