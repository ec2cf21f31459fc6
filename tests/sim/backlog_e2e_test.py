#!/usr/bin/env python3
"""A fleet with a three-hour outage, live (DESIGN 9, 5.2, 6.1): weir-sim runs
five simulated hours at 900x through a private Mosquitto into `weir run`,
whose results go to `weir-sink`. Three devices stay connected (with jitter
and duplicate publishes); three are disconnected from 1 h to 4 h, publish
`offline` and `online` around it and buffer at most 200 readings, so of the
360 readings each makes in the outage (one every 30 s) 160 are dropped and
200 are replayed on reconnect.

Checked: every window result at the sink equals the final revision of that
window in `weir replay --drain` over what weir-sim recorded, nothing else is
at the sink, and the counts agree with the truth file (published readings,
each counted once; 3 x 160 dropped). Event-time settings make arrival time
irrelevant (huge idle_timeout and allowed_lateness, late updates, keyed by
device): live arrival is wall-clock time, the record's `t` simulated time.

  backlog_e2e_test.py --bin BUILD/bin [--seed N]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402

FIELDS = {"t": {"model": "sine", "mean": 21.5, "amplitude": 3, "period": "2h", "noise": 0.2},
          "h": {"model": "random_walk", "start": 45, "step": 0.5, "min": 20, "max": 80}}


def scenario():
    return {"duration": "5h", "groups": [
        {"count": 3, "id": "live-{n}", "topic": "sensors/{device}/telemetry", "period": "30s",
         "jitter": "20s", "duplicates": 0.05, "status": {"topic": "sensors/{device}/status"},
         "fields": FIELDS},
        {"count": 3, "id": "away-{n}", "topic": "sensors/{device}/telemetry", "period": "30s",
         "batch": 1, "status": {"topic": "sensors/{device}/status"},
         "disconnects": [{"at": "1h", "for": "3h"}], "buffer": 200, "fields": FIELDS}]}


def config(broker_uri, db_path):
    return {
        "gateway": "gw-sim",
        "source": {"broker": broker_uri, "topics": [{"topic": "sensors/{device}/telemetry"}],
                   "status": {"topic": "sensors/{device}/status"}, "seq": "/seq",
                   "sent_at": "/sent_at", "fields": {"temp": "/t", "hum": "/h"}},
        "pipelines": [{"name": "rooms", "key": ["device"],
                       "window": {"type": "tumbling", "size": "10m"},
                       "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                                      "t_max": {"max": "temp"}, "h_last": {"last": "hum"}},
                       "event_time": {"idle_timeout": "1000h", "allowed_lateness": "1000h",
                                      "late": "update"}}],
        "storage": {"path": db_path, "commit_interval": "20ms"},
        "uplink": {"broker": broker_uri, "topic": "weir/{gateway}/{pipeline}", "batch_max": 50},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    work = harness.temp_dir("weir-simbacklog.")
    broker = harness.Broker(os.path.join(work, "broker"))
    procs = []
    passed = False
    try:
        scen_path = os.path.join(work, "scenario.json")
        with open(scen_path, "w") as f:
            json.dump(scenario(), f)
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(config(broker.uri, os.path.join(work, "weir.db")), f)
        sink_db = os.path.join(work, "sink.db")
        sink = harness.Process([os.path.join(args.bin, "weir-sink"), "--broker", broker.uri,
                                "--topic", "weir/#", "--db", sink_db, "--client-id", "sb-sink",
                                "--quiet"], os.path.join(work, "sink.log"))
        procs.append(sink)
        sink.wait_log("subscribed")
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir.log"))
        procs.append(weir)
        weir.wait_log("subscribed to")

        record = os.path.join(work, "record.jsonl")
        truth = os.path.join(work, "truth.jsonl")
        sim = harness.Process([os.path.join(args.bin, "weir-sim"), "--broker", broker.uri,
                               "--scenario", scen_path, "--seed", str(args.seed),
                               "--time-scale", "900x", "--record", record, "--truth", truth,
                               "--client-id", "sb-sim"], os.path.join(work, "sim.log"))
        procs.append(sim)
        rc = sim.proc.wait(timeout=60)
        if rc != 0:
            raise harness.Failure(f"weir-sim exited {rc}: {sim.log_text()[-1000:]}")

        # The truth file, by hand: 600 readings per device over 5 h; the three
        # away devices each drop 160 of the 360 made during the outage.
        published, dropped = {}, {}
        with open(truth) as f:
            for line in f:
                t = json.loads(line)
                if t.get("unsent"):
                    raise harness.Failure(f"unsent reading in the truth file: {line}")
                book = dropped if t.get("dropped") else published
                book[t["device"]] = book.get(t["device"], 0) + 1
        for d in ("live-1", "live-2", "live-3"):
            if published.get(d) != 600 or dropped.get(d):
                raise harness.Failure(f"{d}: {published.get(d)} published, "
                                      f"{dropped.get(d)} dropped; want 600, 0")
        for d in ("away-1", "away-2", "away-3"):
            if published.get(d) != 440 or dropped.get(d) != 160:
                raise harness.Failure(f"{d}: {published.get(d)} published, "
                                      f"{dropped.get(d)} dropped; want 440, 160")
        statuses = {}
        with open(record) as f:
            for line in f:
                m = json.loads(line)
                if m["topic"].endswith("/status"):
                    statuses.setdefault(m["topic"].split("/")[1], []).append(m["payload"])
        for d in ("away-1", "away-2", "away-3"):
            if statuses.get(d) != ["online", "offline", "online"]:
                raise harness.Failure(f"{d}: status messages {statuses.get(d)}")

        reference = os.path.join(work, "reference.jsonl")
        subprocess.run([os.path.join(args.bin, "weir"), "replay", cfg_path, "--input", record,
                        "--output", reference, "--drain"], check=True, timeout=120)
        final = {}
        with open(reference) as f:
            for line in f:
                r = json.loads(line)
                if r["id"] not in final or r["rev"] > final[r["id"]]["rev"]:
                    final[r["id"]] = r
        total = sum(published.values())
        counted = sum(r["count"] for r in final.values())
        if counted != total:
            raise harness.Failure(f"weir replay counted {counted} readings, truth says {total}")

        # One reading far ahead per device closes every window of the live run.
        far = max(json.loads(l)["ts"] for l in open(truth)) + 3_600_000
        for d in list(published):
            harness.publish_lines(broker.uri, f"sensors/{d}/telemetry",
                                  [json.dumps({"ts": far, "seq": 10**9})])

        def problems():
            rows = harness.sink_rows(sink_db)
            out = []
            for rid, want in final.items():
                got = rows.get(rid)
                if got is None:
                    out.append(f"missing {rid}")
                    continue
                g = got[2]
                if g is None or g["count"] != want["count"] or g["start"] != want["start"]:
                    out.append(f"{rid}: got {g}, want {want}")
                    continue
                for name, v in want["values"].items():
                    if not harness.close_enough(g["values"].get(name), v):
                        out.append(f"{rid}: {name} {g['values'].get(name)} want {v}")
            out += [f"extra {rid}" for rid in rows if rid not in final]
            return out

        try:
            harness.wait_for("the sink to equal weir replay --drain", lambda: not problems(), 40,
                             interval_s=0.5)
        except harness.Failure:
            print("\n".join(problems()[:30]))
            print("--- weir log tail\n" + weir.log_text()[-3000:])
            raise
        print(f"ok: {len(final)} windows at the sink equal weir replay --drain; {total} readings "
              f"published and counted once, {sum(dropped.values())} dropped from full buffers")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work}, seed {args.seed})")
        return 1
    finally:
        for p in procs:
            if p.alive():
                p.stop(signal.SIGKILL)
        broker.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
