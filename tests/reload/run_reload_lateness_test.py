#!/usr/bin/env python3
"""A SIGHUP that raises allowed_lateness (0 -> 1m, late drop -> update) must
not reopen windows that fired and were purged under the old setting: a late
reading for such a window is dropped, and no id ever arrives with two
different results at one revision (DESIGN 6.5: "never reuse an id for a
different result"). The engine keeps, per key, the end of the windows it
purged, checkpointed, so the reload's rebuilt engine still knows.

  run_reload_lateness_test.py --bin BUILD/bin
"""
import copy
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

G = rc.GATEWAY


def main():
    args, work, broker, procs = harness.setup("weir-reload-lateness.")
    with harness.reported(work, procs, [broker]):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        v1 = rc.config(broker.uri, db, [rc.pipeline("climate", "10s")])
        v2 = copy.deepcopy(v1)
        v2["pipelines"][0]["event_time"].update(
            {"allowed_lateness": "1m", "late": "update", "late_emit_delay": "0"})
        rc.write_json(cfg_path, v1)
        capture_path = os.path.join(work, "capture.txt")
        rc.start_capture(broker, capture_path, "rll-capture", procs)
        weir = rc.start_weir(args.bin, cfg_path, work, procs)

        feed = rc.Feed(broker.uri)
        feed.publish(0, 19)  # [0,10s) fires and, with lateness 0, is purged
        rc.wait_processed(db, feed.mark())
        harness.wait_for("[0,10s) recorded", lambda: sum(
            1 for _, rs, _ in rc.captured_messages(capture_path, rc.PROBE)
            for r in rs if r["id"].endswith(f"/{rc.BASE_TS}")) == 2, 15)

        rc.write_json(cfg_path, v2)
        weir.signal(signal.SIGHUP)
        rc.wait_log_count(weir, "reload applied", 1)
        # Late for [0,10s) (d1's watermark is at 18 s); then one in [10s,20s).
        harness.publish_lines(broker.uri, "sensors/d1/telemetry", [json.dumps(
            {"ts": rc.BASE_TS + 5000, "seq": 100, "t": 99.0})])
        harness.publish_lines(broker.uri, "sensors/d1/telemetry", [json.dumps(
            {"ts": rc.BASE_TS + 19_500, "seq": 101, "t": 1.0})])
        rc.wait_processed(db, feed.mark() + 2)
        time.sleep(1.5)  # late_emit_delay 0: anything it emits is out by now
        problems = rc.check_capture(rc.captured_messages(capture_path, rc.PROBE))
        if problems:
            raise harness.Failure("\n".join(problems))
        weir.stop(signal.SIGTERM)
        print("ok: raising allowed_lateness by SIGHUP reopened no purged window")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
