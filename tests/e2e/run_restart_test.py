#!/usr/bin/env python3
"""End to end through real processes: a private Mosquitto, `weir run`,
mosquitto_pub as the devices and weir-sink as the cloud side. weir is
stopped twice mid-stream, once with SIGTERM and once with SIGKILL, while
devices keep publishing into its persistent session. The sink must end up
with exactly the results computed here from the published readings:
every tumbling window's id, count and values, all at revision 0 (nothing is
late), nothing missing and nothing extra.

  run_restart_test.py --bin BUILD/bin
"""
import json
import math
import os
import signal
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GATEWAY = "e2e"
BASE_TS = 1_700_000_000_000
WINDOW_MS = 10_000
DEVICES = ["d1", "d2", "d3", "d4"]
READINGS = 60  # per device, 1 s apart in event time


def config(broker_uri, db_path):
    return {
        "gateway": GATEWAY,
        "source": {
            "broker": broker_uri,
            "topics": [{"topic": "sensors/{device}/telemetry"}],
            "seq": "/seq",
            "fields": {"temp": "/t"},
        },
        "pipelines": [{
            "name": "climate",
            "key": ["device"],
            "window": {"type": "tumbling", "size": "10s"},
            "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                           "t_max": {"max": "temp"}, "t_sum": {"sum": "temp"}},
            # Wall-clock idleness must not fire anything in this test.
            "event_time": {"idle_timeout": "1h", "allowed_lateness": "1h", "late": "update"},
        }],
        "storage": {"path": db_path},
        "uplink": {"broker": broker_uri, "topic": "weir/{gateway}/{pipeline}", "batch_max": 7},
    }


def reading(device_index, i):
    return {"ts": BASE_TS + i * 1000, "seq": i + 1,
            "t": round(20 + (i % 7) * 0.5 + device_index * 0.25, 3)}


def expected_results(published):
    """Tumbling windows per device from the readings, as DESIGN 5 defines
    them: [start, start + 10 s), fired once the device's max ts reaches the
    window end (max_out_of_orderness 0)."""
    out = {}
    for device, readings in published.items():
        max_ts = max(r["ts"] for r in readings)
        windows = defaultdict(list)
        for r in readings:
            windows[(r["ts"] // WINDOW_MS) * WINDOW_MS].append(r["t"])
        for start, temps in windows.items():
            if start + WINDOW_MS > max_ts:
                continue  # still open
            out[f"{GATEWAY}/climate/{device}/{start}"] = {
                "key": {"device": device}, "start": start, "end": start + WINDOW_MS,
                "count": len(temps),
                "values": {"n": len(temps), "t_avg": sum(temps) / len(temps),
                           "t_max": max(temps), "t_sum": math.fsum(temps)},
            }
    return out


def check(expected, rows):
    problems = []
    for rid, want in expected.items():
        if rid not in rows:
            problems.append(f"missing {rid}")
            continue
        rev, retracted, got = rows[rid]
        if rev != 0 or retracted or got is None:
            problems.append(f"{rid}: rev {rev} retracted {retracted}, want rev 0")
            continue
        for field in ("key", "start", "end", "count"):
            if got.get(field) != want[field]:
                problems.append(f"{rid}: {field} {got.get(field)!r}, want {want[field]!r}")
        for name, value in want["values"].items():
            if not harness.close_enough(got["values"].get(name), value):
                problems.append(f"{rid}: {name} {got['values'].get(name)!r}, want {value!r}")
    for rid in rows:
        if rid not in expected:
            problems.append(f"unexpected result {rid}: {rows[rid]}")
    return problems


def main():
    args, work, broker, procs = harness.setup("weir-e2e-restart.")
    with harness.reported(work, procs, [broker]):
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(config(broker.uri, os.path.join(work, "weir.db")), f, indent=1)
        sink_db = os.path.join(work, "sink.db")
        sink = harness.Process([os.path.join(args.bin, "weir-sink"), "--broker", broker.uri,
                                "--topic", "weir/#", "--db", sink_db, "--client-id", "e2e-sink"],
                               os.path.join(work, "sink.log"))
        procs.append(sink)
        sink.wait_log("subscribed")

        weir_log = os.path.join(work, "weir.log")

        def start_weir():
            p = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path], weir_log)
            procs.append(p)
            p.wait_log("subscribed to", count=sum(1 for pr in procs if pr.args[:2] == p.args[:2]))
            return p

        published = defaultdict(list)

        def publish(lo, hi):
            for d, device in enumerate(DEVICES):
                rs = [reading(d, i) for i in range(lo, hi)]
                published[device].extend(rs)
                harness.publish_lines(broker.uri, f"sensors/{device}/telemetry",
                                      [json.dumps(r) for r in rs])

        weir = start_weir()
        publish(0, 25)
        # Windows [0,10s) and [10s,20s) of each device fire once ts 20s arrives.
        harness.wait_for("the first results at the sink",
                         lambda: len(harness.sink_rows(sink_db)) >= 2 * len(DEVICES))

        # A clean stop, then readings arrive while weir is down (queued by the
        # broker for weir's persistent session).
        rc = weir.stop(signal.SIGTERM)
        if rc != 0:
            raise harness.Failure(f"weir run exited {rc} on SIGTERM:\n{weir.log_text()[-2000:]}")
        publish(25, 40)
        weir = start_weir()
        publish(40, 50)

        # A crash: nothing that was acknowledged to the broker may be lost.
        weir.stop(signal.SIGKILL)
        publish(50, READINGS)
        weir = start_weir()
        # One more reading per device, far ahead, closes every window.
        for d, device in enumerate(DEVICES):
            r = {"ts": BASE_TS + (READINGS + 100) * 1000, "seq": READINGS + 1, "t": 0.0}
            published[device].append(r)
            harness.publish_lines(broker.uri, f"sensors/{device}/telemetry", [json.dumps(r)])

        expected = expected_results(published)
        try:
            harness.wait_for("every expected result at the sink",
                             lambda: not check(expected, harness.sink_rows(sink_db)), 60)
        except harness.Failure:
            problems = check(expected, harness.sink_rows(sink_db))
            print("\n".join(problems[:40]))
            print("--- weir log tail\n" + weir.log_text()[-3000:])
            raise
        rc = weir.stop(signal.SIGTERM)
        if rc != 0:
            raise harness.Failure(f"weir run exited {rc} on SIGTERM")
        print(f"ok: {len(expected)} results at the sink equal the expected ones after a "
              f"SIGTERM restart and a SIGKILL restart")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
