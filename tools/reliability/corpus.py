#!/usr/bin/env python3
"""Mutated inputs through the real entry points: train_scpn, eval and extract_features of an ASan+UBSan
build (cmake -DSCPN_FUZZ=ON) read mutants of small valid files (tools/fuzz/make_fuzz_seeds writes them) and
each run is classed as

  accepted  exit 0 (the mutant was still a valid input),
  rejected  non-zero exit with exactly one line on stderr that names the mutated file (or a file of its
            data tree),
  unclear   non-zero exit with a message that is missing, spans lines or names no file,
  crashed   killed by a signal, or a sanitizer report on stderr,
  hung      still running after the timeout.

Usage: corpus.py --build BUILD --valid VALID_DIR --work WORK_DIR [--per-kind N] [--timeout S] [--jobs J]
                 [--kinds k1,k2] [--verbose]
Prints one table row per kind, then (last line) the JSON object of the tools/reliability/check_*.sh contract.
Exit status: 0 when nothing crashed, hung or was unclear.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutate import mutate  # noqa: E402

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")
MODEL = {"arch": "resnet18", "stem": "small", "base_width": 2, "feature_dim": 4}


def idx_header(name):
    return 16 if "images" in name else 8


def safetensors_header(data):
    return 8 + int.from_bytes(data[:8], "little") if len(data) >= 8 else len(data)


class Kind:
    """One kind of input: the valid tree it lives in, the file that is mutated, and the command."""

    def __init__(self, name, tree, target, command, text=False, header=None):
        self.name, self.tree, self.target, self.command = name, tree, target, command
        self.text, self.header = text, header


def make_kinds(build, valid, work):
    """The kinds, with the valid configs and checkpoints they need written under `work`."""
    tools = Path(build) / "tools"
    base = Path(work) / "base"
    base.mkdir(parents=True, exist_ok=True)

    def checkpoint(name, channels, classes):
        path = base / name
        config = dict(MODEL, in_channels=channels, num_classes=classes)
        subprocess.run([str(tools / "init_checkpoint"), "--model-config", json.dumps(config), "--output", str(path)],
                       check=True, capture_output=True)
        return str(path)

    def train_config(name, dataset, root, size):
        config = {"model": MODEL, "data": {"dataset": dataset, "root": root, "image_size": size, "train_limit": 0,
                                           "test_limit": 0, "augment": False, "workers": 1},
                  "train": {"batch_size": 4, "capacities": [0.5]},
                  "eval": {"capacities": [1.0], "bn_reestimate_batches": 1, "recall_k": [1]},
                  "device": "cpu"}
        path = base / name
        path.write_text(json.dumps(config, indent=1))
        return str(path)

    grey10 = checkpoint("grey10.safetensors", 1, 10)
    images = str(Path(valid) / "images.safetensors")
    train_scpn = str(Path(build) / "train_scpn")

    def extract(ckpt, inp, out):
        return [str(tools / "extract_features"), "--checkpoint", ckpt, "--input", inp, "--capacity", "0.5",
                "--bn-stats", "parent", "--output", out, "--device", "cpu", "--quiet"]

    def evaluate(config):
        def command(tree, out):
            return [str(tools / "eval"), "--checkpoint", ckpts[config], "--config", configs[config](tree),
                    "--capacities", "1", "--output", out, "--device", "cpu", "--quiet"]
        return command

    # Data configs are written per working tree (the root differs); checkpoints are shared.
    rgb2 = checkpoint("rgb2.safetensors", 3, 2)
    ckpts = {"idx": grey10, "image_folder": rgb2, "inshop": rgb2, "gldv2": rgb2}
    datasets = {"idx": ("fashion_mnist", 28), "image_folder": ("image_folder", 8), "inshop": ("inshop", 8),
                "gldv2": ("gldv2", 8)}
    configs = {k: (lambda tree, k=k: train_config(f"{k}_{Path(tree).parent.name}.json", datasets[k][0],
                                                   str(Path(tree)), datasets[k][1]))
               for k in datasets}
    default_config = train_config("config.json", "fashion_mnist", str(Path(valid) / "idx"), 28)

    return [
        Kind("config", None, "config.json",
             lambda tree, f, out: [train_scpn, "--print-config", "--config", f], text=True),
        Kind("checkpoint", None, "model.safetensors",
             lambda tree, f, out: extract(f, images, out), header=safetensors_header),
        Kind("safetensors", None, "images.safetensors",
             lambda tree, f, out: extract(grey10, f, out), header=safetensors_header),
        Kind("idx", Path(valid) / "idx", ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                          "train-images-idx3-ubyte.gz"],
             lambda tree, f, out: evaluate("idx")(tree, out), header=lambda data: 16),
        Kind("image_folder", Path(valid) / "image_folder",
             ["test/cat/img0.png", "test/dog/img1.png", "test/cat/img2.jpg", "train/dog/img2.jpg"],
             lambda tree, f, out: evaluate("image_folder")(tree, out), header=lambda data: 64),
        Kind("inshop", Path(valid) / "inshop", "Eval/list_eval_partition.txt",
             lambda tree, f, out: evaluate("inshop")(tree, out), text=True),
        Kind("gldv2", Path(valid) / "gldv2", "train.csv",
             lambda tree, f, out: evaluate("gldv2")(tree, out), text=True),
    ], {"config": Path(default_config), "checkpoint": Path(grey10), "safetensors": Path(images)}


def classify(proc_rc, stderr, timed_out, names):
    if timed_out:
        return "hung"
    if any(mark in stderr for mark in SANITIZER_MARKS) or proc_rc < 0:
        return "crashed"
    if proc_rc == 0:
        return "accepted"
    # Lines as a terminal or a log shows them: split at '\n' (and '\r', '\v', '\f', which move the cursor
    # to another line as well), so a control character inside a message counts against it.
    lines = [l for l in stderr.splitlines() if l.strip()]
    if len(lines) == 1 and any(n in lines[0] for n in names):
        return "rejected"
    return "unclear"


def run_one(kind, sources, job_dir, index, seed, timeout):
    """Mutates one file of a private copy of the kind's tree, runs the command, restores the file."""
    tree = job_dir / "tree"
    targets = kind.target if isinstance(kind.target, list) else [kind.target]
    target = targets[(seed + index) % len(targets)]
    path = tree / target
    original = sources[target]
    d = bytes(original)
    # gzip IDX files are mutated uncompressed half of the time (zlib reads plain files too), so the
    # mutations reach the IDX header instead of only breaking the compressed stream.
    if target.endswith(".gz") and index % 2 == 0:
        import gzip
        d = gzip.decompress(d)
    header = kind.header(d) if kind.header else 0
    mutant = mutate(d, seed * 1_000_003 + index, header=header, text=kind.text)
    path.write_bytes(mutant)
    out = job_dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = kind.command(str(tree), str(path), str(out))
    timed_out = False
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1",
               OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, env=env, start_new_session=True)
        rc, stderr = proc.returncode, proc.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        timed_out, rc, stderr = True, -9, (e.stderr or b"").decode("utf-8", "replace")
    outcome = classify(rc, stderr, timed_out, [str(path), str(tree)])
    saved = None
    if outcome in ("crashed", "hung", "unclear"):
        saved = job_dir.parent / "findings" / f"{kind.name}_{index}_{Path(target).name}"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(mutant)
        saved.with_suffix(saved.suffix + ".stderr").write_text(stderr[-4000:])
    path.write_bytes(original)
    sanitizer = any(mark in stderr for mark in SANITIZER_MARKS)
    return outcome, sanitizer, saved, stderr.strip().splitlines()[-1:] if stderr.strip() else []


def run_kind(kind, single_sources, work, per_kind, timeout, jobs, seed, verbose):
    kind_dir = Path(work) / kind.name
    shutil.rmtree(kind_dir, ignore_errors=True)
    job_dirs = []
    for j in range(jobs):
        jd = kind_dir / f"job{j}"
        if kind.tree is not None:
            shutil.copytree(kind.tree, jd / "tree")
        else:
            (jd / "tree").mkdir(parents=True)
            shutil.copy(single_sources[kind.name], jd / "tree" / kind.target)
        job_dirs.append(jd)
    targets = kind.target if isinstance(kind.target, list) else [kind.target]
    sources = {t: (job_dirs[0] / "tree" / t).read_bytes() for t in targets}
    # The unmutated input must be accepted, or every rejection below would prove nothing.
    base = subprocess.run(kind.command(str(job_dirs[0] / "tree"), str(job_dirs[0] / "tree" / targets[0]),
                                       str(job_dirs[0] / "out")), capture_output=True, timeout=timeout * 4)
    if base.returncode != 0 or any(mark in base.stderr.decode("utf-8", "replace") for mark in SANITIZER_MARKS):
        raise SystemExit(f"corpus: the valid {kind.name} input is refused: {base.stderr.decode()[-2000:]}")
    counts = {k: 0 for k in ("tried", "accepted", "rejected", "unclear", "crashed", "hung", "sanitizer")}
    examples = []

    def job(j):
        results = []
        for i in range(j, per_kind, jobs):
            results.append(run_one(kind, sources, job_dirs[j], i, seed, timeout))
        return results

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for results in pool.map(job, range(jobs)):
            for outcome, sanitizer, saved, last in results:
                if verbose:
                    print(f"  {outcome}: {' '.join(last)[:200]}", flush=True)
                counts["tried"] += 1
                counts[outcome] += 1
                counts["sanitizer"] += int(sanitizer)
                if saved and len(examples) < 3:
                    examples.append(f"{outcome}: {saved} ({' '.join(last)[:160]})")
    counts["seconds"] = round(time.monotonic() - start, 1)
    return counts, examples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--per-kind", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default="")
    ap.add_argument("--verbose", action="store_true", help="print every run's outcome and last stderr line")
    args = ap.parse_args()

    kinds, single_sources = make_kinds(args.build, args.valid, args.work)
    wanted = [k for k in args.kinds.split(",") if k]
    rows, notes = [], []
    print(f"{'kind':<14}{'tried':>7}{'accepted':>10}{'rejected':>10}{'unclear':>9}{'crashed':>9}{'hung':>6}{'s':>8}")
    for kind in kinds:
        if wanted and kind.name not in wanted:
            continue
        counts, examples = run_kind(kind, single_sources, args.work, args.per_kind, args.timeout, args.jobs, args.seed,
                                    args.verbose)
        print(f"{kind.name:<14}{counts['tried']:>7}{counts['accepted']:>10}{counts['rejected']:>10}{counts['unclear']:>9}"
              f"{counts['crashed']:>9}{counts['hung']:>6}{counts['seconds']:>8}", flush=True)
        for e in examples:
            print(f"  {e}", flush=True)
        rows.append(dict(kind=f"corpus/{kind.name}", **counts))
        notes += examples
    failed = sum(r["unclear"] + r["crashed"] + r["hung"] for r in rows)
    tried = sum(r["tried"] for r in rows)
    print(json.dumps({"kind": "corpus", "tried": tried, "passed": tried - failed, "failed": failed,
                      "notes": "; ".join(notes)[:500] or "every mutant accepted or rejected with a one-line message "
                                                               "naming its file", "rows": rows}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
