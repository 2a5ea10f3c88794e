#!/usr/bin/env python3
"""Golden fixture for one whole SCPN training step (SCPN_METHOD.md §3-§4, `scpn` mode).

An independent PyTorch computation of `ScpnStep::run` in `scpn` mode, written from SCPN_METHOD.md §4 and the
formulas documented in engine/ops/grad_integration.h (the integration), engine/optim/clip.h (torch's
clip_grad_norm_) and engine/optim/sgd.h (torch.optim.SGD), with the optimizer's parameter groups as
train/trainer.cpp builds them. The network itself (masks, straight-through estimator, BatchNorm, head) is
the one of tools/golden/prunable_resnet.py, imported from there. The C++ test
tests/train/test_scpn_step_oracle.cpp loads the fixture's initial state, runs the step and compares every
parameter and BatchNorm statistic; it never runs this script.

Rerun from the repository root (needs torch and numpy; CPU is enough; on Debian `apt-get install
python3-torch` and run it with /usr/bin/python3):

    python3 tools/golden/scpn_step.py           # self-checks, then writes tests/golden/scpn_step.json
    python3 tools/golden/scpn_step.py --check   # self-checks only
    python3 tools/golden/scpn_step.py --explore # print each step's norms (to choose the clip norms)

What one step is, here (task 0 = the parent, tasks 1..N = the capacities c_1..c_N in list order, K = N + 1):
  1. For each capacity c_i: masks M(c_i) from the current scores (per layer, k-th smallest |S|, ties kept);
     forward in training mode (BatchNorm with batch statistics; each capacity moves its own running
     statistics "<bn>.running_mean@<c>", bn_stats = own); mean cross-entropy; backward into a fresh set of
     gradients; clip the global 2-norm of ALL this task's gradients (every parameter: conv weights, the
     scores' unmasked STE gradients, BatchNorm, projector, classifier) to task_clip_norm with
     torch.nn.utils.clip_grad_norm_; keep G_i[W] for every convolution weight and G_i[S] * M(c_i) for
     every score; the rest of this task's gradients is dropped.
  2. The parent: all-ones masks, the parent's running statistics move, cross-entropy, backward, no clip;
     G_0 of everything. BatchNorm, projector and classifier take G_0 as their final gradient.
  3. For each prunable tensor P (every conv weight, every score) the integration of grad_integration.h:
     rows = output filters of a 4-D tensor (granularity `filter`), else one row; order pi = 0..K-1
     (fixed_order = true: the C++ draws a Philox permutation otherwise, which we do not reproduce);
     semantics `last`: h_i[r] = g_i[r] - d_r / (|g_j[r]|^2 + 1e-8) g_j[r] with d_r = <g_i[r], g_j[r]> < 0,
     from the original g_i, the last conflicting j in pi deciding; weights a_i = ((1 + cos(h_i, g_i))/2)^gamma
     over the whole tensor (cos = <h, g> / (max(|h|, 1e-8) max(|g|, 1e-8))), w_i = a_i / (sum a + 1e-8);
     P.grad = K * sum_i w_i h_i. projected_rows counts the (task, row) pairs with some d_r < 0, task_rows
     counts K * rows over all tensors.
  4. Clip the global norm of every parameter's gradient to clip_norm (clip_grad_norm_ again), then
     torch.optim.SGD over two groups, as the trainer builds them: {every parameter except projector.bias
     and classifier.bias: momentum, weight_decay} and {those two biases: momentum, weight_decay 0}.
Each case (weight and channel granularity) runs two steps on two batches with one optimizer: the first
step is the oracle for one step; the second runs on the momentum buffers the first left (momentum plays no
part in a first step) and on masks ranked from scores the first step changed.

The network is the smallest the model allows (basic blocks, layers [1,1,1,1], base width 1, 12x12
images, batch 4) so that the fixture stays small (~270 kB). Options are chosen so that every branch is
live (the self-checks fail otherwise): task_clip_norm clips some but not all subnetworks in the first step,
clip_norm clips every step, conflicts occur (projected_rows > 0), and no decision the C++ side makes from
a float (a conflict sign, a clip, a mask threshold) is within 1e-9 relative of flipping. Choose new clip
norms with --explore, which prints every step's norms and skips those checks.

Conditioning (why the C++ test allows 1e-10, not 1e-14): the 1x1 shortcut of layer3 has rows of two
elements, and there the tasks' rows are nearly anti-parallel, so a projection cancels a row down to ~1e-5
of its size. The integration's result is then sensitive to rounding: the same formulas evaluated through
the per-row Gram matrix (as kernels/grad_integration.h says the kernels do) instead of directly differ by
~5e-11 on that tensor's integrated gradient. The C++ step agrees with this script to ~6e-13 on every
parameter and ~1e-11 (7e-13 relative) on the weight case's second pre-clip gradient norm; the channel
case agrees to ~1e-15 on parameters.

In channel granularity the masking of the subnetworks' score gradients is a no-op: a pruned filter's BN
output is gated to zero, so its dL/dW_eff, and with it its score's STE gradient, is already zero. The
weight case is the one that checks that masking.

Initial values are the ones of prunable_resnet.initial_state, rounded to a few decimals (7 for scores,
6 for the rest) so the fixture stays small; the rounded decimal is the exact float64 both sides start
from. Expected values are written with repr (exact round trip).

JSON layout
-----------
A tensor is {"shape": [...], "data": [row-major values]}.
{
  "config":  {"arch", "layers", "stem", "in_channels", "base_width", "feature_dim", "num_classes",
              "bn_eps", "bn_momentum", "dtype": "float64", "seed"},
  "initial": {name: tensor}   -- every parameter and BatchNorm statistic of the C++ model's state(), with
                                 the weight-granularity scores "<conv>.score" and the per-capacity
                                 statistics "<bn>.running_mean@0.75" etc. (distinct values, not copies);
  "channel_scores": {name: tensor}  -- the channel-granularity scores (replace the weight ones);
  "batches": [{"input": tensor [N, C, H, W], "labels": [N ints]}],
  "cases": [{
     "name", "granularity": "weight" | "channel",
     "options": {"capacities", "task_clip_norm", "clip_norm", "lr", "momentum", "weight_decay",
                 "no_decay": [names], "label_smoothing": 0, "bn_stats": "own", "semantics": "last",
                 "weighting": "cosine", "gamma", "integration_granularity": "filter", "fixed_order": true,
                 "seed"},
     "steps": [{
        "step_index", "batch": index into "batches",
        "parent_loss", "subnet_losses": [per capacity],
        "task_norms": [per capacity, before its clip], "task_clipped": [bools]   (informational),
        "grad_norm": the global norm before the final clip, "projected_rows", "task_rows",
        "after": {name: tensor}   -- every parameter and BatchNorm statistic after the step
     }]
  }]
}
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prunable_resnet as pr  # noqa: E402  (the shared model, initial values and JSON writer)

from prunable_resnet import CheckFailed, Tensor, expect_close  # noqa: E402

CONFIG = {"arch": "basic", "layers": [1, 1, 1, 1], "stem": "small", "in_channels": 1, "base_width": 1,
          "feature_dim": 6, "num_classes": 5}
SEED = 1101
INPUT_SHAPE = [4, 1, 12, 12]  # layer4 runs on 2x2 maps, so no BatchNorm sees fewer than 16 values
NUM_BATCHES = 2
NO_DECAY = ["projector.bias", "classifier.bias"]

# The options of each case. task_clip_norm and clip_norm were picked by looking at the norms this script
# prints (the self-checks require them to bite); the rest is the method's recipe, except fixed_order.
BASE_OPTIONS = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "no_decay": NO_DECAY, "label_smoothing": 0.0,
                "bn_stats": "own", "semantics": "last", "weighting": "cosine", "gamma": 0.5,
                "integration_granularity": "filter", "fixed_order": True, "seed": 7}
CASES = [
    {"name": "weight", "granularity": "weight", "steps": 2,
     "options": dict(BASE_OPTIONS, capacities=[0.75, 0.5], task_clip_norm=5.0, clip_norm=4.0)},
    {"name": "channel", "granularity": "channel", "steps": 2,
     "options": dict(BASE_OPTIONS, capacities=[0.75, 0.5], task_clip_norm=8.0, clip_norm=5.0)},
]

MARGIN = 1e-9  # how far (relative) every float-driven decision must be from its threshold
EXPLORE = False  # --explore: print the norms, skip the step's self-checks, write nothing


def capacity_key(c):
    """models/config.h: "%.6f", trailing zeros trimmed down to two decimals (0.75 -> "0.75", 0.5 -> "0.50")."""
    s = f"{c:.6f}"
    while len(s) > 4 and s.endswith("0"):
        s = s[:-1]
    return s


def rounded(t, decimals):
    return torch.round(t * 10.0 ** decimals) / 10.0 ** decimals


# ----------------------------------------------------------------------------------------------------
# Initial state
# ----------------------------------------------------------------------------------------------------

def make_initial(capacities):
    state, channel_scores = pr.initial_state(CONFIG, SEED)
    state = {k: rounded(v, 7 if k.endswith(".score") else 6) for k, v in state.items()}
    channel_scores = {k: rounded(v, 7) for k, v in channel_scores.items()}
    gen = torch.Generator().manual_seed(SEED + 1)
    per_capacity = {}
    for c in capacities:
        for name, v in state.items():
            if name.endswith("running_mean"):
                per_capacity[f"{name}@{capacity_key(c)}"] = rounded(pr.uniform(gen, v.shape, -0.1, 0.1), 6)
            elif name.endswith("running_var"):
                per_capacity[f"{name}@{capacity_key(c)}"] = rounded(pr.uniform(gen, v.shape, 0.5, 1.5), 6)
    batches = []
    for _ in range(NUM_BATCHES):
        x = rounded(pr.uniform(gen, INPUT_SHAPE, -1.0, 1.0), 6)
        labels = torch.randint(CONFIG["num_classes"], (INPUT_SHAPE[0],), generator=gen)
        batches.append((x, labels))
    return state, channel_scores, per_capacity, batches


# ----------------------------------------------------------------------------------------------------
# The step
# ----------------------------------------------------------------------------------------------------

def integration_rows(t, granularity):
    return t.shape[0] if (t.dim() == 4 and granularity == "filter") else 1


def integrate(gs, rows, options):
    """grad_integration.h: K task gradients of one tensor -> (K * sum_i w_i h_i, projected pairs, details)."""
    K = len(gs)
    order = list(range(K))  # fixed_order
    G = [g.reshape(rows, -1) for g in gs]
    H, projected, min_margin, deciders = [], 0, math.inf, []
    for i in range(K):
        h = G[i].clone()
        any_conflict = torch.zeros(rows, dtype=torch.bool)
        decider = torch.full((rows,), -1, dtype=torch.long)
        for j in order:
            if j == i:
                continue
            gj = G[j]
            base = G[i] if options["semantics"] == "last" else h
            d = (base * gj).sum(dim=1)
            scale = (G[i].norm(dim=1) * gj.norm(dim=1)).clamp_min(1e-300)
            nonzero = (G[i].norm(dim=1) > 0) & (gj.norm(dim=1) > 0)
            if nonzero.any():
                min_margin = min(min_margin, float((d.abs() / scale)[nonzero].min()))
            conflict = d < 0
            step = base - (d / ((gj * gj).sum(dim=1) + 1e-8)).unsqueeze(1) * gj
            h = torch.where(conflict.unsqueeze(1), step, h)
            any_conflict |= conflict
            decider = torch.where(conflict, torch.full_like(decider, j), decider)
        projected += int(any_conflict.sum())
        H.append(h)
        deciders.append(decider)
    if options["weighting"] == "cosine":
        a = []
        for h, g in zip(H, G):
            # torch.nn.functional.cosine_similarity's current definition, written out (older releases
            # clamp the product of the norms instead; no norm here is anywhere near 1e-8).
            cos = (h * g).sum() / (h.norm().clamp_min(1e-8) * g.norm().clamp_min(1e-8))
            a.append(((1 + cos) / 2) ** options["gamma"])
        total = sum(a)
        w = [ai / (total + 1e-8) for ai in a]
    else:
        w = [1.0 / K] * K
    out = K * sum(wi * h for wi, h in zip(w, H))
    return out.reshape(gs[0].shape), projected, {"H": H, "G": G, "deciders": deciders, "weights": w,
                                                 "min_margin": min_margin}


def clip_(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ on plain tensors (wrapped as .grad of throwaway leaves)."""
    holders = []
    for g in grads:
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g
        holders.append(p)
    return float(torch.nn.utils.clip_grad_norm_(holders, max_norm))


class Runner:
    """One model, its per-capacity BatchNorm statistics and one torch.optim.SGD, stepping like ScpnStep."""

    def __init__(self, granularity, state, channel_scores, per_capacity, options):
        self.granularity, self.options = granularity, options
        self.model = pr.build(CONFIG, granularity, state, channel_scores)  # train() mode
        self.params = dict(self.model.named_parameters())
        self.bns = {n: m for n, m in self.model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
        self.running = {c: {} for c in options["capacities"]}
        for c in options["capacities"]:
            for bn in self.bns:
                for kind in ("running_mean", "running_var"):
                    self.running[c][f"{bn}.{kind}"] = per_capacity[f"{bn}.{kind}@{capacity_key(c)}"].clone()
        self.convs = [n for n, m in self.model.named_modules() if isinstance(m, pr.PrunableConv2d)]
        self.scored = dict(self.model.prunable_convs())
        self.prunable = []  # every conv weight and score (ScpnStep's prunable tensors), names
        for n in self.convs:
            self.prunable.append(f"{n}.weight")
            if n in self.scored:
                self.prunable.append(f"{n}.score")
        groups = [{"params": [p for n, p in self.params.items() if n not in options["no_decay"]],
                   "weight_decay": options["weight_decay"]},
                  {"params": [self.params[n] for n in options["no_decay"]], "weight_decay": 0.0}]
        self.opt = torch.optim.SGD(groups, lr=options["lr"], momentum=options["momentum"], dampening=0,
                                   nesterov=False, foreach=False)

    def swap_running(self, capacity):
        """Exchange the model's BN buffers with this capacity's own statistics (bn_stats = own)."""
        with torch.no_grad():
            for bn_name, bn in self.bns.items():
                for kind in ("running_mean", "running_var"):
                    buf = getattr(bn, kind)
                    mine = self.running[capacity][f"{bn_name}.{kind}"]
                    tmp = buf.clone()
                    buf.copy_(mine)
                    mine.copy_(tmp)

    def task(self, capacity, x, labels):
        self.model.zero_grad(set_to_none=True)
        self.model.set_capacity(capacity)
        if capacity < 1.0:
            self.swap_running(capacity)
        logits, _ = self.model(x)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.options["label_smoothing"])
        loss.backward()
        if capacity < 1.0:
            self.swap_running(capacity)
        masks = {f"{n}.score": conv.mask.clone() for n, conv in self.scored.items()}
        grads = {n: p.grad.detach().clone() for n, p in self.params.items()}
        self.model.zero_grad(set_to_none=True)
        return loss.item(), grads, masks

    def step(self, x, labels):
        o = self.options
        rec = {"subnet_losses": [], "task_norms": [], "task_clipped": [], "masks": {}}
        slots = [None]
        for c in o["capacities"]:
            loss, g, masks = self.task(c, x, labels)
            names = list(g)
            norm = clip_([g[n] for n in names], o["task_clip_norm"])  # in place on g's tensors
            rec["subnet_losses"].append(loss)
            rec["task_norms"].append(norm)
            rec["task_clipped"].append(norm > o["task_clip_norm"])
            rec["masks"][c] = masks
            kept = {n: (g[n] * masks[n] if n.endswith(".score") else g[n]) for n in self.prunable}
            slots.append(kept)
        parent_loss, g0, masks0 = self.task(1.0, x, labels)
        for n, m in masks0.items():
            if not bool((m == 1).all()):
                raise CheckFailed(f"{n}: the parent's mask is not all ones")
        slots[0] = g0
        rec["parent_loss"] = parent_loss

        final = {n: g0[n].clone() for n in self.params if n not in self.prunable}  # the shared head
        rec["projected_rows"], rec["task_rows"], rec["conflict_margin"] = 0, 0, math.inf
        rec["integration"] = {}
        for n in self.prunable:
            gs = [s[n] for s in slots]
            rows = integration_rows(gs[0], o["integration_granularity"])
            out, projected, detail = integrate(gs, rows, o)
            final[n] = out
            rec["projected_rows"] += projected
            rec["task_rows"] += len(gs) * rows
            rec["conflict_margin"] = min(rec["conflict_margin"], detail["min_margin"])
            rec["integration"][n] = detail
        ordered = [final[n] for n in self.params]
        rec["grad_norm"] = clip_(ordered, o["clip_norm"])
        rec["final_grads"] = {n: final[n].clone() for n in self.params}
        before = {n: p.detach().clone() for n, p in self.params.items()}
        for n, p in self.params.items():
            p.grad = final[n]
        self.opt.step()
        rec["before"] = before
        return rec

    def state(self):
        """Every parameter and BN statistic by the C++ names (per-capacity ones as "<name>@<key>")."""
        out = {k: v for k, v in pr.model_state(self.model).items()}
        for c, stats in self.running.items():
            for k, v in stats.items():
                out[f"{k}@{capacity_key(c)}"] = v.clone()
        return out


# ----------------------------------------------------------------------------------------------------
# Self-checks: properties the step must have, checked by routes other than the code above
# ----------------------------------------------------------------------------------------------------

def check_step(runner, rec, step_number, momentum_before):
    o = runner.options
    where = f"{runner.granularity} step {step_number}"
    if EXPLORE:
        return
    # Every float-driven decision is far from its threshold.
    if rec["conflict_margin"] < MARGIN:
        raise CheckFailed(f"{where}: a conflict sign is within {rec['conflict_margin']:g} of flipping")
    if step_number == 0 and (not any(rec["task_clipped"]) or all(rec["task_clipped"])):
        raise CheckFailed(f"{where}: task_clip_norm {o['task_clip_norm']} must clip some subnetworks but not "
                          f"all (norms {rec['task_norms']})")
    for norm in rec["task_norms"]:
        if abs(norm - o["task_clip_norm"]) < MARGIN * norm:
            raise CheckFailed(f"{where}: a task norm sits on task_clip_norm")
    if rec["grad_norm"] <= o["clip_norm"] * (1 + MARGIN):
        raise CheckFailed(f"{where}: clip_norm {o['clip_norm']} does not bite (norm {rec['grad_norm']})")
    if rec["projected_rows"] == 0:
        raise CheckFailed(f"{where}: no conflicts, the projections are untested")
    # Masks: recomputed with numpy; no tie at any threshold, and the k-th and (k-1)-th |S| are apart.
    for c, masks in rec["masks"].items():
        for n, m in masks.items():
            s = rec["before"][n].numpy().ravel()
            mags = np.sort(np.abs(s))
            k = 1 + int(np.round((1.0 - c) * (s.size - 1)))
            want = (np.abs(s) >= mags[k - 1]).astype(np.float64)
            expect_close(f"{where} {n} mask at {c}", m.numpy().ravel(), want, 0.0)
            if int(want.sum()) != s.size - k + 1:
                raise CheckFailed(f"{where} {n}: tie at the threshold")
            if k > 1 and (mags[k - 1] - mags[k - 2]) < MARGIN * mags[k - 1]:
                raise CheckFailed(f"{where} {n}: threshold within {MARGIN} of the next |S|")
    # Integration: a projected row is orthogonal to the partner that decided it (last semantics), an
    # unprojected row is the task's gradient, and the weights sum to ~1.
    for n, d in rec["integration"].items():
        for i, (h, g, dec) in enumerate(zip(d["H"], d["G"], d["deciders"])):
            for r in range(h.shape[0]):
                j = int(dec[r])
                if j < 0:
                    if not torch.equal(h[r], g[r]):
                        raise CheckFailed(f"{where} {n}: task {i} row {r} changed without a conflict")
                elif o["semantics"] == "last":
                    # <h, g_j> = d (1 - |g_j|^2 / (|g_j|^2 + 1e-8)): zero but for the 1e-8, which matters
                    # on rows with tiny gradients (a 1x1 shortcut's 2-element rows here).
                    gj = d["G"][j][r]
                    dot, nj2 = float(g[r] @ gj), float(gj @ gj)
                    want = dot * 1e-8 / (nj2 + 1e-8)
                    resid = abs(float(h[r] @ gj) - want) / max(float(g[r].norm() * gj.norm()), 1e-300)
                    if resid > 1e-12:
                        raise CheckFailed(f"{where} {n}: task {i} row {r} not projected off task {j} ({resid:g})")
        if abs(sum(float(w) for w in d["weights"]) - 1) > 1e-7:
            raise CheckFailed(f"{where} {n}: weights do not sum to 1")
    # The final clip leaves norm clip_norm / (norm + 1e-6) * norm.
    after_clip = math.sqrt(sum(float((g * g).sum()) for g in rec["final_grads"].values()))
    expect_close(f"{where} clipped norm", after_clip, min(1.0, o["clip_norm"] / (rec["grad_norm"] + 1e-6)) * rec["grad_norm"],
                 1e-12)
    # SGD by hand (sgd.h): g += wd p; buf = g first, else m buf + g; p -= lr buf.
    after = {n: p.detach() for n, p in runner.params.items()}
    momentum = {}
    for n in runner.params:
        wd = 0.0 if n in o["no_decay"] else o["weight_decay"]
        g = rec["final_grads"][n] + wd * rec["before"][n]
        buf = g if momentum_before is None else o["momentum"] * momentum_before[n] + g
        want = rec["before"][n] - o["lr"] * buf
        expect_close(f"{where} SGD {n}", after[n].numpy(), want.numpy(), 1e-13, 1e-16)
        momentum[n] = buf
    return momentum


def check_ste_once(state, channel_scores, batch, granularity, capacity):
    """The network's STE and gradients, by prunable_resnet's own self-checks (central differences etc.)."""
    x, labels = batch
    result = pr.run_case(CONFIG, granularity, capacity, state, channel_scores, x, labels)
    pr.check_ste(CONFIG, granularity, capacity, state, channel_scores, x, labels, result)
    pr.check_param_grads(CONFIG, granularity, capacity, state, channel_scores, x, labels, result)


# ----------------------------------------------------------------------------------------------------
# Fixture
# ----------------------------------------------------------------------------------------------------

def make_fixture():
    capacities = sorted({c for case in CASES for c in case["options"]["capacities"]}, reverse=True)
    state, channel_scores, per_capacity, batches = make_initial(capacities)
    for case in CASES:
        check_ste_once(state, channel_scores, batches[0], case["granularity"], case["options"]["capacities"][-1])

    initial = dict(state)
    initial.update(per_capacity)
    out_cases = []
    for case in CASES:
        runner = Runner(case["granularity"], state, channel_scores, per_capacity, case["options"])
        start = runner.state()
        missing = set(start) - set(initial) - (set(channel_scores) if case["granularity"] == "channel" else set())
        if missing:
            raise CheckFailed(f"{case['name']}: state names missing from the fixture: {sorted(missing)[:5]}")
        steps, momentum = [], None
        for s in range(case["steps"]):
            x, labels = batches[s % len(batches)]
            rec = runner.step(x, labels)
            momentum = check_step(runner, rec, s, momentum)
            print(f"  {case['name']} step {s}: parent loss {rec['parent_loss']!r}, subnet losses "
                  f"{rec['subnet_losses']}, task norms {[round(v, 4) for v in rec['task_norms']]} "
                  f"(clipped {rec['task_clipped']}), grad norm {rec['grad_norm']:.4f} -> {case['options']['clip_norm']}, "
                  f"projected rows {rec['projected_rows']} / {rec['task_rows']}, "
                  f"min |conflict cos| {rec['conflict_margin']:.3g}")
            steps.append({
                "step_index": s,
                "batch": s % len(batches),
                "parent_loss": rec["parent_loss"],
                "subnet_losses": rec["subnet_losses"],
                "task_norms": rec["task_norms"],
                "task_clipped": rec["task_clipped"],
                "grad_norm": rec["grad_norm"],
                "projected_rows": rec["projected_rows"],
                "task_rows": rec["task_rows"],
                "after": {k: Tensor(v) for k, v in runner.state().items()},
            })
        out_cases.append({"name": case["name"], "granularity": case["granularity"], "options": case["options"],
                          "steps": steps})

    return {
        "config": dict(CONFIG, bn_eps=pr.BN_EPS, bn_momentum=pr.BN_MOMENTUM, dtype="float64", seed=SEED),
        "initial": {k: Tensor(v) for k, v in initial.items()},
        "channel_scores": {k: Tensor(v) for k, v in channel_scores.items()},
        "batches": [{"input": Tensor(x), "labels": [int(v) for v in y.tolist()]} for x, y in batches],
        "cases": out_cases,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/golden/scpn_step.json", help="where to write the fixture")
    parser.add_argument("--check", action="store_true", help="run the self-checks, write nothing")
    parser.add_argument("--explore", action="store_true",
                        help="print each step's norms without the step self-checks (to choose the clip norms)")
    args = parser.parse_args()
    global EXPLORE
    EXPLORE = args.explore

    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    try:
        fixture = make_fixture()
    except CheckFailed as e:
        print(f"SELF-CHECK FAILED: {e}", file=sys.stderr)
        return 1
    if args.check or args.explore:
        print("all self-checks passed")
        return 0
    text = pr.to_json(fixture) + "\n"
    import json
    json.loads(text)
    with open(args.out + ".tmp", "w") as f:
        f.write(text)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    print("all self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
