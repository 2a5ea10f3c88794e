#!/usr/bin/env python3
"""Golden fixtures for the prunable ResNet (SCPN_METHOD.md §2-§3, DESIGN.md §6, §9).

An independent PyTorch re-implementation of the engine's prunable ResNet, written from the method's
description rather than from the C++ code, so that the two can disagree when one of them is wrong. It
writes small float64 fixtures that the C++ tests read; the tests never run this script (DESIGN.md §9).

Rerun (from the repository root; needs `pip install torch numpy`, CPU is enough):

    python3 tools/golden/prunable_resnet.py            # self-checks, then writes tests/golden/*.json
    python3 tools/golden/prunable_resnet.py --check    # self-checks only, writes nothing

The output is deterministic for a given PyTorch version (fixed seeds, float64, CPU, one thread), but the
tests treat the committed JSON as the truth: regenerate only when the conventions below change. Before
writing, every case is self-checked (any failure writes nothing and exits 1):
  - masks: recomputed with numpy, no tied |S|, kept = n - k + 1, kept counts monotone in capacity;
  - STE: each scored conv's W_eff re-run as a plain autograd leaf, the STE formulas applied by hand to its
    gradient and compared with MaskedWeight's; that leaf gradient confirmed by central differences on a
    few entries of one layer (a pruned entry included);
  - parameters: central differences on entries of several non-score tensors (W, BN, head);
  - channel mode: pruned channels' BN gamma/beta get exactly zero gradient;
  - weight mode, when torchvision is installed (optional): the same network rebuilt from torchvision's
    BasicBlock/Bottleneck with M * W loaded must give the same logits, loss and gradients.

Conventions (the C++ side follows the same ones)
------------------------------------------------
* Parameter names are torchvision's ResNet names (conv1.weight, bn1.running_var, layer2.0.downsample.0.weight,
  layer2.0.downsample.1.bias, ...), then projector.{weight,bias}, feature_bn.{weight,bias,running_mean,
  running_var}, classifier.{weight,bias}; a prunable conv's score is "<conv>.score". No num_batches_tracked.
* Head: global average pool -> flatten -> projector Linear(C_last -> D) -> feature_bn BatchNorm1d(D) (the
  retrieval feature) -> classifier Linear(D -> classes). The classifier reads feature_bn's output as is
  (not L2-normalised; L2 normalisation is only for retrieval).
* Mask at capacity c, per scored layer: s = 1.0 - c (in float64, so 1 - 0.6 = 0.4000000000000001),
  n = numel(S), k = 1 + round_half_even(s * (n - 1)), tau = k-th smallest |S| (1-based), M = |S| >= tau.
  The scores are drawn from U(-1, 1), so there are no ties and exactly n - k + 1 entries are kept.
* Weight granularity: every conv (stem, block convs, downsample convs) has S of W's shape; W_eff = M * W.
* Channel granularity: only the block convs that feed another conv of the same block are scored
  (BasicBlock conv1; Bottleneck conv1 and conv2), S has shape [K] (one per output filter),
  W_eff = M[:, None, None, None] * W, and the output of that conv's BN is multiplied by M per channel, as
  a constant, so a pruned channel is exactly zero before the ReLU and the next conv.
* Straight-through estimator: dL/dW = M * dL/dW_eff; dL/dS = sign(S) * W * dL/dW_eff (pruned positions
  included), summed over (in, kh, kw) of each filter for channel granularity.
* BatchNorm in training mode (batch statistics; eps 1e-5, momentum 0.1; the running variance is moved
  with the unbiased batch variance, as PyTorch does). Loss: mean cross-entropy, no label smoothing.

JSON layout of each fixture
---------------------------
A tensor is {"shape": [d0, d1, ...], "data": [row-major values]}. Floats are written with Python's repr
(the shortest string that round-trips the float64 exactly, at most 17 significant digits), so a C++ reader
using strtod recovers the same bits and comparisons can be tight.

{
  "config": {"arch": "basic"|"bottleneck", "layers": [..4 ints..], "stem": "small"|"imagenet"|
             "imagenet_nopool", "in_channels": int, "base_width": int, "feature_dim": int,
             "num_classes": int, "bn_eps": 1e-5, "bn_momentum": 0.1, "dtype": "float64", "seed": int},
  "input":  tensor [N, C, H, W],
  "labels": [N ints],
  "params": {name: tensor}    -- every parameter and BN running statistic (the values before any case
                                 runs) and the weight-granularity scores "<conv>.score";
  "channel_scores": {name: tensor}  -- the channel-granularity scores, also named "<conv>.score", kept
                                 apart because they are different tensors from the weight-granularity
                                 scores of the same conv;
  "cases": [{
      "granularity": "weight"|"channel", "capacity": float,
      "kept":   {score name: number of kept entries (weights or filters) in that layer's mask},
      "logits": tensor [N, classes],
      "feature": tensor [N, D]            -- feature_bn's output (extra, for debugging the head),
      "loss":   float,
      "grads":  {name: tensor}            -- dL/d(every parameter), and dL/dS of this granularity's scores
                                             (the scores from "params" for weight cases, from
                                             "channel_scores" for channel cases),
      "running_after": {name: tensor}     -- every BN running_mean / running_var after this case's one
                                             training-mode forward, starting from the values in "params"
  }]
}
Every case starts from the same parameters and running statistics; the cases are independent.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


# ----------------------------------------------------------------------------------------------------
# Masks and the straight-through estimator
# ----------------------------------------------------------------------------------------------------

def threshold_rank(n, capacity):
    """1-based rank k of the threshold among the ascending |S|; Python's round() is round-half-even."""
    sparsity = 1.0 - capacity
    return 1 + int(round(sparsity * (n - 1)))


def capacity_mask(score, capacity):
    """0/1 mask of the score's shape: keep every entry whose |S| reaches the k-th smallest |S|."""
    if capacity >= 1.0:
        return torch.ones_like(score)
    magnitude = score.detach().abs().flatten()
    k = threshold_rank(magnitude.numel(), capacity)
    tau = torch.sort(magnitude).values[k - 1]
    return (score.detach().abs() >= tau).to(score.dtype)


class MaskedWeight(torch.autograd.Function):
    """W_eff = M * W, with the STE sending dL/dW_eff to the score as if the mask were |S|-linear.

    The mask is a step function of S, so its true derivative is zero almost everywhere; the STE instead
    passes sign(S) * W * dL/dW_eff to S, which is what lets the scores learn which weights matter.
    """

    @staticmethod
    def forward(ctx, weight, score, mask):
        per_filter = score.dim() == 1 and weight.dim() > 1
        m = mask.view(-1, *([1] * (weight.dim() - 1))) if per_filter else mask
        ctx.save_for_backward(weight, score, m)
        ctx.per_filter = per_filter
        return weight * m

    @staticmethod
    def backward(ctx, grad_eff):
        weight, score, m = ctx.saved_tensors
        grad_weight = m * grad_eff
        contribution = weight * grad_eff  # pruned positions included, so pruned weights can come back
        if ctx.per_filter:
            grad_score = torch.sign(score) * contribution.sum(dim=tuple(range(1, weight.dim())))
        else:
            grad_score = torch.sign(score) * contribution
        return grad_weight, grad_score, None


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------

class PrunableConv2d(nn.Module):
    """A bias-free conv whose weight may be seen through a capacity mask computed from its own score."""

    def __init__(self, in_ch, out_ch, kernel, stride, padding, score_shape):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        if score_shape is None:
            self.register_parameter("score", None)
        else:
            self.score = nn.Parameter(torch.empty(score_shape))
        self.capacity = 1.0
        self.mask = None            # the mask of the latest forward, read by the block's channel gate
        self.weight_override = None  # self-check only: use this leaf tensor as W_eff instead

    @property
    def per_channel(self):
        return self.score is not None and self.score.dim() == 1

    def forward(self, x):
        if self.score is None:
            self.mask = None
            w = self.weight
        else:
            # Recomputed from the current scores at every forward, as in training.
            self.mask = capacity_mask(self.score, self.capacity)
            w = MaskedWeight.apply(self.weight, self.score, self.mask)
        if self.weight_override is not None:
            w = self.weight_override
        return F.conv2d(x, w, None, self.stride, self.padding)

    def gate(self, y):
        """Zero the BN output of pruned filters (channel granularity), so the next conv sees exact zeros.

        Without it a pruned filter's BN would still emit its bias beta (the conv output is all zero, so
        the normalised value is zero); the gate is a constant, so no gradient reaches S through it.
        """
        if not self.per_channel:
            return y
        return y * self.mask.detach().view(1, -1, *([1] * (y.dim() - 2)))


def bn2d(ch):
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch, width, stride, granularity):
        super().__init__()
        out_ch = width * self.expansion

        def weight_score(o, i, k):
            return (o, i, k, k) if granularity == "weight" else None

        # Channel granularity scores only conv1: its output channels feed conv2 and nothing else, so a
        # pruned filter shrinks the block's inner width while the residual stream stays whole.
        self.conv1 = PrunableConv2d(in_ch, width, 3, stride, 1,
                                    (width,) if granularity == "channel" else weight_score(width, in_ch, 3))
        self.bn1 = bn2d(width)
        self.conv2 = PrunableConv2d(width, out_ch, 3, 1, 1, weight_score(out_ch, width, 3))
        self.bn2 = bn2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                PrunableConv2d(in_ch, out_ch, 1, stride, 0, weight_score(out_ch, in_ch, 1)), bn2d(out_ch))

    def forward(self, x):
        out = F.relu(self.conv1.gate(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: the stride sits on the 3x3 conv, not on the first 1x1."""
    expansion = 4

    def __init__(self, in_ch, width, stride, granularity):
        super().__init__()
        out_ch = width * self.expansion

        def weight_score(o, i, k):
            return (o, i, k, k) if granularity == "weight" else None

        channel = granularity == "channel"
        self.conv1 = PrunableConv2d(in_ch, width, 1, 1, 0,
                                    (width,) if channel else weight_score(width, in_ch, 1))
        self.bn1 = bn2d(width)
        self.conv2 = PrunableConv2d(width, width, 3, stride, 1,
                                    (width,) if channel else weight_score(width, width, 3))
        self.bn2 = bn2d(width)
        self.conv3 = PrunableConv2d(width, out_ch, 1, 1, 0, weight_score(out_ch, width, 1))
        self.bn3 = bn2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                PrunableConv2d(in_ch, out_ch, 1, stride, 0, weight_score(out_ch, in_ch, 1)), bn2d(out_ch))

    def forward(self, x):
        out = F.relu(self.conv1.gate(self.bn1(self.conv1(x))))
        out = F.relu(self.conv2.gate(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class PrunableResNet(nn.Module):
    def __init__(self, config, granularity):
        super().__init__()
        assert granularity in ("weight", "channel")
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[config["arch"]]
        base, stem = config["base_width"], config["stem"]
        if stem == "small":
            k, stride, pad = 3, 1, 1
        elif stem in ("imagenet", "imagenet_nopool"):
            k, stride, pad = 7, 2, 3
        else:
            raise ValueError(f"unknown stem {stem!r}")
        # The stem is never channel-scored: its output is the residual stream of layer1.
        stem_score = (base, config["in_channels"], k, k) if granularity == "weight" else None
        self.conv1 = PrunableConv2d(config["in_channels"], base, k, stride, pad, stem_score)
        self.bn1 = bn2d(base)
        self.max_pool = stem == "imagenet"

        in_ch = base
        for stage, blocks in enumerate(config["layers"]):
            width = base * (2 ** stage)
            stride = 1 if stage == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(block(in_ch, width, stride if b == 0 else 1, granularity))
                in_ch = width * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))

        d = config["feature_dim"]
        self.projector = nn.Linear(in_ch, d, bias=True)
        self.feature_bn = nn.BatchNorm1d(d, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.classifier = nn.Linear(d, config["num_classes"], bias=True)
        self.num_stages = len(config["layers"])

    def prunable_convs(self):
        return [(name, m) for name, m in self.named_modules()
                if isinstance(m, PrunableConv2d) and m.score is not None]

    def set_capacity(self, capacity):
        for _, conv in self.prunable_convs():
            conv.capacity = capacity

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.max_pool:
            x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for stage in range(self.num_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        feature = self.feature_bn(self.projector(x))
        return self.classifier(feature), feature


def model_state(model):
    """Parameters and running statistics by name, without num_batches_tracked (not part of the format)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def load_state(model, state):
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                tensor.copy_(state[name])


# ----------------------------------------------------------------------------------------------------
# Initial values
# ----------------------------------------------------------------------------------------------------

def uniform(gen, shape, low, high):
    return torch.rand(shape, generator=gen) * (high - low) + low


def initial_state(config, seed):
    """All parameters, running statistics and both granularities' scores, drawn in a fixed order.

    The weights follow PyTorch's default init (kaiming-uniform with a = sqrt(5), i.e. U(+-1/sqrt(fan_in)),
    and the same bound for a Linear's bias); BN affine parameters and running statistics are drawn away
    from their defaults (1, 0, 0, 1) so that a swapped or ignored tensor changes the result. Scores are
    U(-1, 1), which has no ties with probability one, so mask counts are exact.
    """
    gen = torch.Generator().manual_seed(seed)
    model = PrunableResNet(config, "weight")
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        shape = tensor.shape
        if name.endswith(".score"):
            value = uniform(gen, shape, -1.0, 1.0)
        elif name.endswith("running_mean"):
            value = uniform(gen, shape, -0.1, 0.1)
        elif name.endswith("running_var"):
            value = uniform(gen, shape, 0.5, 1.5)
        elif tensor.dim() == 1 and name.endswith(".weight"):  # BN gamma
            value = uniform(gen, shape, 0.5, 1.5)
        elif name.startswith(("projector", "classifier")) and name.endswith(".bias"):
            fan_in = state[name[:-len("bias")] + "weight"].shape[1]
            bound = 1.0 / math.sqrt(fan_in)
            value = uniform(gen, shape, -bound, bound)
        elif name.endswith(".bias"):  # BN beta
            value = uniform(gen, shape, -0.2, 0.2)
        else:  # conv or linear weight
            fan_in = int(np.prod(shape[1:]))
            bound = 1.0 / math.sqrt(fan_in)
            value = uniform(gen, shape, -bound, bound)
        state[name] = value

    channel_model = PrunableResNet(config, "channel")
    channel_scores = {f"{name}.score": uniform(gen, conv.score.shape, -1.0, 1.0)
                      for name, conv in channel_model.prunable_convs()}
    return state, channel_scores


# ----------------------------------------------------------------------------------------------------
# Running a case
# ----------------------------------------------------------------------------------------------------

def build(config, granularity, state, channel_scores):
    model = PrunableResNet(config, granularity)
    full = {k: v for k, v in state.items() if not k.endswith(".score")}
    if granularity == "weight":
        full.update({k: v for k, v in state.items() if k.endswith(".score")})
    else:
        full.update(channel_scores)
    load_state(model, full)
    model.train()  # batch statistics
    return model


def run_case(config, granularity, capacity, state, channel_scores, x, labels):
    model = build(config, granularity, state, channel_scores)
    model.set_capacity(capacity)
    logits, feature = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    kept = {f"{name}.score": int(conv.mask.sum().item()) for name, conv in model.prunable_convs()}
    grads = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        grads[name] = p.grad.detach().clone()
    running = {k: v for k, v in model_state(model).items() if "running_" in k}
    return {"model": model, "kept": kept, "logits": logits.detach(), "feature": feature.detach(),
            "loss": loss.item(), "grads": grads, "running_after": running}


# ----------------------------------------------------------------------------------------------------
# Self-checks: each recomputes something the fixture asserts by a route that does not share the code
# under test (numpy for the masks, autograd on a leaf W_eff and central differences for the STE).
# ----------------------------------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def expect_close(what, got, want, rtol, atol=0.0):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    if got.shape != want.shape or not np.all(err <= bound):
        worst = float(np.max(err - bound)) if got.shape == want.shape else float("nan")
        raise CheckFailed(f"{what}: mismatch (shapes {got.shape} vs {want.shape}, worst excess {worst:g})")


def check_masks(model, capacity, kept):
    for name, conv in model.prunable_convs():
        s = conv.score.detach().numpy().ravel()
        n = s.size
        raw = (1.0 - capacity) * (n - 1)
        # Both kinds of half are worth having in a fixture, and both are reported so a mismatch in the
        # C++ tests can be traced here: an exact .5 pins round-half-even; a value a few ulps off .5 pins
        # that s*(n-1) is evaluated as float64 (1.0 - c) * (n - 1), as engine/ops/select.h documents
        # (e.g. (1 - 0.7) * 35 = 10.500000000000002 rounds up to 11, where exact arithmetic gives 10).
        frac = raw - math.floor(raw)
        if capacity < 1.0 and frac == 0.5:
            print(f"  note: {name} at capacity {capacity}: s*(n-1) = {raw!r}, exact half, rounds to even")
        elif capacity < 1.0 and abs(frac - 0.5) < 1e-9:
            print(f"  note: {name} at capacity {capacity}: s*(n-1) = {raw!r}, float64 rounding decides "
                  f"(rounds to {int(round(raw))})")
        k = 1 if capacity >= 1.0 else 1 + int(np.round(raw))  # numpy rounds half to even too
        mags = np.sort(np.abs(s))
        if len(np.unique(mags)) != n:
            raise CheckFailed(f"{name}: tied |scores|, the kept count would not be n - k + 1")
        tau = mags[k - 1]
        want_mask = (np.abs(s) >= tau).astype(np.float64)
        expect_close(f"{name} mask", conv.mask.numpy().ravel(), want_mask, 0.0)
        if kept[f"{name}.score"] != n - k + 1:
            raise CheckFailed(f"{name}: kept {kept[name + '.score']} != n - k + 1 = {n - k + 1}")


def check_ste(config, granularity, capacity, state, channel_scores, x, labels, result):
    """Recompute dL/dW_eff with each scored conv's W_eff as a plain leaf (no custom Function), then
    apply the STE formulas by hand and compare with what MaskedWeight produced; confirm dL/dW_eff itself
    by central differences on a few entries of one layer, pruned entries included."""
    model = build(config, granularity, state, channel_scores)
    model.set_capacity(capacity)
    convs = model.prunable_convs()
    leaves = {}
    with torch.no_grad():
        for name, conv in convs:
            mask = capacity_mask(conv.score, capacity)
            m = mask.view(-1, 1, 1, 1) if conv.per_channel else mask
            leaves[name] = (conv.weight * m).clone().requires_grad_(True)
            conv.weight_override = leaves[name]
    logits, _ = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    expect_close(f"{granularity} {capacity} loss via leaf W_eff", loss.item(), result["loss"], 1e-14)

    for name, conv in convs:
        g = leaves[name].grad.numpy()
        w = conv.weight.detach().numpy()
        s = conv.score.detach().numpy()
        mask = conv.mask.numpy()
        if conv.per_channel:
            want_w = mask[:, None, None, None] * g
            want_s = np.sign(s) * (w * g).reshape(w.shape[0], -1).sum(axis=1)
        else:
            want_w = mask * g
            want_s = np.sign(s) * w * g
        expect_close(f"{name}.weight STE grad", result["grads"][f"{name}.weight"].numpy(), want_w,
                     1e-12, 1e-15)
        expect_close(f"{name}.score STE grad", result["grads"][f"{name}.score"].numpy(), want_s,
                     1e-12, 1e-15)

    # Central differences on the leaf: the loss is smooth in W_eff away from ReLU/max-pool kinks, which
    # random data avoids; picking a pruned entry checks that its dL/dW_eff (what feeds dL/dS) is real.
    name, conv = convs[len(convs) // 2]
    leaf, mask = leaves[name], conv.mask
    flat_mask = (mask.view(-1, 1, 1, 1).expand_as(leaf) if conv.per_channel else mask).reshape(-1)
    picks = [int(torch.nonzero(flat_mask == 1)[0]), int(torch.nonzero(flat_mask == 1)[-1])]
    if (flat_mask == 0).any():
        picks.append(int(torch.nonzero(flat_mask == 0)[0]))
    h = 1e-6
    for i in picks:
        def loss_at(delta):
            with torch.no_grad():
                saved = leaf.view(-1)[i].item()
                leaf.view(-1)[i] = saved + delta
                out, _ = model(x)
                leaf.view(-1)[i] = saved
                return F.cross_entropy(out, labels).item()
        numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
        expect_close(f"{name} dL/dW_eff[{i}] central difference", leaf.grad.view(-1)[i].item(), numeric,
                     1e-6, 1e-9)


def check_param_grads(config, granularity, capacity, state, channel_scores, x, labels, result):
    """Central differences on a few entries of non-score tensors: masks depend on S only, so the loss is
    a genuine smooth function of W, BN and head parameters, and autograd must match it."""
    model = build(config, granularity, state, channel_scores)
    model.set_capacity(capacity)
    params = dict(model.named_parameters())
    names = [n for n in params if not n.endswith(".score")]
    chosen = [names[0], names[len(names) // 3], names[len(names) // 2], "projector.weight",
              "feature_bn.weight", "feature_bn.bias", "classifier.bias"]
    h = 1e-6
    for name in chosen:
        p = params[name]
        for i in (0, p.numel() - 1):
            def loss_at(delta):
                with torch.no_grad():
                    saved = p.view(-1)[i].item()
                    p.view(-1)[i] = saved + delta
                    out, _ = model(x)
                    p.view(-1)[i] = saved
                    return F.cross_entropy(out, labels).item()
            numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
            analytic = result["grads"][name].view(-1)[i].item()
            expect_close(f"{granularity} {capacity} d/d{name}[{i}] central difference", analytic, numeric,
                         1e-5, 1e-9)


def check_extras(result, granularity, capacity):
    for name, g in result["grads"].items():
        if not torch.isfinite(g).all():
            raise CheckFailed(f"{name}: non-finite gradient")
    if granularity == "channel":
        # A pruned filter's BN channel is gated to zero, so its gamma and beta see no gradient.
        for name, conv in result["model"].prunable_convs():
            bn = name[:-len("conv1")] + "bn1" if name.endswith("conv1") else name[:-len("conv2")] + "bn2"
            pruned = conv.mask == 0
            for part in ("weight", "bias"):
                if (result["grads"][f"{bn}.{part}"][pruned] != 0).any():
                    raise CheckFailed(f"{bn}.{part}: gradient on a pruned channel")


def check_against_torchvision(config, capacity, state, x, labels, result):
    """Weight granularity only: rebuild the network from torchvision's own BasicBlock/Bottleneck with the
    masked weights M * W loaded as plain weights. Logits, loss and gradients must agree (dL/dW = M * the
    plain conv's gradient), which confirms the block wiring (stride placement, v1.5, downsample) and the
    names independently of the classes above. Optional: skipped when torchvision is not installed."""
    try:
        from torchvision.models import resnet as tvr
    except ImportError:
        print("  (torchvision not installed: cross-check against torchvision's blocks skipped)")
        return
    block = {"basic": tvr.BasicBlock, "bottleneck": tvr.Bottleneck}[config["arch"]]
    base, stem = config["base_width"], config["stem"]
    k, stride, pad = (3, 1, 1) if stem == "small" else (7, 2, 3)
    net = nn.Module()
    net.conv1 = nn.Conv2d(config["in_channels"], base, k, stride, pad, bias=False)
    net.bn1 = nn.BatchNorm2d(base)
    in_ch = base
    for stage, blocks in enumerate(config["layers"]):
        width, layer = base * 2 ** stage, []
        for b in range(blocks):
            s = (1 if stage == 0 else 2) if b == 0 else 1
            out_ch = width * block.expansion
            down = None
            if s != 1 or in_ch != out_ch:
                down = nn.Sequential(tvr.conv1x1(in_ch, out_ch, s), nn.BatchNorm2d(out_ch))
            layer.append(block(in_ch, width, s, down))
            in_ch = out_ch
        setattr(net, f"layer{stage + 1}", nn.Sequential(*layer))
    net.projector = nn.Linear(in_ch, config["feature_dim"])
    net.feature_bn = nn.BatchNorm1d(config["feature_dim"])
    net.classifier = nn.Linear(config["feature_dim"], config["num_classes"])

    masks = {f"{name}.weight": conv.mask for name, conv in result["model"].prunable_convs()}
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                tensor.copy_(state[name] * masks[name] if name in masks else state[name])
    net.train()
    h = F.relu(net.bn1(net.conv1(x)))
    if stem == "imagenet":
        h = F.max_pool2d(h, 3, 2, 1)
    for stage in range(len(config["layers"])):
        h = getattr(net, f"layer{stage + 1}")(h)
    logits = net.classifier(net.feature_bn(net.projector(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    expect_close(f"torchvision {capacity} logits", logits.detach().numpy(), result["logits"].numpy(), 1e-12,
                 1e-14)
    expect_close(f"torchvision {capacity} loss", loss.item(), result["loss"], 1e-13)
    for name, p in net.named_parameters():
        want = p.grad * masks[name] if name in masks else p.grad
        expect_close(f"torchvision {capacity} grad {name}", result["grads"][name].numpy(), want.numpy(),
                     1e-10, 1e-14)


# ----------------------------------------------------------------------------------------------------
# Fixtures and JSON output
# ----------------------------------------------------------------------------------------------------

FIXTURES = [
    {
        "file": "prunable_resnet_basic.json",
        "config": {"arch": "basic", "layers": [1, 1, 1, 1], "stem": "small", "in_channels": 1,
                   "base_width": 2, "feature_dim": 6, "num_classes": 5},
        "input_shape": [3, 1, 16, 16],
        "seed": 1001,
        "cases": [("weight", 1.0), ("weight", 0.6), ("channel", 0.5)],
    },
    {
        "file": "prunable_resnet_bottleneck.json",
        "config": {"arch": "bottleneck", "layers": [1, 1, 1, 1], "stem": "imagenet", "in_channels": 3,
                   "base_width": 2, "feature_dim": 6, "num_classes": 4},
        "input_shape": [4, 3, 32, 32],
        "seed": 1002,
        "cases": [("weight", 0.7), ("channel", 0.5)],
    },
]


class Tensor:
    """Marks a value to be written as {"shape", "data"} on one line."""

    def __init__(self, t):
        self.t = t.detach().to(torch.float64).contiguous()


def fmt_float(v):
    if not math.isfinite(v):
        raise CheckFailed(f"non-finite value {v} cannot be written as JSON")
    return repr(float(v))


def to_json(obj, indent=0):
    """JSON with structure indented and each tensor on one line, so diffs stay readable per tensor."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, Tensor):
        data = ",".join(fmt_float(v) for v in obj.t.reshape(-1).tolist())
        return f'{{"shape":{json.dumps(list(obj.t.shape))},"data":[{data}]}}'
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(isinstance(v, (int, float, str)) for v in obj):
            return "[" + ",".join(fmt_float(v) if isinstance(v, float) else json.dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, float):
        return fmt_float(obj)
    return json.dumps(obj)


def make_fixture(spec):
    config = dict(spec["config"])
    state, channel_scores = initial_state(config, spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"] + 500)
    x = uniform(gen, spec["input_shape"], -1.0, 1.0)
    labels = torch.randint(config["num_classes"], (spec["input_shape"][0],), generator=gen)

    cases = []
    for granularity, capacity in spec["cases"]:
        result = run_case(config, granularity, capacity, state, channel_scores, x, labels)
        check_masks(result["model"], capacity, result["kept"])
        check_ste(config, granularity, capacity, state, channel_scores, x, labels, result)
        check_param_grads(config, granularity, capacity, state, channel_scores, x, labels, result)
        check_extras(result, granularity, capacity)
        if granularity == "weight":
            check_against_torchvision(config, capacity, state, x, labels, result)
        print(f"  {granularity:7s} capacity {capacity}: loss {result['loss']!r}, kept {result['kept']}")
        cases.append({
            "granularity": granularity,
            "capacity": capacity,
            "kept": result["kept"],
            "logits": Tensor(result["logits"]),
            "feature": Tensor(result["feature"]),
            "loss": result["loss"],
            "grads": {k: Tensor(v) for k, v in result["grads"].items()},
            "running_after": {k: Tensor(v) for k, v in result["running_after"].items()},
        })

    # Nesting: along one ranking a smaller capacity keeps a subset of a larger one's weights.
    by_gran = {}
    for (granularity, capacity), case in zip(spec["cases"], cases):
        by_gran.setdefault(granularity, []).append((capacity, case["kept"]))
    for granularity, entries in by_gran.items():
        entries.sort()
        for (_, small), (_, large) in zip(entries, entries[1:]):
            if any(small[k] > large[k] for k in small):
                raise CheckFailed(f"{granularity}: kept counts not monotone in capacity")

    out_config = dict(config, bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM, dtype="float64", seed=spec["seed"])
    return {
        "config": out_config,
        "input": Tensor(x),
        "labels": [int(v) for v in labels.tolist()],
        "params": {k: Tensor(v) for k, v in state.items()},
        "channel_scores": {k: Tensor(v) for k, v in channel_scores.items()},
        "cases": cases,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="tests/golden", help="where to write the JSON fixtures")
    parser.add_argument("--check", action="store_true", help="run the self-checks, write nothing")
    args = parser.parse_args()

    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one summation order, so reruns reproduce the same bits

    for spec in FIXTURES:
        print(f"{spec['file']}:")
        try:
            fixture = make_fixture(spec)
        except CheckFailed as e:
            print(f"SELF-CHECK FAILED: {e}", file=sys.stderr)
            return 1
        if args.check:
            continue
        os.makedirs(args.out_dir, exist_ok=True)
        path = os.path.join(args.out_dir, spec["file"])
        text = to_json(fixture) + "\n"
        json.loads(text)  # the writer is hand-rolled; make sure it is JSON
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print(f"  wrote {path} ({os.path.getsize(path)} bytes)")
    print("all self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
