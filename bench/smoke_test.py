#!/usr/bin/env python3
"""CI smoke test for the benchmark driver: runs `bench.py --smoke --only core` against the
built binaries and checks that report.md and report.json were written with the expected
keys. It checks no numbers (timing belongs in the report, never in a test)."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    bin_dir, bench_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="weir-bench-smoke-") as out:
        p = subprocess.run([sys.executable, os.path.join(HERE, "bench.py"), "--quick", "--smoke",
                            "--only", "core", "--bin-dir", bin_dir, "--bench-dir", bench_dir,
                            "--out-dir", out, "--profile-note", "/nonexistent"])
        failures = []
        if p.returncode != 0:
            failures.append(f"bench.py exited {p.returncode}")
        try:
            with open(os.path.join(out, "report.json")) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print(f"FAIL: report.json: {e}")
            return 1
        for k in ("generated", "machine", "benchmarks", "goals", "runs"):
            if k not in r:
                failures.append(f"report.json lacks {k}")
        for k in ("nproc", "cpu", "kernel"):
            if k not in r.get("machine", {}):
                failures.append(f"machine lacks {k}")
        core = r.get("benchmarks", {}).get("core", {})
        cases = core.get("cases", [])
        if not any(c["name"].startswith("replay json tumbling") for c in cases):
            failures.append("no replay case in core")
        if not any(c["name"].startswith("engine decoded tumbling") for c in cases):
            failures.append("no engine case in core")
        for c in cases:
            for k in ("name", "unit", "value"):
                if k not in c:
                    failures.append(f"case {c.get('name')} lacks {k}")
            for k in ("min", "median", "max", "runs"):
                if k not in c.get("value", {}):
                    failures.append(f"case {c.get('name')} value lacks {k}")
            if "baseline" in c and "ratio" not in c:
                failures.append(f"case {c['name']} has a baseline but no ratio")
        if c_missing := [c["name"] for c in cases if c["name"].startswith("replay")
                         and "baseline" not in c]:
            failures.append(f"replay cases without baseline: {c_missing}")
        ids = {g.get("id") for g in r.get("goals", [])}
        for g in ("core.decoded", "core.json"):
            if g not in ids:
                failures.append(f"goal {g} missing")
        for g in r.get("goals", []):
            if "met" not in g or "measured" not in g:
                failures.append(f"goal {g.get('id')} lacks met/measured")
        try:
            md = open(os.path.join(out, "report.md")).read()
            for s in ("# weir benchmark report", "## Goals", "## core"):
                if s not in md:
                    failures.append(f"report.md lacks {s!r}")
        except OSError as e:
            failures.append(f"report.md: {e}")
        for f in failures:
            print("FAIL:", f)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
