#!/usr/bin/env python3
"""Reloads while readings stream in (DESIGN 6.5): SIGHUPs that change
settings outside the definition (uplink batch_max and max_rate, which
reconnect the uplink; event_time timeouts; a source topic added, which is
subscribed in the running session without a reconnect) and one that changes nothing arrive while devices
publish thousands of messages. Nothing may be lost or counted twice: with
climate's definition unchanged, every window the sink receives equals
`weir replay` over everything published, at revision 0.

  run_reload_stream_test.py --bin BUILD/bin
"""
import copy
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

G = rc.GATEWAY
DEVICES = ["s1", "s2", "s3", "s4"]
PER_DEVICE = 4000  # messages, one reading each, 100 ms apart in event time


def reading(d, i):
    return {"ts": rc.BASE_TS + i * 100, "seq": i + 1, "t": round(10 + (i % 11) * 0.25 + d, 3)}


def main():
    args, work, broker, procs = harness.setup("weir-reload-stream.")
    weir_bin = os.path.join(args.bin, "weir")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        climate = rc.pipeline("climate", "10s")
        v1 = rc.config(broker.uri, db, [climate], batch_max=1)
        v2 = copy.deepcopy(v1)
        v2["uplink"]["batch_max"] = 4
        v2["pipelines"][0]["event_time"]["idle_timeout"] = "2h"
        v3 = copy.deepcopy(v2)
        v3["source"]["topics"].append({"topic": "sensors/{device}/extra"})
        v4 = copy.deepcopy(v3)
        v4["uplink"]["max_rate"] = "5000/s"
        v4["pipelines"][0]["limits"] = {"max_keys": 5000}
        v5 = copy.deepcopy(v4)
        v5["pipelines"][0]["event_time"]["idle_timeout"] = "3h"
        # Settings-only reloads rebuild the pipelines from committed state
        # too: several, so one lands while a timer commit is in flight.
        steps = [v2, v3, v4, v4, v5, v4, v5]
        rc.write_json(cfg_path, v1)

        _, sink_db = rc.start_sink(args.bin, broker, work, "rls-sink", procs)
        weir = rc.start_weir(args.bin, cfg_path, work, procs)

        messages = []
        per_device = {}
        for d, device in enumerate(DEVICES):
            rs = [reading(d, i) for i in range(PER_DEVICE)]
            per_device[device] = rs
            messages.extend((device, r) for r in rs)
        total = len(messages)

        errors = []

        def publish(device):
            try:
                harness.publish_lines(broker.uri, f"sensors/{device}/telemetry",
                                      [json.dumps(r) for r in per_device[device]])
            except Exception as e:  # reported by the main thread
                errors.append(f"{device}: {e}")

        threads = [threading.Thread(target=publish, args=(dev,)) for dev in DEVICES]
        for t in threads:
            t.start()
        harness.wait_for("readings streaming in", lambda: rc.journal_newest(db) > 200, 20, 0.01)

        mid_stream = 0
        for n, cfg in enumerate(steps, 1):
            rc.write_json(cfg_path, cfg)
            before = rc.journal_newest(db)
            weir.signal(signal.SIGHUP)
            rc.wait_log_count(weir, "reload applied", n)
            if before < total:
                mid_stream += 1  # messages were still to arrive when it reloaded
            time.sleep(0.05)
        for t in threads:
            t.join(60)
        if errors:
            raise harness.Failure("publishing failed: " + "; ".join(errors))
        if mid_stream < 4:
            raise harness.Failure(f"only {mid_stream} reloads happened while readings streamed "
                                  f"in: the test did not test")
        log = weir.log_text()
        # batch_max reconnects the uplink; max_rate applies without a reconnect.
        # A topic added is subscribed in the running session: no source reconnect.
        if log.count("uplink settings changed: reconnecting the uplink") != 1 or \
                log.count("source settings changed: reconnecting to the gateway broker") != 0 or \
                log.count("added topic filter sensors/+/extra") != 1:
            raise harness.Failure("the uplink reconnects once, the source subscribes the added "
                                  "topic without reconnecting:\n" + log[-3000:])
        if "event_time.idle_timeout: 3600000 -> 7200000" not in log:
            raise harness.Failure("the idle_timeout change is not logged:\n" + log[-3000:])

        # One reading per device far ahead closes every window.
        for d, device in enumerate(DEVICES):
            r = {"ts": rc.BASE_TS + (PER_DEVICE + 200) * 100, "seq": PER_DEVICE + 1, "t": 0.0}
            messages.append((device, r))
            harness.publish_lines(broker.uri, f"sensors/{device}/telemetry", [json.dumps(r)])

        expected = rc.final_results(rc.replay(weir_bin, work, "all", v1, messages, drain=False))
        if any(r["rev"] != 0 for r in expected.values()):
            raise harness.Failure("replay gave revisions: the readings were meant to be in order")
        rc.wait_results("every window once, as replay computes it", sink_db,
                        [lambda rows: rc.compare("climate", expected, rows, f"{G}/climate/")], 60)
        counted = sum(r["count"] for r in expected.values())
        if not weir.alive():
            raise harness.Failure("weir exited")
        rc.stop_weir(weir)
        print(f"ok: {len(steps)} reloads ({mid_stream} mid-stream) over {total} messages; "
              f"{len(expected)} windows holding {counted} readings equal weir replay")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
