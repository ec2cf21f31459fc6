#!/usr/bin/env python3
"""The uplink comes back after an outage (DESIGN 6.4, order live_first):
everything that piled up arrives, results made after the reconnect arrive
before the backlog has finished draining, and the backlog drains at no more
than uplink.max_rate.

  uplink_backlog_test.py --bin BUILD/bin
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BASE = 1_700_000_000_000
BACKLOG = 600     # results of device "old" made while the uplink is down
MAX_RATE = 150    # rows/s for the backlog


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    work = harness.temp_dir("weir-backlog.")
    source = harness.Broker(os.path.join(work, "source"))
    cloud = harness.Broker(os.path.join(work, "cloud"))
    cloud_port = cloud.port
    cloud.stop()
    procs = []
    with harness.reported(work, procs, lambda: [source, cloud]):
        cfg = {
            "gateway": "gw",
            "source": {"broker": source.uri, "topics": [{"topic": "s/{device}"}],
                       "fields": {"v": "/v"}},
            "pipelines": [{"name": "p", "window": {"type": "tumbling", "size": 100},
                           "aggregates": {"n": {"count": "*"}},
                           "event_time": {"idle_timeout": "1h"}}],
            "storage": {"path": os.path.join(work, "weir.db")},
            "uplink": {"broker": cloud.uri, "batch_max": 5, "max_rate": f"{MAX_RATE}/s",
                       "order": "live_first"},
        }
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir.log"))
        procs.append(weir)
        weir.wait_log("subscribed to")
        # Each reading closes the previous 100 ms window: one result per reading.
        harness.publish_lines(source.uri, "s/old", [json.dumps({"ts": BASE + i * 100, "v": i})
                                                    for i in range(BACKLOG + 1)])
        harness.wait_for("the backlog in weir's outbox", lambda: harness.sqlite_count(
            cfg["storage"]["path"], "SELECT count(*) FROM outbox") >= BACKLOG, 30)

        cloud = harness.Broker(os.path.join(work, "cloud"), port=cloud_port)
        capture_path = os.path.join(work, "capture.txt")
        capture = harness.Process(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(cloud_port),
                                   "-q", "1", "-t", "weir/#", "-F", "%U %p"], capture_path)
        procs.append(capture)
        time.sleep(0.3)  # the recorder subscribes (a clean session sees only what follows)

        # Live results while the backlog drains: device "new", 20 readings/s.
        stop = threading.Event()

        def live():
            i = 0
            while not stop.is_set() and i < 100:
                harness.publish_lines(source.uri, "s/new",
                                      [json.dumps({"ts": BASE + i * 100, "v": i})])
                i += 1
                time.sleep(0.05)
        feeder = threading.Thread(target=live)
        feeder.start()

        def arrivals():
            out = {}
            with open(capture_path) as f:
                for line in f:
                    parts = line.strip().split(" ", 1)
                    if len(parts) != 2:
                        continue
                    msg = json.loads(parts[1])
                    for r in msg if isinstance(msg, list) else [msg]:
                        out.setdefault(r["id"], float(parts[0]))
            return out
        harness.wait_for("every backlog result upstream", lambda: sum(
            1 for i in arrivals() if "/old/" in i) >= BACKLOG, 60, interval_s=0.2)
        stop.set()
        feeder.join()
        got = arrivals()
        old = sorted(t for i, t in got.items() if "/old/" in i)
        new = sorted(t for i, t in got.items() if "/new/" in i)
        if len(old) != BACKLOG:
            raise harness.Failure(f"{len(old)} backlog results upstream, want {BACKLOG}")
        if not new or new[0] >= old[-1]:
            raise harness.Failure("no live result arrived before the backlog finished draining")
        span = old[-1] - old[0]
        # At most MAX_RATE rows/s (with slack for the token bucket's burst).
        floor = (BACKLOG - MAX_RATE) / MAX_RATE * 0.8
        if span < floor:
            raise harness.Failure(f"backlog of {BACKLOG} drained in {span:.2f}s: faster than "
                                  f"max_rate {MAX_RATE}/s allows (>= {floor:.2f}s)")
        print(f"ok: {BACKLOG} backlog results drained in {span:.2f}s (max_rate {MAX_RATE}/s); "
              f"{len(new)} live results, the first {old[-1] - new[0]:.2f}s before the backlog ended")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
