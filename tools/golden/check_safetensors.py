#!/usr/bin/env python3
# Loads safetensors files (e.g. written by our engine) with the reference `safetensors` package and prints each
# tensor's name, dtype, shape, a CRC-32 of its bytes and the sum of its values, plus the metadata.
# Developer tool, never run by the tests: pip install safetensors numpy (CPU torch optional).
# Usage: python3 tools/golden/check_safetensors.py FILE [FILE ...]   (exit status 1 if a file is refused)
import sys
import zlib

import numpy as np
from safetensors import deserialize, safe_open

# numpy has no bfloat16: those tensors are widened to float32 by hand (bf16 is f32's upper half).
NUMPY_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32,
                "I64": np.int64, "U8": np.uint8, "BF16": np.uint16}


def values_as_f64(dtype, shape, raw):
    a = np.frombuffer(raw, dtype=np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    if dtype == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64)


def check(path):
    with open(path, "rb") as f:
        raw_file = f.read()
    # The package's own parser validates the header and the layout and hands back every tensor's bytes.
    entries = deserialize(raw_file)
    # Also load through the numpy front-end for the dtypes numpy has, and compare with the raw bytes.
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
        for name, info in entries:
            if info["dtype"] != "BF16":
                arr = f.get_tensor(name)
                assert list(arr.shape) == list(info["shape"]), name
                assert arr.tobytes() == bytes(info["data"]), name
    print(f"{path}: {len(entries)} tensors, loaded by safetensors")
    for key in sorted(metadata):
        print(f"  metadata {key} = {metadata[key]}")
    for name, info in sorted(entries, key=lambda e: e[0]):
        data = bytes(info["data"])
        total = values_as_f64(info["dtype"], info["shape"], data).sum()
        print(f"  {name:<24} {info['dtype']:<5} {str(list(info['shape'])):<12} "
              f"crc32={zlib.crc32(data):08x} sum={total:.9g}")
    try:
        import torch  # optional: the path PyTorch users take
        from safetensors.torch import load_file
        state = load_file(path)
        print(f"  torch: loaded {len(state)} tensors ({', '.join(sorted({str(t.dtype) for t in state.values()}))})")
    except ImportError:
        print("  torch: not installed, skipped")


def main():
    if len(sys.argv) < 2:
        print("usage: check_safetensors.py FILE [FILE ...]")
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
