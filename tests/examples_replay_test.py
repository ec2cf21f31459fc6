#!/usr/bin/env python3
"""Every example config validates and runs in `weir replay --drain` on its
shipped sample input (configs/examples/samples/NAME.jsonl) with no rejected
line, and its results account for every reading: in tumbling and session
pipelines each reading is counted in exactly one result, in hopping ones in
size/hop results (final revisions, no `where`).

  examples_replay_test.py --weir PATH --examples DIR
"""
import argparse
import glob
import json
import os
import subprocess
import sys

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def ms(v):
    if isinstance(v, int):
        return v
    for u in sorted(UNITS, key=len, reverse=True):
        if v.endswith(u) and v[: -len(u)].isdigit():
            return int(v[: -len(u)]) * UNITS[u]
    raise ValueError(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--examples", required=True)
    a = ap.parse_args()
    failures = 0
    configs = sorted(glob.glob(os.path.join(a.examples, "*.json")))
    for cfg_path in configs:
        name = os.path.basename(cfg_path)[:-5]
        v = subprocess.run([a.weir, "validate", cfg_path], capture_output=True, text=True)
        if v.returncode != 0:
            print(f"FAIL {name}: weir validate exited {v.returncode}: {v.stderr}")
            failures += 1
            continue
        sample = os.path.join(a.examples, "samples", name + ".jsonl")
        if not os.path.exists(sample):
            print(f"FAIL {name}: no sample input {sample}")
            failures += 1
            continue
        r = subprocess.run([a.weir, "replay", cfg_path, "--input", sample, "--drain"],
                           capture_output=True, text=True)
        if r.returncode != 0 or "rejected" in r.stderr or "line errors" in r.stderr:
            print(f"FAIL {name}: replay exited {r.returncode}: {r.stderr}")
            failures += 1
            continue
        readings = int(r.stderr.split(" readings")[0].rsplit(" ", 1)[1])
        final = {}
        for line in r.stdout.splitlines():
            res = json.loads(line)
            if res["id"] not in final or res["rev"] > final[res["id"]]["rev"]:
                final[res["id"]] = res
        cfg = json.load(open(cfg_path))
        for p in cfg["pipelines"]:
            mine = [x for x in final.values() if x.get("pipeline") == p["name"]]
            if not mine:
                print(f"FAIL {name}/{p['name']}: no results")
                failures += 1
                continue
            missing = [x["id"] for x in mine if set(x["values"]) != set(p["aggregates"])]
            if missing:
                print(f"FAIL {name}/{p['name']}: results without every aggregate: {missing[:3]}")
                failures += 1
            if "where" in p:
                continue
            w = p["window"]
            per = ms(w["size"]) // ms(w["hop"]) if w["type"] == "hopping" else 1
            total = sum(x["count"] for x in mine)
            if total != readings * per:
                print(f"FAIL {name}/{p['name']}: counts add up to {total}, want {readings} "
                      f"readings x {per}")
                failures += 1
        print(f"{'ok' if not failures else '..'} {name}: {readings} readings, "
              f"{len(final)} results")
    if not configs:
        print("FAIL: no example configs")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
