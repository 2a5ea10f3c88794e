#!/usr/bin/env python3
# Reads a model checkpoint written by the engine (models/checkpoint.h) with the reference `safetensors`
# package: checks the metadata (format, version, model config), that the tensors the config implies are there
# with consistent shapes, and prints the config and a few tensors. Developer tool, never run by the tests:
# pip install safetensors numpy.   Usage: python3 tools/golden/check_model_checkpoint.py CKPT [CKPT ...]
import json
import sys

import numpy as np
from safetensors import safe_open


def capacity_key(c):
    # models/config.cpp capacity_key: six decimals, trailing zeros trimmed down to two ("0.80", "0.125").
    s = f"{c:.6f}"
    while len(s) > 4 and s.endswith("0"):
        s = s[:-1]
    return s


def expected_shapes(cfg):
    """The shape of every conv weight and BatchNorm weight the config implies, by name (full models)."""
    shapes = {}
    big_stem = cfg["stem"] != "small"
    width = cfg["base_width"]
    k = 7 if big_stem else 3
    shapes["conv1.weight"] = [width, cfg["in_channels"], k, k]
    shapes["bn1.weight"] = [width]
    expansion = 4 if cfg["block"] == "bottleneck" else 1
    inner = cfg.get("inner_widths") or {}
    cin = width
    for s, blocks in enumerate(cfg["layers"]):
        planes = width << s
        for i in range(blocks):
            p = f"layer{s + 1}.{i}"
            stride = 2 if (s > 0 and i == 0) else 1
            if cfg["block"] == "basic":
                w1 = inner.get(f"{p}.conv1", planes)
                shapes[f"{p}.conv1.weight"] = [w1, cin, 3, 3]
                shapes[f"{p}.conv2.weight"] = [planes, w1, 3, 3]
                shapes[f"{p}.bn1.weight"], shapes[f"{p}.bn2.weight"] = [w1], [planes]
            else:
                w1, w2 = inner.get(f"{p}.conv1", planes), inner.get(f"{p}.conv2", planes)
                shapes[f"{p}.conv1.weight"] = [w1, cin, 1, 1]
                shapes[f"{p}.conv2.weight"] = [w2, w1, 3, 3]
                shapes[f"{p}.conv3.weight"] = [planes * 4, w2, 1, 1]
                shapes[f"{p}.bn1.weight"], shapes[f"{p}.bn2.weight"] = [w1], [w2]
                shapes[f"{p}.bn3.weight"] = [planes * 4]
            if stride != 1 or cin != planes * expansion:
                shapes[f"{p}.downsample.0.weight"] = [planes * expansion, cin, 1, 1]
                shapes[f"{p}.downsample.1.weight"] = [planes * expansion]
            cin = planes * expansion
    shapes["projector.weight"] = [cfg["feature_dim"], cin]
    shapes["feature_bn.weight"] = [cfg["feature_dim"]]
    shapes["classifier.weight"] = [cfg["num_classes"], cfg["feature_dim"]]
    return shapes


def describe(name, a):
    flat = a.reshape(-1)
    head = ", ".join(f"{v:.6g}" for v in flat[:4])
    return (f"  {name:<36} {str(a.dtype):<8} {str(list(a.shape)):<16} "
            f"sum={float(a.astype(np.float64).sum()):.9g}  [{head}{', ...' if flat.size > 4 else ''}]")


def check(path):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
        names = set(f.keys())
        assert meta.get("format") == "scpn-model", f"metadata 'format' is {meta.get('format')!r}, 'scpn-model' expected"
        assert meta.get("format_version") == "1", f"metadata 'format_version' is {meta.get('format_version')!r}"
        cfg = json.loads(meta["model_config"])
        print(f"{path}: {len(names)} tensors, read by the safetensors package")
        print(f"  format {meta['format']} version {meta['format_version']}")
        print(f"  model_config {json.dumps(cfg, sort_keys=True)}")
        for key in sorted(set(meta) - {"format", "format_version", "model_config"}):
            print(f"  metadata {key} = {meta[key]}")

        # The tensors the config implies, with their shapes; BatchNorm buffers for every listed capacity.
        shapes = expected_shapes(cfg)
        for name, shape in shapes.items():
            assert name in names, f"tensor '{name}' missing"
            got = list(f.get_slice(name).get_shape())
            assert got == shape, f"tensor '{name}': shape {got}, {shape} expected from the config"
        bns = [n[: -len(".weight")] for n in shapes if n.endswith(".weight") and len(shapes[n]) == 1]
        suffixes = ["running_mean", "running_var"]
        for c in cfg["bn_capacities"]:
            suffixes += [f"running_mean@{capacity_key(c)}", f"running_var@{capacity_key(c)}"]
        for bn in bns:
            for s in ["bias"] + suffixes:
                assert f"{bn}.{s}" in names, f"tensor '{bn}.{s}' missing"
        scores = sorted(n for n in names if n.endswith(".score"))
        dtypes = sorted({str(f.get_tensor(n).dtype) for n in names})
        print(f"  checked: {len(shapes)} conv/BN/linear shapes from the config, {len(bns)} BatchNorms x "
              f"{len(suffixes)} statistics buffers, {len(scores)} score tensors ({cfg['granularity']} granularity), "
              f"dtypes {dtypes}")

        shown = ["conv1.weight", "layer1.0.conv1.score", "layer1.0.bn1.running_mean"]
        if cfg["bn_capacities"]:
            shown.append(f"layer1.0.bn1.running_mean@{capacity_key(cfg['bn_capacities'][0])}")
        shown += ["projector.weight", "classifier.bias"]
        for name in shown:
            if name in names:
                print(describe(name, f.get_tensor(name)))


def main():
    if len(sys.argv) < 2:
        print("usage: check_model_checkpoint.py CKPT [CKPT ...]")
        return 2
    status = 0
    for path in sys.argv[1:]:
        try:
            check(path)
        except Exception as e:  # report and go on with the next file
            print(f"{path}: REFUSED: {type(e).__name__}: {e}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
