#!/usr/bin/env python3
"""Prints the reliability table from the JSON objects the tools/reliability/check_*.sh scripts print as
their last stdout line (one file of such lines as argument). A check's object gives kind, tried, passed,
failed and notes; it may add "rows", one object per kind of input with tried and the outcome counts
(accepted, rejected, unclear, crashed, hung, sanitizer), which are printed instead of the summary.
Exit status: 1 when any check failed (or printed no JSON), else 0.
"""
import json
import sys

COLUMNS = ["tried", "accepted", "rejected", "passed", "failed", "crashed", "hung", "sanitizer"]


def cell(row, key):
    return str(row[key]) if key in row else "-"


def main(path):
    checks, broken = [], []
    for line in open(path):
        name, _, text = line.rstrip("\n").partition("\t")
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict) or "kind" not in obj:
                raise ValueError
            checks.append(obj)
        except ValueError:
            broken.append(name)
    rows = []
    for check in checks:
        for row in check.get("rows") or [check]:
            r = dict(row)
            # A row of inputs: every input tried that did not fail passed (accepted, or rejected clearly).
            if "failed" not in r and "rejected" in r:
                r["failed"] = r.get("crashed", 0) + r.get("hung", 0) + r.get("unclear", 0)
            if "passed" not in r and "rejected" in r:
                r["passed"] = r["tried"] - r["failed"]
            rows.append(r)
    width = max([len(r["kind"]) for r in rows] + [len("kind")])
    header = f"{'kind':<{width}}" + "".join(f"{c:>10}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['kind']:<{width}}" + "".join(f"{cell(r, c):>10}" for c in COLUMNS))
    print("-" * len(header))
    sanitizer = sum(int(r.get("sanitizer", 0)) for r in rows)
    failed = sum(int(c.get("failed", 0)) for c in checks)
    print(f"sanitizer findings: {sanitizer}")
    for check in checks:
        print(f"{check['kind']}: {check.get('notes', '')}")
    for name in broken:
        print(f"{name}: printed no JSON object as its last line (failed)")
    ok = failed == 0 and not broken and sanitizer == 0
    print("result: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
