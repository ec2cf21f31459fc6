#!/usr/bin/env python3
"""The gateway broker is restarted under weir (DESIGN 6.1, 6.2): weir
reconnects, resumes its persistent session and loses no reading it
acknowledged; readings the broker redelivers are dropped by seq dedup, so
every window at the sink has exactly the readings published.

  source_bounce_test.py --bin BUILD/bin
"""
import argparse
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import run_restart_test as rr  # noqa: E402  (config, readings and expected windows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    work = harness.temp_dir("weir-bounce.")
    gateway = harness.Broker(os.path.join(work, "gateway"), persistence=True)
    cloud = harness.Broker(os.path.join(work, "cloud"))
    procs = []
    with harness.reported(work, procs, lambda: [gateway, cloud]):
        cfg = rr.config(gateway.uri, os.path.join(work, "weir.db"))
        cfg["uplink"]["broker"] = cloud.uri
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        sink_db = os.path.join(work, "sink.db")
        sink = harness.Process([os.path.join(args.bin, "weir-sink"), "--broker", cloud.uri,
                                "--topic", "weir/#", "--db", sink_db, "--quiet"],
                               os.path.join(work, "sink.log"))
        procs.append(sink)
        # Results published to the cloud broker before the sink has subscribed
        # would be dropped there (a new session): wait for it.
        sink.wait_log("subscribed to")
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir.log"))
        procs.append(weir)
        weir.wait_log("subscribed to")

        published = {d: [] for d in rr.DEVICES}

        def publish(lo, hi):
            threads = []
            for d, device in enumerate(rr.DEVICES):
                rs = [rr.reading(d, i) for i in range(lo, hi)]
                published[device].extend(rs)
                t = threading.Thread(target=harness.publish_lines, args=(
                    gateway.uri, f"sensors/{device}/telemetry", [json.dumps(r) for r in rs]))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()

        publish(0, 30)
        # Restart the broker while weir is consuming; the broker saves its
        # sessions and queued messages on SIGTERM and loads them again.
        port = gateway.port
        gateway.stop()
        gateway = harness.Broker(os.path.join(work, "gateway"), port=port, persistence=True)
        weir.wait_log("subscribed to", count=2, timeout_s=60)
        publish(30, rr.READINGS)
        for d, device in enumerate(rr.DEVICES):
            r = {"ts": rr.BASE_TS + (rr.READINGS + 100) * 1000, "seq": rr.READINGS + 1, "t": 0.0}
            published[device].append(r)
            harness.publish_lines(gateway.uri, f"sensors/{device}/telemetry", [json.dumps(r)])
        expected = rr.expected_results(published)
        try:
            harness.wait_for("every expected result at the sink",
                             lambda: not rr.check(expected, harness.sink_rows(sink_db)), 60)
        except harness.Failure:
            print("\n".join(rr.check(expected, harness.sink_rows(sink_db))[:30]))
            raise
        print(f"ok: {len(expected)} results exact after a gateway broker restart")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
