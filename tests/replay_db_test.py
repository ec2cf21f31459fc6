#!/usr/bin/env python3
"""`weir replay --db`: the same results as an in-memory replay, and a weir
database that holds them (outbox), the pipeline and config records, and a
checkpoint covering every message; an existing file is refused.

  replay_db_test.py --weir PATH --case DIR
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--case", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="weir-replay-db.")
    cfg, inp = os.path.join(a.case, "config.json"), os.path.join(a.case, "input.jsonl")
    mem, disk, db = (os.path.join(work, n) for n in ("mem.jsonl", "disk.jsonl", "weir.db"))
    subprocess.run([a.weir, "replay", cfg, "--input", inp, "--output", mem, "--drain"], check=True)
    subprocess.run([a.weir, "replay", cfg, "--input", inp, "--output", disk, "--drain", "--db", db],
                   check=True)
    with open(mem, "rb") as f1, open(disk, "rb") as f2:
        if f1.read() != f2.read():
            print("FAIL: --db changed the results")
            return 1
    with open(mem) as f:
        results = [json.loads(l) for l in f]
    with open(inp) as f:
        messages = sum(1 for l in f if l.strip() and "topic" in json.loads(l))
    con = sqlite3.connect(db)
    outbox = sorted(r[0] for r in con.execute("SELECT payload FROM outbox"))
    pipelines = [r[0] for r in con.execute("SELECT name FROM pipelines")]
    checkpoint = con.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()[0]
    con.close()
    want = sorted(json.dumps(r, separators=(",", ":")) for r in results)
    if [json.loads(x) for x in outbox] != [json.loads(x) for x in want]:
        print(f"FAIL: outbox holds {len(outbox)} rows, want the {len(want)} results")
        return 1
    if pipelines != [p["name"] for p in json.load(open(cfg))["pipelines"]]:
        print(f"FAIL: pipelines {pipelines}")
        return 1
    if checkpoint != messages:
        print(f"FAIL: checkpoint {checkpoint}, want {messages} (every message)")
        return 1
    again = subprocess.run([a.weir, "replay", cfg, "--input", inp, "--db", db],
                           capture_output=True, text=True)
    if again.returncode != 1 or "exists" not in again.stderr:
        print(f"FAIL: an existing --db gave {again.returncode}: {again.stderr}")
        return 1
    print(f"ok: {len(results)} results, in the outbox too; checkpoint {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
