#!/usr/bin/env python3
"""The SQL in README's "The cloud side" runs and answers what the README says
(issue 13). Every ```sql block of that section is taken from the README itself,
so an edit that breaks one fails here:

- the setup block (CREATE ROLE / CREATE DATABASE) runs in a private cluster, and
  weir-sink, connecting as that role to that database, can create its tables;
- the tables block names the columns and types weir-sink really creates;
- the index is created;
- the queries (every window, the latest window per device, retracted sessions,
  losses per gateway) give the rows worked out by hand below from the results
  published to the broker (revisions, a retraction after a result, a retraction
  that came first, two gateways with a device of the same name, loss records).

  readme_sql_test.py --bin BUILD/bin [--readme README.md]
"""
import argparse
import json
import os
import re
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudlib  # noqa: E402
from cloudlib import harness  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def cloud_sql_blocks(readme):
    with open(readme) as f:
        text = f.read()
    start = text.index("\n## The cloud side")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else len(text)]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def block(blocks, marker):
    found = [b for b in blocks if marker in b]
    if len(found) != 1:
        raise harness.Failure(f"README: want one sql block with {marker!r}, found {len(found)}")
    return found[0]


def win(gw, pipeline, device, start, rev, **values):
    return {"id": f"{gw}/{pipeline}/{device}/{start}", "rev": rev, "pipeline": pipeline,
            "key": {"device": device}, "start": start, "end": start + 60000, "count": 3,
            "values": values}


# What the gateways published, in this order. The highest revision per id wins.
PUBLISHED = [
    win("gw-a", "climate", "d1", 60000, 0, temp_avg=20.5),
    win("gw-a", "climate", "d1", 60000, 1, temp_avg=21.25),  # a late reading revised it
    win("gw-a", "climate", "d1", 120000, 0, temp_avg=22),
    win("gw-a", "climate", "d2", 60000, 0, temp_avg=19),
    win("gw-b", "climate", "d1", 60000, 0, temp_avg=30),  # another gateway's d1
    win("gw-b", "climate", "d1", 0, 0, temp_avg=29),
    win("gw-a", "other", "d1", 180000, 0, temp_avg=1),  # not climate
    # Sessions: one fired and was then merged away; one retraction came first.
    {"id": "gw-a/runs/d1/5000", "rev": 0, "pipeline": "runs", "key": {"device": "d1"},
     "start": 5000, "end": 9000, "count": 2, "duration_ms": 4000, "values": {}},
    {"id": "gw-a/runs/d1/5000", "rev": 1, "retracted": True},
    {"id": "gw-a/runs/d2/7000", "rev": 2, "retracted": True},
    {"id": "gw-a/loss/1-5", "lost": 5, "from": 60000, "to": 120000},
    {"id": "gw-a/loss/9-10", "lost": 2, "from": 30000, "to": 40000},
    {"id": "gw-b/loss/3-3", "lost": 1, "from": 90000, "to": 90000},
]

# Worked out by hand from PUBLISHED.
EVERY_WINDOW = [  # gateway, device, window start (UTC), rev, temp_avg
    ["gw-a", "d1", "1970-01-01 00:01:00+00", "1", "21.25"],
    ["gw-a", "d1", "1970-01-01 00:02:00+00", "0", "22"],
    ["gw-a", "d2", "1970-01-01 00:01:00+00", "0", "19"],
    ["gw-b", "d1", "1970-01-01 00:00:00+00", "0", "29"],
    ["gw-b", "d1", "1970-01-01 00:01:00+00", "0", "30"],
]
LATEST = [  # gateway, device, start_ms, rev, values
    ["gw-a", "d1", "120000", "0", {"temp_avg": 22}],
    ["gw-a", "d2", "60000", "0", {"temp_avg": 19}],
    ["gw-b", "d1", "60000", "0", {"temp_avg": 30}],
]
RETRACTED = [  # id, rev, start_ms, end_ms (empty: the retraction came first)
    ["gw-a/runs/d1/5000", "1", "5000", "9000"],
    ["gw-a/runs/d2/7000", "2", "", ""],
]
LOSSES = [["gw-a", "7", "1970-01-01 00:00:30+00"], ["gw-b", "1", "1970-01-01 00:01:30+00"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = ap.parse_args()
    blocks = cloud_sql_blocks(args.readme)
    work = harness.temp_dir("weir-readme-sql.")
    broker = harness.Broker(os.path.join(work, "broker"))
    pg = cloudlib.Postgres()
    sink = None
    passed = False
    try:
        # Setup, as the README has it; then the sink as that role, in that database.
        pg.psql(block(blocks, "CREATE ROLE"))
        weir_uri = pg.uri.replace("postgresql:///postgres?", "postgresql:///weir?").replace(
            "user=postgres", "user=weir_sink")
        sink = cloudlib.start_sink(args.bin, broker.uri, "weir/#", weir_uri, "readme-sink",
                                   os.path.join(work, "sink.log"))
        sink.wait_log("subscribed to")
        harness.publish_lines(broker.uri, "weir/results", [json.dumps(r) for r in PUBLISHED])
        q = lambda sql: pg.psql(sql, weir_uri)  # noqa: E731
        harness.wait_for("the sink to store everything", lambda: (
            q("SELECT count(*) FROM weir_results")[0][0] == "8" and
            q("SELECT count(*) FROM weir_losses")[0][0] == "3"), 30, 0.2)

        # The tables block says what weir-sink creates.
        shape = block(blocks, "weir_results(id text")
        declared = {}
        for table, cols in re.findall(r"(weir_\w+)\((.*)\)", shape):
            declared[table] = [c.split()[:2] for c in cols.split(",")]
        for table, cols in declared.items():
            real = q("SELECT column_name, data_type FROM information_schema.columns "
                     f"WHERE table_name = '{table}' ORDER BY ordinal_position")
            want = [[name, {"text": "text", "integer": "integer", "boolean": "boolean",
                            "jsonb": "jsonb"}[kind]] for name, kind in cols]
            if real != want:
                raise harness.Failure(f"README says {table} has {want}; it has {real}")
        if sorted(declared) != ["weir_losses", "weir_results"]:
            raise harness.Failure(f"README's tables block names {sorted(declared)}")

        q(block(blocks, "CREATE INDEX"))
        checks = [
            ("every window", "ORDER BY gateway, device, window_start", EVERY_WINDOW, None),
            ("latest window per device", "DISTINCT ON", LATEST, 4),
            ("retracted sessions", "WHERE retracted", RETRACTED, None),
            ("losses per gateway", "FROM weir_losses", LOSSES, None),
        ]
        # Timestamps in UTC, as written above.
        for name, marker, want, json_col in checks:
            got = q("SET TIME ZONE 'UTC'; " + block(blocks, marker))
            if json_col is not None:
                got = [row[:json_col] + [json.loads(row[json_col])] for row in got]
            if got != want:
                raise harness.Failure(f"README query '{name}': got {got}, want {want}")
            print(f"ok: README query '{name}': {len(got)} rows as worked out by hand")
        if sink.stop() != 0:
            raise harness.Failure("sink did not exit 0")
        print(f"ok: the README's setup, tables block and index hold ({len(blocks)} sql blocks)")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work})")
        return 1
    finally:
        if sink and sink.alive():
            sink.stop(signal.SIGKILL)
        pg.stop()
        broker.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
