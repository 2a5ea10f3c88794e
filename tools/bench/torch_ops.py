#!/usr/bin/env python3
"""PyTorch's timings of the rows tools/bench_cuda_ops measures: the same shapes, row names and output format,
so that tools/device_check.sh can join the two and print ours/torch ratios. A developer tool run on the GPU
machine; the build and the tests never need it (nor PyTorch).

f32 with TF32 allowed (torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32) and
cudnn.benchmark on, like the engine's default math mode. Convolution and batch-norm rows time forward +
backward with the input and the weights requiring grad; CUDA events around each run on the current stream,
median of the timed runs after 2 warm-ups.

Usage: torch_ops.py [--quick] [--reps N] [--only GROUP[,GROUP...]] [--list]
  --list prints the shape tables (no PyTorch needed) to compare with tools/bench_cuda_ops.cpp.
Output lines: row <name> torch <median ms> <rate> <TFLOP/s|GB/s> <floor ms> <% of copy or ->   (tab-separated)
"""
import argparse
import sys

# (name, r18 count, r50 count, cin, cout, in_hw, kernel, stride, pad): tools/bench_cuda_ops.cpp's kConvShapes.
CONV_SHAPES = [
    ("stem_7x7s2_3-64@224", 1, 1, 3, 64, 224, 7, 2, 3),
    ("3x3_64-64@56", 4, 3, 64, 64, 56, 3, 1, 1),
    ("3x3s2_64-128@56", 1, 0, 64, 128, 56, 3, 2, 1),
    ("3x3_128-128@28", 3, 3, 128, 128, 28, 3, 1, 1),
    ("1x1s2_64-128@56", 1, 0, 64, 128, 56, 1, 2, 0),
    ("3x3s2_128-256@28", 1, 0, 128, 256, 28, 3, 2, 1),
    ("3x3_256-256@14", 3, 5, 256, 256, 14, 3, 1, 1),
    ("1x1s2_128-256@28", 1, 0, 128, 256, 28, 1, 2, 0),
    ("3x3s2_256-512@14", 1, 0, 256, 512, 14, 3, 2, 1),
    ("3x3_512-512@7", 3, 2, 512, 512, 7, 3, 1, 1),
    ("1x1s2_256-512@14", 1, 0, 256, 512, 14, 1, 2, 0),
    ("1x1_64-64@56", 0, 1, 64, 64, 56, 1, 1, 0),
    ("1x1_64-256@56", 0, 4, 64, 256, 56, 1, 1, 0),
    ("1x1_256-64@56", 0, 2, 256, 64, 56, 1, 1, 0),
    ("1x1_256-128@56", 0, 1, 256, 128, 56, 1, 1, 0),
    ("3x3s2_128-128@56", 0, 1, 128, 128, 56, 3, 2, 1),
    ("1x1_128-512@28", 0, 4, 128, 512, 28, 1, 1, 0),
    ("1x1s2_256-512@56", 0, 1, 256, 512, 56, 1, 2, 0),
    ("1x1_512-128@28", 0, 3, 512, 128, 28, 1, 1, 0),
    ("1x1_512-256@28", 0, 1, 512, 256, 28, 1, 1, 0),
    ("3x3s2_256-256@28", 0, 1, 256, 256, 28, 3, 2, 1),
    ("1x1_256-1024@14", 0, 6, 256, 1024, 14, 1, 1, 0),
    ("1x1s2_512-1024@28", 0, 1, 512, 1024, 28, 1, 2, 0),
    ("1x1_1024-256@14", 0, 5, 1024, 256, 14, 1, 1, 0),
    ("1x1_1024-512@14", 0, 1, 1024, 512, 14, 1, 1, 0),
    ("3x3s2_512-512@14", 0, 1, 512, 512, 14, 3, 2, 1),
    ("1x1_512-2048@7", 0, 3, 512, 2048, 7, 1, 1, 0),
    ("1x1s2_1024-2048@14", 0, 1, 1024, 2048, 14, 1, 2, 0),
    ("1x1_2048-512@7", 0, 2, 2048, 512, 7, 1, 1, 0),
]
CONV_BATCH = 64
BN_SHAPES = [(64, 64, 112, 112), (64, 256, 56, 56), (64, 512, 28, 28), (64, 1024, 14, 14), (64, 2048, 7, 7)]
# (name, trans_a, trans_b, m, n, k): C[m,n] = op(A)·op(B), A stored m×k (k×m if transposed), B k×n (n×k).
GEMM_SHAPES = [
    ("sq2048_NN", False, False, 2048, 2048, 2048),
    ("sq4096_NN", False, False, 4096, 4096, 4096),
    ("sq8192_NN", False, False, 8192, 8192, 8192),
    ("fc50_fwd_64x1000x2048_NT", False, True, 64, 1000, 2048),
    ("fc50_dx_64x2048x1000_NN", False, False, 64, 2048, 1000),
    ("fc50_dw_1000x2048x64_TN", True, False, 1000, 2048, 64),
    ("fc18_fwd_64x1000x512_NT", False, True, 64, 1000, 512),
]
MATRIX_CEILING_GEMM = "sq8192_NN"
BIG = 64 << 20  # 64 Mi floats = 256 MiB, far larger than L2
REDUCE_SHAPES = [
    ("sum_all_64Mi", 1, BIG, 1),
    ("sum_rows_65536x1024", 65536, 1024, 1),
    ("sum_rows_16384x4096", 16384, 4096, 1),
    ("sum_cols_65536x1024", 1, 65536, 1024),
    ("sum_mid_64x256x4096", 64, 256, 4096),
]
GROUPS = ["copy", "conv", "bn", "gemm", "elementwise", "reduce"]


def conv_out(hw, k, s, p):
    return (hw + 2 * p - k) // s + 1


class Bench:
    def __init__(self, torch, reps):
        self.torch = torch
        self.reps = reps
        self.copy_gbs = 0.0
        self.matrix_tflops = 0.0
        self.failures = 0
        self.dev = torch.device("cuda", 0)

    def time(self, fn, warmup=2):
        torch = self.torch
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(self.reps):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        times.sort()
        return times[len(times) // 2]

    def rand(self, *shape, low=-1.0, high=1.0):
        return self.torch.rand(*shape, device=self.dev, dtype=self.torch.float32) * (high - low) + low

    def emit(self, name, ms, flop=0.0, nbytes=0.0):
        if flop > 0:
            rate, unit = flop / (ms * 1e9), "TFLOP/s"
            rate_s = "%.1f" % rate
        elif nbytes > 0:
            rate, unit = nbytes / (ms * 1e6), "GB/s"
            rate_s = "%.0f" % rate
        else:
            rate, unit, rate_s = 0.0, "-", "-"
        floor = 0.0
        if flop > 0 and self.matrix_tflops > 0:
            floor = max(floor, flop / (self.matrix_tflops * 1e9))
        if nbytes > 0 and self.copy_gbs > 0:
            floor = max(floor, nbytes / (self.copy_gbs * 1e6))
        pct = "%.0f" % (100.0 * rate / self.copy_gbs) if (flop == 0 and nbytes > 0 and self.copy_gbs > 0) else "-"
        floor_s = "%.4f" % floor if floor > 0 else "-"
        print("row\t%s\ttorch\t%.4f\t%s\t%s\t%s\t%s" % (name, ms, rate_s, unit, floor_s, pct), flush=True)

    def guard(self, what, fn):
        try:
            fn()
            return True
        except Exception as e:  # a row that fails (out of memory, a cuDNN error) must not stop the others
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print("error\t%s\t%s" % (what, msg), flush=True)
            print("torch_ops: %s failed: %s" % (what, msg), file=sys.stderr, flush=True)
            self.failures += 1
            return False

    def run_copy(self):
        def row():
            src, dst = self.rand(BIG), self.torch.empty(BIG, device=self.dev)
            ms = self.time(lambda: dst.copy_(src))
            nbytes = 2.0 * src.numel() * 4
            self.copy_gbs = nbytes / (ms * 1e6)
            self.emit("copy:d2d_256MiB", ms, nbytes=nbytes)
        self.guard("copy:d2d_256MiB", row)

    def run_gemm(self, quick):
        torch = self.torch
        ceiling_name = "sq4096_NN" if quick else MATRIX_CEILING_GEMM
        for name, ta, tb, m, n, k in GEMM_SHAPES:
            if quick and name == MATRIX_CEILING_GEMM:
                continue

            def row(name=name, ta=ta, tb=tb, m=m, n=n, k=k):
                a = self.rand(k, m) if ta else self.rand(m, k)
                b = self.rand(n, k) if tb else self.rand(k, n)
                c = torch.empty(m, n, device=self.dev)
                a_op = a.t() if ta else a
                b_op = b.t() if tb else b
                ms = self.time(lambda: torch.mm(a_op, b_op, out=c))
                flop = 2.0 * m * n * k
                if name == ceiling_name:
                    self.matrix_tflops = flop / (ms * 1e9)
                self.emit("gemm:" + name, ms, flop=flop, nbytes=4.0 * (a.numel() + b.numel() + c.numel()))
            self.guard("gemm:" + name, row)
        torch.cuda.empty_cache()

    def run_elementwise(self):
        torch = self.torch
        a, b, out = self.rand(BIG), self.rand(BIG), torch.empty(BIG, device=self.dev)
        nb = BIG * 4.0

        def threshold_backward():
            try:
                torch.ops.aten.threshold_backward.grad_input(a, b, 0, grad_input=out)
            except (AttributeError, RuntimeError, TypeError):
                torch.ops.aten.threshold_backward(a, b, 0)
        rows = [
            ("add_64Mi", lambda: torch.add(a, b, out=out), 3 * nb),
            ("mul_64Mi", lambda: torch.mul(a, b, out=out), 3 * nb),
            ("relu_backward_64Mi", threshold_backward, 3 * nb),
            ("relu_64Mi", lambda: torch.clamp(a, min=0, out=out), 2 * nb),
            ("axpy_64Mi", lambda: out.add_(a, alpha=0.5), 3 * nb),
        ]
        for name, fn, nbytes in rows:
            self.guard("elementwise:" + name,
                       lambda name=name, fn=fn, nbytes=nbytes: self.emit("elementwise:" + name, self.time(fn),
                                                                         nbytes=nbytes))

        def bcast():
            channel = self.rand(256).view(1, 256, 1)
            a3, o3 = a.view(64, 256, 4096), out.view(64, 256, 4096)
            ms = self.time(lambda: torch.add(a3, channel, out=o3))
            self.emit("elementwise:add_bcast_channel_64x256x4096", ms, nbytes=2 * nb)
        self.guard("elementwise:add_bcast_channel_64x256x4096", bcast)
        torch.cuda.empty_cache()

    def run_reduce(self):
        torch = self.torch
        x = self.rand(BIG)
        for name, outer, red, inner in REDUCE_SHAPES:
            def row(name=name, outer=outer, red=red, inner=inner):
                out = torch.empty(outer, inner, device=self.dev)
                xv = x.view(outer, red, inner)
                ms = self.time(lambda: torch.sum(xv, dim=1, out=out))
                self.emit("reduce:" + name, ms, nbytes=4.0 * (x.numel() + out.numel()))
            self.guard("reduce:" + name, row)
        torch.cuda.empty_cache()

    def run_bn(self):
        torch = self.torch
        F = torch.nn.functional
        for n, c, h, w in BN_SHAPES:
            name = "%dx%dx%dx%d" % (n, c, h, w)

            def row(n=n, c=c, h=h, w=w, name=name):
                x = self.rand(n, c, h, w).requires_grad_()
                dy = self.rand(n, c, h, w)
                weight = self.rand(c, low=0.5, high=1.5).requires_grad_()
                bias = self.rand(c).requires_grad_()
                rm = torch.zeros(c, device=self.dev)
                rv = torch.ones(c, device=self.dev)

                def forward():
                    with torch.no_grad():
                        F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)

                def step():
                    x.grad = weight.grad = bias.grad = None
                    y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)
                    y.backward(dy)
                tensor_bytes = 4.0 * x.numel()
                self.emit("bn.fwd:" + name, self.time(forward), nbytes=2 * tensor_bytes)
                self.emit("bn:" + name, self.time(step), nbytes=5 * tensor_bytes)
            self.guard("bn:" + name, row)
        torch.cuda.empty_cache()

    def run_conv(self, quick):
        torch = self.torch
        F = torch.nn.functional
        net_ms = [0.0, 0.0]
        net_complete = [True, True]
        for name, r18, r50, cin, cout, hw, k, s, p in CONV_SHAPES:
            if quick and r18 == 0:
                net_complete[1] = False
                continue
            result = {}

            def row(name=name, cin=cin, cout=cout, hw=hw, k=k, s=s, p=p):
                out_hw = conv_out(hw, k, s, p)
                x = self.rand(CONV_BATCH, cin, hw, hw).requires_grad_()
                w = self.rand(cout, cin, k, k, low=-0.1, high=0.1).requires_grad_()
                dy = self.rand(CONV_BATCH, cout, out_hw, out_hw)
                flop = 2.0 * CONV_BATCH * cout * out_hw * out_hw * cin * k * k
                nbytes = 4.0 * (x.numel() + w.numel() + dy.numel())

                def forward():
                    with torch.no_grad():
                        F.conv2d(x, w, None, s, p)

                def step():
                    x.grad = w.grad = None
                    F.conv2d(x, w, None, s, p).backward(dy)
                self.emit("conv.fwd:" + name, self.time(forward), flop=flop, nbytes=nbytes)
                ms = self.time(step)
                self.emit("conv:" + name, ms, flop=3 * flop, nbytes=3 * nbytes)
                result["ms"] = ms
            if self.guard("conv:" + name, row):
                net_ms[0] += r18 * result["ms"]
                net_ms[1] += r50 * result["ms"]
            else:
                net_complete[0] = net_complete[0] and r18 == 0
                net_complete[1] = net_complete[1] and r50 == 0
        for i, net in enumerate(["r18_all_convs", "r50_all_convs"]):
            if net_complete[i]:
                self.emit("net:" + net, net_ms[i])
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="ResNet-18 convolutions only, 5 timed runs per row")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per row (default 20, --quick 5)")
    ap.add_argument("--only", default="", help="comma-separated groups: " + ", ".join(GROUPS))
    ap.add_argument("--list", action="store_true", help="print the shape tables and exit (no PyTorch needed)")
    args = ap.parse_args()
    only = set(g for g in args.only.split(",") if g)
    unknown = only - set(GROUPS)
    if unknown:
        ap.error("--only: unknown group(s) %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(GROUPS)))
    if args.list:
        for row in CONV_SHAPES:
            print("conv\t" + "\t".join(str(v) for v in row))
        for row in GEMM_SHAPES:
            print("gemm\t" + "\t".join(str(v) for v in row))
        for row in BN_SHAPES:
            print("bn\t" + "\t".join(str(v) for v in row))
        return 0
    reps = args.reps if args.reps else (5 if args.quick else 20)

    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no PyTorch here"
        print("torch_ops: PyTorch is not importable (%s): no PyTorch rows" % e, file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_ops: torch %s sees no CUDA device: no PyTorch rows" % torch.__version__, file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(2026)
    props = torch.cuda.get_device_properties(0)
    print("# torch %s (CUDA %s, cuDNN %s) on %s, %d SMs; f32 with TF32 allowed, cudnn.benchmark on; "
          "median of %d timed runs after 2 warm-ups%s" % (
              torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), props.name,
              props.multi_processor_count, reps, ", --quick" if args.quick else ""), flush=True)
    print("# columns: row name impl ms rate unit floor_ms pct_of_copy", flush=True)

    def wants(g):
        return not only or g in only
    bench = Bench(torch, reps)
    bench.run_copy()
    if wants("gemm"):
        bench.run_gemm(args.quick)
    if wants("elementwise"):
        bench.run_elementwise()
    if wants("reduce"):
        bench.run_reduce()
    if wants("bn"):
        bench.run_bn()
    if wants("conv"):
        bench.run_conv(args.quick)
    print("# ceilings: copy %.0f GB/s, matrix %.1f TFLOP/s; %d row(s) failed" % (
        bench.copy_gbs, bench.matrix_tflops, bench.failures), flush=True)
    return 0 if bench.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
