#!/usr/bin/env python3
"""Runs `weir replay` on one transcript folder and checks what it wrote.

A folder holds config.json, input.jsonl, expected.jsonl and optionally:
  args             extra arguments, e.g. --drain
  expected_exit    the exit code (default 0)
  stderr_contains  lines that must each appear in stderr (e.g. "input.jsonl:3:")

usage: run_replay_case.py --weir BIN --case DIR [--twice]
--twice runs the replay a second time and requires byte-identical output.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def read(path, default=""):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return default


def replay(weir, case, out_path):
    extra = shlex.split(read(os.path.join(case, "args")))
    cmd = [weir, "replay", os.path.join(case, "config.json"),
           "--input", os.path.join(case, "input.jsonl"), "--output", out_path] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return cmd, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--twice", action="store_true")
    args = ap.parse_args()
    case = args.case
    if not os.path.isdir(case):
        print(f"skipped: {case} does not exist")
        return 77  # ctest SKIP_RETURN_CODE
    want_exit = int(read(os.path.join(case, "expected_exit"), "0").strip() or 0)

    with tempfile.TemporaryDirectory() as tmp:
        out1 = os.path.join(tmp, "out1.jsonl")
        cmd, p = replay(args.weir, case, out1)
        sys.stderr.write(p.stderr)
        if p.returncode != want_exit:
            print(f"FAIL: {shlex.join(cmd)} exited {p.returncode}, expected {want_exit}")
            return 1
        for needle in read(os.path.join(case, "stderr_contains")).splitlines():
            if needle.strip() and needle not in p.stderr:
                print(f"FAIL: stderr lacks {needle!r}")
                return 1
        if want_exit != 0:
            print(f"ok: exit {want_exit}")
            return 0
        if not os.path.exists(out1):
            print("FAIL: --output was not created")
            return 1
        rc = subprocess.run([sys.executable, os.path.join(HERE, "compare_results.py"),
                             os.path.join(case, "expected.jsonl"), out1,
                             "--config", os.path.join(case, "config.json")]).returncode
        if rc != 0:
            print("actual output:")
            sys.stdout.write(read(out1))
            return 1
        if args.twice:
            out2 = os.path.join(tmp, "out2.jsonl")
            _, p2 = replay(args.weir, case, out2)
            if p2.returncode != 0:
                print(f"FAIL: second run exited {p2.returncode}")
                return 1
            with open(out1, "rb") as a, open(out2, "rb") as b:
                if a.read() != b.read():
                    print("FAIL: two runs over the same input wrote different bytes")
                    return 1
            print("ok: two runs wrote identical bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
