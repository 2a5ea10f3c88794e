#!/usr/bin/env python3
# Writes a ResNet-18 state dict as safetensors, the way a PyTorch user would hand one to us: with torch
# and torchvision when they are installed (torchvision.models.resnet18().state_dict(), random init, no
# download), otherwise with numpy and torchvision's exact names, shapes and dtypes. Developer tool, not
# committed output (~47 MB):  python3 tools/golden/make_resnet18_state_dict.py OUT && inspect_safetensors OUT
import sys

import numpy as np


def numpy_resnet18(num_classes=1000):
    rng = np.random.default_rng(0)
    sd = {}

    def conv(name, cout, cin, k):
        sd[name] = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = np.ones(c, np.float32)
        sd[f"{name}.bias"] = np.zeros(c, np.float32)
        sd[f"{name}.running_mean"] = (rng.standard_normal(c) * 0.1).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(0, np.int64)  # 0-d, as PyTorch stores it

    conv("conv1.weight", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for layer, cout in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride_or_widen = block == 0 and (layer > 1)
            conv(f"{p}.conv1.weight", cout, cin, 3)
            bn(f"{p}.bn1", cout)
            conv(f"{p}.conv2.weight", cout, cout, 3)
            bn(f"{p}.bn2", cout)
            if stride_or_widen:
                conv(f"{p}.downsample.0.weight", cout, cin, 1)
                bn(f"{p}.downsample.1", cout)
            cin = cout
    sd["fc.weight"] = (rng.standard_normal((num_classes, 512)) * 0.01).astype(np.float32)
    sd["fc.bias"] = np.zeros(num_classes, np.float32)
    return sd


def main():
    if len(sys.argv) != 2:
        print("usage: make_resnet18_state_dict.py OUT.safetensors")
        return 2
    out = sys.argv[1]
    try:
        import torchvision
        from safetensors.torch import save_file
        save_file(torchvision.models.resnet18().state_dict(), out, metadata={"source": "torchvision"})
        print(f"wrote {out} from torchvision")
    except ImportError:
        from safetensors.numpy import save_file
        save_file(numpy_resnet18(), out, metadata={"source": "numpy, torchvision names"})
        print(f"wrote {out} with numpy (torch/torchvision not installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
