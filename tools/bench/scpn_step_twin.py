#!/usr/bin/env python3
"""A PyTorch twin of the engine's SCPN training step, on the CPU: the yardstick tools/bench/compare_step.py
times ours against. A developer tool; the build and the tests never need it (nor PyTorch).

It does the step the engine does (SCPN_METHOD.md §4; train/scpn/step.cpp), written the way a PyTorch user
would write it: the prunable ResNet of tools/golden/prunable_resnet.py in float32 and NCHW, each capacity's
masks from its scores, one forward and one torch.autograd.grad per task (every subnetwork, then the parent),
each subnetwork's gradients clipped to train.task_clip_norm and its score gradients masked, the conflict-aware
integration of every convolution weight and score (rows = output filters, conflicting rows projected, cosine
task weights), the head on the parent's gradient, the global clip, and torch.optim.SGD with the engine's two
parameter groups. BatchNorm keeps each capacity's own running statistics (train.bn_stats = own).

Everything it needs comes from a folder `tools/bench_step --save-first-step DIR` wrote: the model and the
options (DIR/step.json), the initial state, input and labels (DIR/state.safetensors), and, for --check,
the engine's losses and final gradients after that first step (DIR/gradients.safetensors).

    scpn_step_twin.py DIR --check          # redo the first step, compare losses and gradients; exit 1 if off
    scpn_step_twin.py DIR --steps 3        # time 3 steps after one warm-up step

With --steps it prints the same per-phase table as tools/bench_step and a last line "images/s: X".
Run it with Debian's /usr/bin/python3 (python3-torch) or any Python with torch and numpy.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import prunable_resnet as pr  # noqa: E402  (the network, shared with the golden fixtures)

SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """name -> torch tensor; the format is an 8-byte header length, a JSON header, then the raw bytes."""
    with open(path, "rb") as f:
        data = f.read()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end], dtype=SAFETENSORS_DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return out


def capacity_mask(score, capacity):
    """The golden mask (k-th smallest |S| kept, ties kept) with a selection instead of a full sort."""
    if capacity >= 1.0:
        return torch.ones_like(score)
    magnitude = score.detach().abs()
    k = pr.threshold_rank(magnitude.numel(), capacity)
    tau = magnitude.flatten().kthvalue(k).values
    return (magnitude >= tau).to(score.dtype)


pr.capacity_mask = capacity_mask  # PrunableConv2d.forward looks the mask function up in its module


def capacity_key(c):
    """models/config.h's "%.6f", trailing zeros trimmed down to two decimals (0.8 -> "0.80")."""
    s = f"{c:.6f}"
    while len(s) > 4 and s.endswith("0"):
        s = s[:-1]
    return s


def clip_(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ on a list of gradients; returns the norm before clipping."""
    total = torch.norm(torch.stack([torch.norm(g) for g in grads]))
    if max_norm > 0:
        coef = max_norm / (float(total) + 1e-6)
        if coef < 1.0:
            torch._foreach_mul_(grads, coef)
    return float(total)


def integrate(gs, rows, opts, order):
    """K * sum_i w_i h_i for one tensor's task gradients gs (engine/ops/grad_integration.h)."""
    K = len(gs)
    G = torch.stack([g.reshape(rows, -1) for g in gs])  # [K, rows, cols]
    by_row = G.transpose(0, 1)                           # [rows, K, cols]
    gram = torch.bmm(by_row, by_row.transpose(1, 2))     # [rows, K, K]: every <g_i[r], g_j[r]>
    sq = gram.diagonal(dim1=1, dim2=2)                   # [rows, K]
    row_index = torch.arange(rows)
    H, projected = [], 0
    for i in range(K):
        if opts["semantics"] == "last":
            # h_i[r] = g_i[r] - d/(|g_j[r]|^2 + 1e-8) g_j[r], j the last conflicting task in the order.
            coef = torch.zeros(rows)
            source = torch.full((rows,), -1, dtype=torch.long)
            for j in order:
                if j == i:
                    continue
                d = gram[:, i, j]
                conflict = d < 0
                coef = torch.where(conflict, d / (sq[:, j] + 1e-8), coef)
                source = torch.where(conflict, torch.full_like(source, j), source)
            h = G[i] - coef.unsqueeze(1) * by_row[row_index, source.clamp(min=0)]
            projected += int((source >= 0).sum())
        else:  # chain: each projection starts from the previous one's result
            h = G[i].clone()
            any_conflict = torch.zeros(rows, dtype=torch.bool)
            for j in order:
                if j == i:
                    continue
                d = (h * G[j]).sum(dim=1)
                conflict = d < 0
                h = torch.where(conflict.unsqueeze(1), h - (d / (sq[:, j] + 1e-8)).unsqueeze(1) * G[j], h)
                any_conflict |= conflict
            projected += int(any_conflict.sum())
        H.append(h)
    if opts["weighting"] == "cosine":
        a = []
        for h, g in zip(H, G):
            cos = (h * g).sum() / (h.norm().clamp_min(1e-8) * g.norm().clamp_min(1e-8))
            a.append(((1 + cos) / 2) ** opts["gamma"])
        total = sum(a)
        weights = [ai / (total + 1e-8) for ai in a]
    else:
        weights = [1.0 / K] * K
    out = sum(w * h for w, h in zip(weights, H)) * K
    return out.reshape(gs[0].shape), projected


class TwinStep:
    def __init__(self, desc, state):
        m, o = desc["model"], desc["options"]
        if o["mode"] != "scpn":
            raise SystemExit(f"scpn_step_twin: mode {o['mode']!r}: only the scpn step has a twin")
        config = {"arch": m["block"], "layers": m["layers"], "stem": m["stem"], "in_channels": m["in_channels"],
                  "base_width": m["base_width"], "feature_dim": m["feature_dim"], "num_classes": m["num_classes"]}
        self.opts = o
        self.model = pr.PrunableResNet(config, m["granularity"])
        pr.load_state(self.model, state)
        self.model.train()
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        self.index = {n: k for k, n in enumerate(self.names)}
        scored = dict(self.model.prunable_convs())
        self.scored = [(f"{n}.score", conv) for n, conv in scored.items()]
        self.prunable = set()
        for n, mod in self.model.named_modules():
            if isinstance(mod, pr.PrunableConv2d):
                self.prunable.add(f"{n}.weight")
                if mod.score is not None:
                    self.prunable.add(f"{n}.score")
        self.bns = [(n, mod) for n, mod in self.model.named_modules()
                    if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
        # Each capacity's own running statistics, swapped in around its forward.
        self.running = {}
        for c in o["capacities"]:
            own = o["bn_stats"] == "own"
            key = capacity_key(c)
            self.running[c] = {n: (state[f"{n}.running_mean@{key}"].clone() if own else bn.running_mean.clone(),
                                   state[f"{n}.running_var@{key}"].clone() if own else bn.running_var.clone())
                               for n, bn in self.bns}
        no_decay = set(o["no_decay"])
        groups = [{"params": [p for n, p in zip(self.names, self.params) if n not in no_decay],
                   "weight_decay": o["weight_decay"]},
                  {"params": [p for n, p in zip(self.names, self.params) if n in no_decay], "weight_decay": 0.0}]
        self.optimizer = torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], foreach=True)
        self.rows = {n: (p.shape[0] if p.dim() == 4 and o["integration_granularity"] == "filter" else 1)
                     for n, p in zip(self.names, self.params)}

    def swap_statistics(self, capacity):
        stats = self.running[capacity]
        for n, bn in self.bns:
            mean, var = stats[n]
            stats[n] = (bn.running_mean, bn.running_var)
            bn.running_mean, bn.running_var = mean, var

    def task(self, capacity, x, labels, timings):
        self.model.set_capacity(capacity)
        if capacity < 1.0:
            self.swap_statistics(capacity)
        t0 = time.perf_counter()
        logits, _ = self.model(x)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.opts["label_smoothing"])
        t1 = time.perf_counter()
        grads = list(torch.autograd.grad(loss, self.params))
        if capacity < 1.0:
            self.swap_statistics(capacity)
        timings.append((t1 - t0, time.perf_counter() - t1))
        return float(loss), grads

    def step(self, x, labels, fixed_order):
        o, timings, result = self.opts, [], {"subnet_losses": []}
        slots = []
        for c in o["capacities"]:
            loss, grads = self.task(c, x, labels, timings)
            t0 = time.perf_counter()
            clip_(grads, o["task_clip_norm"])
            for name, conv in self.scored:  # a subnetwork's score gradient only where it kept the weight
                k = self.index[name]
                grads[k] = grads[k] * conv.mask
            timings[-1] = (timings[-1][0], timings[-1][1] + time.perf_counter() - t0)
            slots.append(grads)
            result["subnet_losses"].append(loss)
        result["parent_loss"], parent = self.task(1.0, x, labels, timings)
        slots.insert(0, parent)

        t0 = time.perf_counter()
        final, projected = [], 0
        for k, name in enumerate(self.names):
            if name not in self.prunable:
                final.append(parent[k])
                continue
            order = list(range(len(slots))) if fixed_order else torch.randperm(len(slots)).tolist()
            g, p = integrate([s[k] for s in slots], self.rows[name], o, order)
            final.append(g)
            projected += p
        t1 = time.perf_counter()
        result["grad_norm"] = clip_(final, o["clip_norm"])
        for p, g in zip(self.params, final):
            p.grad = g
        self.optimizer.step()
        t2 = time.perf_counter()
        result.update(final=final, projected_rows=projected, timings=timings, integration=t1 - t0, optimizer=t2 - t1)
        return result


def load(folder):
    for name in ("step.json", "state.safetensors"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise SystemExit(f"scpn_step_twin: {os.path.join(folder, name)} not found; write the folder with "
                             "tools/bench_step --steps 0 --save-first-step FOLDER")
    try:
        with open(os.path.join(folder, "step.json")) as f:
            desc = json.load(f)
        state = read_safetensors(os.path.join(folder, "state.safetensors"))
    except (ValueError, KeyError) as e:
        raise SystemExit(f"scpn_step_twin: {folder}: unreadable step.json or state.safetensors ({e})")
    return desc, state


def check(folder, desc, state):
    """The engine's first step against the twin's, both f32, and each against the twin in float64."""
    if not desc["options"]["fixed_order"]:
        raise SystemExit("scpn_step_twin --check: the folder was written without integration.fixed_order=true; the "
                         "engine's random integration orders cannot be reproduced here")
    twin = TwinStep(desc, state)
    r = twin.step(state["input"], state["labels"], fixed_order=True)
    torch.set_default_dtype(torch.float64)
    state64 = {k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}
    r64 = TwinStep(desc, state64).step(state64["input"], state64["labels"], fixed_order=True)
    torch.set_default_dtype(torch.float32)
    grads_path = os.path.join(folder, "gradients.safetensors")
    if not os.path.isfile(grads_path):
        raise SystemExit(f"scpn_step_twin --check: {grads_path} not found (bench_step --save-first-step writes it)")
    ours = read_safetensors(grads_path)
    want = desc["result"]
    failures = []

    def close(what, got, expected, rtol):
        err = abs(got - expected) / max(abs(expected), 1e-12)
        print(f"  {what:<28} engine {expected:<14.8g} twin {got:<14.8g} relative difference {err:.1e}")
        if not err <= rtol:
            failures.append(f"{what}: relative difference {err:.1e} > {rtol:g}")

    print(f"scpn_step_twin --check {folder}: the first step of both, f32 on the CPU, fixed integration order")
    close("parent loss", r["parent_loss"], want["parent_loss"], 1e-5)
    for c, got, expected in zip(desc["options"]["capacities"], r["subnet_losses"], want["subnet_losses"]):
        close(f"loss at capacity {capacity_key(c)}", got, expected, 1e-5)
    close("gradient norm before clip", r["grad_norm"], want["grad_norm"], 1e-4)
    # Errors of each final gradient against the float64 twin, relative to its norm (floored at 1e-4 of the
    # global norm: a bias ahead of a BatchNorm has a gradient of rounding noise only). Where tasks' rows
    # nearly cancel in a projection, f32 rounding in the task gradients is amplified: both f32 steps then
    # sit ~1e-3 from float64, and which of them is closer depends on how each sums.
    floor = 1e-4 * r64["grad_norm"]
    errors = []
    for name, g32, g64 in zip(twin.names, r["final"], r64["final"]):
        scale = max(float(torch.norm(g64)), floor)
        errors.append((float(torch.norm(ours[name].double() - g64)) / scale,
                       float(torch.norm(g32.double() - g64)) / scale, name))
    errors.sort(reverse=True)
    print(f"  final gradients of all {len(errors)} parameters against the twin in float64 "
          "(||g - g64|| / ||g64||); the largest:")
    print(f"    {'parameter':<36} {'engine f32':>10} {'twin f32':>10}")
    for err, twin_err, name in errors[:5]:
        print(f"    {name:<36} {err:10.1e} {twin_err:10.1e}")
    median = sorted(e[0] for e in errors)[len(errors) // 2]
    twin_median = sorted(e[1] for e in errors)[len(errors) // 2]
    print(f"    {'(median over the parameters)':<36} {median:10.1e} {twin_median:10.1e}")
    if errors[0][0] > 3e-2 or median > 3e-3:
        failures.append(f"gradient of {errors[0][2]}: {errors[0][0]:.1e} from float64 (limit 3e-2; median "
                        f"{median:.1e}, limit 3e-3)")
    if failures:
        print("check FAILED: " + "; ".join(failures))
        return 1
    print("check passed: the twin computes the engine's step")
    return 0


def bench(desc, state, steps, fixed_order):
    twin = TwinStep(desc, state)
    x, labels = state["input"], state["labels"]
    twin.step(x, labels, fixed_order)  # warm-up
    caps = desc["options"]["capacities"]
    fwd = [0.0] * (len(caps) + 1)
    bwd = [0.0] * (len(caps) + 1)
    integration = optimizer = total = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        r = twin.step(x, labels, fixed_order)
        total += (time.perf_counter() - t0) / steps
        for k, (f, b) in enumerate(r["timings"]):
            fwd[k] += f / steps
            bwd[k] += b / steps
        integration += r["integration"] / steps
        optimizer += r["optimizer"] / steps
    m = desc["model"]
    print(f"scpn_step_twin: PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {m['arch']} base_width "
          f"{m['base_width']}, {m['granularity']} granularity, batch {desc['batch_size']} at {desc['image_size']}x"
          f"{desc['image_size']}, mean of {steps} steps on cpu")
    print(f"{'phase':<24} {'forward ms':>10} {'backward ms':>10}")
    for k, c in enumerate(caps):
        print(f"subnet {capacity_key(c):<17} {fwd[k] * 1e3:10.1f} {bwd[k] * 1e3:10.1f}")
    print(f"{'parent':<24} {fwd[-1] * 1e3:10.1f} {bwd[-1] * 1e3:10.1f}")
    print(f"{'integration':<24} {integration * 1e3:10.1f}\n{'clip + optimizer':<24} {optimizer * 1e3:10.1f}\n"
          f"{'step total':<24} {total * 1e3:10.1f}")
    print(f"images/s: {desc['batch_size'] / total:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="a folder written by tools/bench_step --save-first-step")
    ap.add_argument("--check", action="store_true", help="redo the first step and compare with the engine's")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every CPU)")
    ap.add_argument("--random-order", action="store_true",
                    help="draw each tensor's integration order at random, as the engine does by default")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    desc, state = load(args.folder)
    if args.check:
        sys.exit(check(args.folder, desc, state))
    bench(desc, state, args.steps, fixed_order=not args.random_order and desc["options"]["fixed_order"])


if __name__ == "__main__":
    main()
