#!/usr/bin/env python3
"""Runs every libFuzzer harness of a fuzz build (cmake -DSCPN_FUZZ=ON, tools/fuzz/) for a fixed time from
the seeds make_fuzz_seeds writes, and classes each run: the inputs tried and, from the harness's tally line,
accepted and rejected (a refusal naming its file); a crash or sanitizer report, or a hang (libFuzzer's
-timeout), is a finding, saved under WORK/findings/.

Usage: fuzz.py --build BUILD --work WORK [--seconds S] [--jobs J] [--data FASHION_MNIST_DIR]
Prints one table row per harness, then (last line) the JSON object of the tools/reliability/check_*.sh
contract. Exit status: 0 when no harness found anything.
"""
import argparse
import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


def run_harness(binary, work, seconds):
    name = binary.name[len("fuzz_"):]
    corpus = work / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    findings = work / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    command = [str(binary), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2560", "-max_len=16384",
               "-print_final_stats=1", f"-artifact_prefix={findings}/{name}-", str(corpus),
               str(work / "inputs" / "seeds" / name)]
    env = {"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    try:
        proc = subprocess.run(command, capture_output=True, timeout=seconds + 120, env=env)
        log, rc = proc.stderr.decode("utf-8", "replace"), proc.returncode
    except subprocess.TimeoutExpired as e:
        log, rc = (e.stderr or b"").decode("utf-8", "replace") + "\nfuzz.py: libFuzzer did not stop in time", -9
    (work / f"{name}.log").write_text(log)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    tally = re.search(r"scpn-fuzz-tally: accepted (\d+) rejected (\d+)", log)
    row = {"kind": f"fuzz/{name}", "tried": int(runs[-1]) if runs else 0,
           "accepted": int(tally.group(1)) if tally else 0, "rejected": int(tally.group(2)) if tally else 0,
           "crashed": 0, "hung": 0, "sanitizer": len(re.findall(r"ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:", log))}
    if rc != 0:
        hung = "ERROR: libFuzzer: timeout" in log or "did not stop in time" in log
        row["hung" if hung else "crashed"] = 1
        row["finding"] = next((l for l in log.splitlines() if "ERROR:" in l or "fuzz harness:" in l or "runtime error" in l),
                              f"exit status {rc}")[:200]
        artifacts = re.findall(r"Test unit written to (\S+)", log)
        if artifacts:
            row["finding"] += f" (input: {artifacts[-1]})"
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    build, work = Path(args.build), Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seeds_cmd = [str(build / "tools" / "fuzz" / "make_fuzz_seeds"), str(work / "inputs")]
    if Path(args.data, "t10k-images-idx3-ubyte.gz").exists():
        seeds_cmd.append(args.data)
    subprocess.run(seeds_cmd, check=True)
    harnesses = sorted(p for p in (build / "tools" / "fuzz").glob("fuzz_*") if p.is_file() and p.stat().st_mode & 0o111)
    if not harnesses:
        raise SystemExit(f"fuzz.py: no fuzz_* harness in {build}/tools/fuzz (configure with -DSCPN_FUZZ=ON)")
    print(f"{'harness':<22}{'tried':>9}{'accepted':>10}{'rejected':>10}{'crashed':>9}{'hung':>6}")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda b: run_harness(b, work, args.seconds), harnesses))
    for r in rows:
        print(f"{r['kind']:<22}{r['tried']:>9}{r['accepted']:>10}{r['rejected']:>10}{r['crashed']:>9}{r['hung']:>6}")
        if "finding" in r:
            print(f"  finding: {r['finding']}")
    failed = sum(r["crashed"] + r["hung"] for r in rows)
    notes = "; ".join(f"{r['kind']}: {r['finding']}" for r in rows if "finding" in r)
    print(json.dumps({"kind": "fuzz", "tried": len(rows), "passed": len(rows) - failed,
                      "failed": failed, "notes": notes[:500] or f"{len(rows)} harnesses x {args.seconds} s, no finding",
                      "rows": rows}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
