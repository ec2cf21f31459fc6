#!/usr/bin/env python3
"""A reload under load loses nothing (issue 12, DESIGN 6.5): weir-sim streams
readings at a high rate through a real Mosquitto into `weir run` (ingest
durability journal) while SIGHUPs arrive: a settings change (idle_timeout,
uplink batch_max, which reconnects the uplink), a pipeline added, that
pipeline changed. Afterwards:

- weir_readings_total and climate's readings equal the readings weir-sim
  recorded, nothing rejected or late;
- climate's definition never changed, so its results equal `weir replay
  --drain` over the recorded input (a last reload lowers idle_timeout, which
  closes every window of the live run once the devices are silent);
- the added pipeline's ids went to `extra~1` after its change;
- no (id, rev) arrived with two different bodies.

  run_reload_load_test.py --bin BUILD/bin [--rate 20000] [--seconds 10] [--devices 200]
"""
import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

GW = "gw-load"


def weir_config(broker_uri, db_path, metrics_port):
    return {
        "gateway": GW,
        "source": {"broker": broker_uri, "topics": [{"topic": "sensors/{device}/telemetry"}],
                   "seq": "/seq", "fields": {"temp": "/t"}},
        "pipelines": [
            {"name": "climate", "key": ["device"], "window": {"type": "tumbling", "size": "1s"},
             "aggregates": {"n": {"count": "*"}, "t_sum": {"sum": "temp"},
                            "t_max": {"max": "temp"}},
             # Wall-clock idleness must not fire anything: results are event-time only.
             "event_time": {"idle_timeout": "1h"}},
        ],
        "storage": {"path": db_path, "commit_interval": "20ms"},
        "ingest": {"durability": "journal"},
        "uplink": {"broker": broker_uri, "topic": "weir/{gateway}/{pipeline}", "batch_max": 100},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    }


def reload_steps(v1):
    """The configs the SIGHUPs apply, in order; climate's definition stays."""
    v2 = copy.deepcopy(v1)  # settings only
    v2["pipelines"][0]["event_time"]["idle_timeout"] = "2h"
    v2["uplink"]["batch_max"] = 50
    v3 = copy.deepcopy(v2)  # a pipeline added
    v3["pipelines"].append(
        {"name": "extra", "key": [], "window": {"type": "tumbling", "size": "5s"},
         "aggregates": {"n": {"count": "*"}}, "event_time": {"idle_timeout": "1h"}})
    v4 = copy.deepcopy(v3)  # that pipeline changed: generation 1
    v4["pipelines"][1]["window"]["size"] = "2s"
    return [("settings", v2), ("add extra", v3), ("change extra", v4)]


def write_scenario(path, devices, rate, seconds):
    # `rate` readings/s over `devices`, 10 readings per message: the load is in
    # readings, the message rate stays what one weir-sim connection sustains.
    period_ms = max(1, round(devices * 1000 / rate))
    scenario = {"duration": f"{seconds}s", "groups": [{
        "count": devices, "id": "d{n}", "topic": "sensors/{device}/telemetry", "format": "json",
        "period": f"{period_ms}ms", "batch": 10, "seq": True, "sent_at": False,
        "fields": {"t": {"model": "sine", "mean": 21, "amplitude": 3, "period": "1m",
                         "noise": 0.2}}}]}
    with open(path, "w") as f:
        json.dump(scenario, f)
    return devices * 1000 / period_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=20000, help="readings per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args, work, broker, procs = harness.setup("weir-reload-load.", ap)
    weir_bin = os.path.join(args.bin, "weir")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        port = rc.free_port()
        v1 = weir_config(broker.uri, db, port)
        rc.write_json(cfg_path, v1)
        scenario = os.path.join(work, "scenario.json")
        rate = write_scenario(scenario, args.devices, args.rate, args.seconds)

        capture_path = os.path.join(work, "uplink.capture")
        rc.start_capture(broker, capture_path, "load-capture", procs, persistent=True)
        weir = rc.start_weir(args.bin, cfg_path, work, procs)

        record = os.path.join(work, "record.jsonl")
        t0 = time.monotonic()
        sim = harness.Process([os.path.join(args.bin, "weir-sim"), "--broker", broker.uri,
                               "--scenario", scenario, "--seed", str(args.seed), "--record",
                               record, "--client-id", "load-sim"], os.path.join(work, "sim.log"))
        procs.append(sim)
        steps = reload_steps(v1)
        for n, (what, cfg) in enumerate(steps, 1):
            # Spread over the stream: at 1/4, 2/4, 3/4 of it.
            at = args.seconds * n / (len(steps) + 1)
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            if not sim.alive():
                raise harness.Failure(f"weir-sim ended before the reload '{what}': the test did "
                                      "not test")
            rc.write_json(cfg_path, cfg)
            weir.signal(signal.SIGHUP)
            rc.wait_log_count(weir, "reload applied", n, 30)
            print(f"reload '{what}' applied at {time.monotonic() - t0:.1f}s")
        code = sim.proc.wait(timeout=args.seconds + 120)
        sim_seconds = time.monotonic() - t0
        if code != 0:
            raise harness.Failure(f"weir-sim exited {code}: {sim.log_text()[-1000:]}")

        messages, readings = 0, 0
        with open(record) as f:
            for line in f:
                m = json.loads(line)
                messages += 1
                payload = m["payload"]
                readings += len(payload) if isinstance(payload, list) else 1
        print(f"weir-sim: {readings} readings in {messages} messages in {sim_seconds:.1f}s "
              f"(scenario {rate:.0f} readings/s, achieved {readings / sim_seconds:.0f}/s "
              f"including start-up)")
        total_msgs = messages
        rc.wait_processed(db, total_msgs, 120)
        print(f"weir processed everything at {time.monotonic() - t0:.1f}s")

        want_readings = readings
        def counts():
            m = rc.metrics(port)
            rejected = sum(v for k, v in m.items() if k.startswith("weir_rejected_total"))
            return (m["weir_messages_total"], m["weir_readings_total"],
                    m['weir_pipeline_readings_total{pipeline="climate"}'], rejected,
                    m.get('weir_late_dropped_total{pipeline="climate"}', 0))
        want = (total_msgs, want_readings, want_readings, 0, 0)
        try:
            harness.wait_for("/metrics to count every recorded reading once", lambda:
                             counts() == want, 15)
        except harness.Failure:
            raise harness.Failure(f"/metrics (messages, readings, climate readings, rejected, "
                                  f"late dropped) = {counts()}, want {want}")

        # A last reload lowers idle_timeout to 1s (a setting: state kept): the
        # silent devices' watermarks then close every open window, which is
        # what --drain emits.
        closing = copy.deepcopy(steps[-1][1])
        for p in closing["pipelines"]:
            p["event_time"]["idle_timeout"] = "1s"
        rc.write_json(cfg_path, closing)
        weir.signal(signal.SIGHUP)
        rc.wait_log_count(weir, "reload applied", len(steps) + 1, 30)

        # Reference: climate over the recorded input, uninterrupted and drained.
        ref_cfg = copy.deepcopy(v1)
        ref_cfg.pop("uplink")
        ref_cfg.pop("metrics")
        ref_cfg["storage"] = {"path": os.path.join(work, "replay.db")}
        ref_cfg_path = os.path.join(work, "replay.json")
        rc.write_json(ref_cfg_path, ref_cfg)
        reference = os.path.join(work, "reference.jsonl")
        subprocess.run([weir_bin, "replay", ref_cfg_path, "--input", record, "--output",
                        reference, "--drain"], check=True, timeout=300)
        print(f"replayed at {time.monotonic() - t0:.1f}s")
        expected = {}
        with open(reference) as f:
            for line in f:
                r = json.loads(line)
                if r["id"] not in expected or r["rev"] > expected[r["id"]]["rev"]:
                    expected[r["id"]] = r

        def live():
            out = {}
            for _, results, _ in rc.captured_messages(capture_path, rc.PROBE):
                for r in results:
                    if r["id"] not in out or r["rev"] >= out[r["id"]]["rev"]:
                        out[r["id"]] = r
            return out

        def problems():
            got = live()
            out = []
            prefix = f"{GW}/climate/"
            for rid, w in expected.items():
                g = got.get(rid)
                if g is None:
                    out.append(f"missing {rid}")
                elif g["rev"] != w["rev"] or g["count"] != w["count"] or any(
                        not harness.close_enough(g["values"].get(k), v)
                        for k, v in w["values"].items()):
                    out.append(f"{rid}: got {g}, want {w}")
            for rid in got:
                if rid.startswith(prefix) and rid not in expected:
                    out.append(f"extra {rid}")
            return out
        try:
            harness.wait_for(f"climate's {len(expected)} results to equal the replay's",
                             lambda: not problems(), 60, 0.5)
        except harness.Failure:
            print("\n".join(problems()[:30]))
            raise
        got = live()
        gens = sorted({rid.split("/")[1] for rid in got if rid.split("/")[1].startswith("extra")})
        if gens != ["extra", "extra~1"]:
            raise harness.Failure(f"extra's ids use {gens}, want extra then extra~1")
        conflicts = rc.check_capture([(t.replace(f"weir/{GW}/", f"weir/{rc.GATEWAY}/"), rs, a)
                                      for t, rs, a in rc.captured_messages(capture_path,
                                                                           rc.PROBE)])
        if conflicts:
            raise harness.Failure("\n".join(conflicts[:20]))
        rc.stop_weir(weir)
        print(f"ok: {len(steps)} reloads under {readings / sim_seconds:.0f} readings/s lost "
              f"nothing: {want_readings} readings counted once, {len(expected)} climate results "
              "equal the replay's")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
