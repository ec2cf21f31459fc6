#!/usr/bin/env python3
"""Every scenario in configs/scenarios/ validates against scenario.schema.json
and runs: weir-sim publishes it (time-compressed, shortened where it is large)
to a private Mosquitto, and the recorded input, run through `weir replay
--drain` with a config made from the scenario, counts every reading the
truth file says was published, once (duplicates are removed by seq).

  scenarios_test.py --bin BUILD/bin [--only NAME]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402

SCENARIOS = os.path.join(HERE, "..", "..", "configs", "scenarios")
# Simulated time to run and time scale per scenario: a few wall seconds each.
RUNS = {"demo": ("10m", 600), "skewed-duplicates": ("20m", 1200),
        "offline-backlog": (None, 7200), "machine-runs": (None, 9600),
        "flatbuffers-batch": (None, 3600), "fleet-10k": ("20s", 10)}


def weir_config(scenario, broker_uri):
    topics, status = [], None
    fields = {}
    for g in scenario["groups"]:
        topics.append({"topic": g.get("topic", "sensors/{device}/telemetry"),
                       "format": g.get("format", "json")})
        if "status" in g:
            status = {"topic": g["status"]["topic"]}
        for name in g.get("fields", {}):
            fields[name] = "/" + name
    source = {"broker": broker_uri, "topics": topics, "seq": "/seq", "fields": fields,
              "max_devices": 20000}
    if status:
        source["status"] = status
    return {"gateway": "gw-scen", "source": source,
            "pipelines": [{"name": "all", "key": ["device"],
                           "window": {"type": "tumbling", "size": "1h"},
                           "aggregates": {"n": {"count": "*"}},
                           "event_time": {"idle_timeout": "1000h", "allowed_lateness": "1000h",
                                          "late": "update"}}]}


def check(name, path, schema, bin_dir, broker, work):
    with open(path) as f:
        scenario = json.load(f)
    jsonschema.validate(scenario, schema)
    duration, scale = RUNS.get(name, ("1m", 600))
    truth = os.path.join(work, name + ".truth.jsonl")
    record = os.path.join(work, name + ".record.jsonl")
    args = [os.path.join(bin_dir, "weir-sim"), "--broker", broker.uri, "--scenario", path,
            "--seed", "7", "--time-scale", str(scale), "--truth", truth, "--record", record,
            "--start", "1700000000000", "--client-id", "scen-" + name]
    if duration:
        args += ["--duration", duration]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise harness.Failure(f"{name}: weir-sim exited {run.returncode}: {run.stderr}")
    published = dropped = 0
    with open(truth) as f:
        for line in f:
            t = json.loads(line)
            if t.get("dropped"):
                dropped += 1
            elif not t.get("unsent"):
                published += 1
    if published == 0:
        raise harness.Failure(f"{name}: nothing published")
    cfg_path = os.path.join(work, name + ".weir.json")
    with open(cfg_path, "w") as f:
        json.dump(weir_config(scenario, broker.uri), f)
    out = os.path.join(work, name + ".results.jsonl")
    rep = subprocess.run([os.path.join(bin_dir, "weir"), "replay", cfg_path, "--input", record,
                          "--output", out, "--drain"], capture_output=True, text=True,
                         timeout=300)
    if rep.returncode != 0:
        raise harness.Failure(f"{name}: weir replay exited {rep.returncode}: {rep.stderr[-2000:]}")
    final = {}
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            if r["id"] not in final or r["rev"] > final[r["id"]]["rev"]:
                final[r["id"]] = r
    counted = sum(r["count"] for r in final.values() if not r.get("retracted"))
    if counted != published:
        raise harness.Failure(f"{name}: weir counted {counted} readings, the truth file says "
                              f"{published} were published")
    print(f"ok {name}: {published} readings published, {dropped} dropped from full buffers, "
          f"all counted once by weir replay")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--only")
    args = ap.parse_args()
    with open(os.path.join(SCENARIOS, "scenario.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    # The schema can say no: a misspelt key, a bad duration, a duty cycle without "off".
    for bad in ({"groups": [{"cuont": 3}]}, {"groups": [{"period": "5 s"}]},
                {"groups": [{"fields": {"i": {"model": "duty_cycle", "on": "1m"}}}]}):
        try:
            jsonschema.validate(bad, schema)
        except jsonschema.ValidationError:
            continue
        print(f"FAIL: the schema accepts {bad}")
        return 1
    work = harness.temp_dir("weir-scen.")
    broker = harness.Broker(os.path.join(work, "broker"))
    passed = False
    try:
        paths = sorted(p for p in glob.glob(os.path.join(SCENARIOS, "*.json"))
                       if not p.endswith(".schema.json"))
        for path in paths:
            name = os.path.basename(path)[:-5]
            if args.only and name != args.only:
                continue
            if name not in RUNS:
                raise harness.Failure(f"{name}: no run settings in RUNS: add them")
            check(name, path, schema, args.bin, broker, work)
        passed = True
        return 0
    except (harness.Failure, jsonschema.ValidationError) as e:
        print(f"FAIL: {e}\n(work dir kept: {work})")
        return 1
    finally:
        broker.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
