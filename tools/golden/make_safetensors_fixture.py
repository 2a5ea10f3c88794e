#!/usr/bin/env python3
# Writes tests/data/safetensors/reference_numpy.safetensors with the reference `safetensors` package, so
# the C++ reader is tested on a file it did not write (test_safetensors.cpp checks every value below).
# Developer tool, never run by the tests: pip install safetensors numpy; run from the repository root.
import os

import numpy as np
from safetensors.numpy import save_file

OUT = "tests/data/safetensors/reference_numpy.safetensors"

# Names follow a torchvision ResNet state dict; values are exact in their dtype.
tensors = {
    "conv1.weight": ((np.arange(18, dtype=np.float32) - 9) / 4).reshape(2, 1, 3, 3),
    "bn1.running_mean": np.array([0.5, -1.25], dtype=np.float64),
    "bn1.num_batches_tracked": np.array(7, dtype=np.int64),  # 0-d, as PyTorch stores it
    "fc.bias": np.array([1.5, -2.0, 65504.0], dtype=np.float16),
    "labels": np.array([-3, 0, 5, 2147483647], dtype=np.int32),
    "mask": np.array([[0, 1], [254, 255]], dtype=np.uint8),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
metadata = {"arch": "tiny", "writer": "safetensors.numpy"}

os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file(tensors, OUT, metadata=metadata)
print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
