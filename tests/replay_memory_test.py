#!/usr/bin/env python3
"""`weir replay` streams (DESIGN 8): its peak memory does not grow with the
input's length. Runs the same kind of input at 20k and 200k lines and compares
the child's peak RSS.

usage: replay_memory_test.py --weir BIN
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CONFIG = {
    "gateway": "gw",
    "source": {"broker": "tcp://127.0.0.1:1883",
               "topics": [{"topic": "s/{device}/data", "format": "json"}],
               "seq": "/seq", "fields": {"temp": "/temp"}},
    "pipelines": [{"name": "p", "key": ["device"], "window": {"type": "tumbling", "size": "1m"},
                   "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"}}}],
}


def write_input(path, lines):
    with open(path, "w") as f:
        for i in range(lines):
            dev = f"d{i % 4}"
            ts = 1000 * i
            payload = {"ts": ts, "seq": i, "temp": 20 + (i % 13) * 0.5, "note": "x" * (i % 50)}
            f.write(json.dumps({"t": ts + 5, "topic": f"s/{dev}/data", "payload": payload},
                               separators=(",", ":")) + "\n")


def peak_rss_kb(weir, config, inp, out):
    proc = subprocess.Popen([weir, "replay", config, "--input", inp, "--output", out],
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"replay exited {proc.returncode}: {err}")
    return usage.ru_maxrss, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "config.json")
        with open(config, "w") as f:
            json.dump(CONFIG, f)
        results = {}
        for n in (20000, 200000):
            inp = os.path.join(d, f"in{n}.jsonl")
            write_input(inp, n)
            rss, out = peak_rss_kb(args.weir, config, inp, os.path.join(d, f"out{n}.jsonl"))
            with open(out) as f:
                count = sum(1 for _ in f)
            results[n] = rss
            print(f"{n} lines: peak RSS {rss} KB, {count} results")
            # 4 devices, one reading per second each in turn: a window per device per minute.
            if count < 4 * (n // 60) - 8:
                print("FAIL: too few results; the input was not processed")
                return 1
        small, big = results[20000], results[200000]
        if big > small * 1.25 + 4096:
            print(f"FAIL: peak RSS grew from {small} KB to {big} KB with 10x the input")
            return 1
    print("ok: memory does not grow with input length")
    return 0


if __name__ == "__main__":
    sys.exit(main())
