#!/usr/bin/env python3
"""The engine's SCPN training step against its PyTorch twin (tools/bench/scpn_step_twin.py), on the same
config, in the same process tree, one after the other.

    tools/bench/compare_step.py [--build build] [--runs 3] [--steps 3] [KEY=VALUE ...]

KEY=VALUE are train_scpn's config keys (model.base_width=16 train.batch_size=128 ...), passed to
tools/bench_step. First the twin is checked: bench_step saves its first step (integration.fixed_order=true)
and the twin redoes it and compares losses and gradients; a mismatch stops the script (exit 1). Then each
run times ours (bench_step) and the twin, each in its own process, with the default random integration
orders, and prints both images/s and their ratio. The last line is the median ratio over the runs.
Run on an otherwise idle machine: both use every core, and anything else running skews the figures.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, show):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if show or p.returncode != 0:
        sys.stdout.write(p.stdout)
    if p.returncode != 0:
        raise SystemExit(f"compare_step: {' '.join(cmd)} exited with {p.returncode}")
    return p.stdout


def images_per_second(output, who):
    m = re.search(r"^images/s: ([0-9.]+)$", output, re.M)
    if not m:
        raise SystemExit(f"compare_step: no 'images/s:' line in the output of {who}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="the build folder holding tools/bench_step (default: build)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run, after one warm-up step (default 3)")
    ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                    help="the Python with torch that runs the twin (default: Debian's /usr/bin/python3)")
    ap.add_argument("--tables", choices=["first", "all", "none"], default="first",
                    help="print the per-phase tables of the first run (default), of all runs, or none")
    ap.add_argument("overrides", nargs="*", help="train_scpn config keys, KEY=VALUE")
    args = ap.parse_args()
    bench_step = os.path.join(args.build, "tools", "bench_step")
    if not os.path.exists(bench_step):
        raise SystemExit(f"compare_step: {bench_step} not found; build it (cmake --build {args.build} --target "
                         "bench_step) or pass --build")
    twin = [args.python, os.path.join(HERE, "scpn_step_twin.py")]
    folder = tempfile.mkdtemp(prefix="compare_step.")
    try:
        print(f"compare_step: {' '.join(args.overrides) or '(train_scpn defaults)'}; {args.runs} runs of "
              f"{args.steps} steps each")
        run([bench_step, "--steps", "0", "--save-first-step", folder] + args.overrides
            + ["integration.fixed_order=true"], show=False)
        run(twin + [folder, "--check"], show=True)
        ratios = []
        for r in range(1, args.runs + 1):
            show = args.tables == "all" or (args.tables == "first" and r == 1)
            ours = images_per_second(run([bench_step, "--steps", str(args.steps)] + args.overrides, show), "bench_step")
            torch = images_per_second(run(twin + [folder, "--steps", str(args.steps), "--random-order"], show),
                                      "the twin")
            ratios.append(ours / torch)
            print(f"run {r}: ours {ours:.1f} images/s, PyTorch twin {torch:.1f} images/s, ours / twin = "
                  f"{ours / torch:.2f}", flush=True)
        print(f"ours / twin, median of {len(ratios)} runs: {statistics.median(ratios):.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
