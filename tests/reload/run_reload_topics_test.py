#!/usr/bin/env python3
"""A SIGHUP that removes a source topic unsubscribes it in the running session
(DESIGN 6.5, issue 12: "source topics added or removed are subscribed or
unsubscribed while the persistent session stays"): afterwards the broker sends
weir nothing on that topic, so nothing is journaled, counted or rejected, and
weir did not reconnect. One that adds it back subscribes it again. A topic
removed from the file while weir is down leaves the session at the next start.

  run_reload_topics_test.py --bin BUILD/bin
"""
import copy
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

EXTRA = {"topic": "extra/{device}/data"}


def main():
    args, work, broker, procs = harness.setup("weir-reload-topics.")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        port = rc.free_port()
        v1 = rc.config(broker.uri, db, [rc.pipeline("climate", "10s")])
        v1["source"]["topics"].append(EXTRA)
        v1["metrics"] = {"listen": f"127.0.0.1:{port}"}
        v2 = copy.deepcopy(v1)
        v2["source"]["topics"] = [t for t in v2["source"]["topics"] if t != EXTRA]
        rc.write_json(cfg_path, v1)
        weir = rc.start_weir(args.bin, cfg_path, work, procs)

        def send(topic, device, seq):
            harness.publish_lines(broker.uri, topic.format(device=device), [json.dumps(
                {"ts": rc.BASE_TS + seq * 1000, "seq": seq, "t": 20.0})])

        def counts():
            m = rc.metrics(port)
            rejected = sum(v for k, v in m.items() if k.startswith("weir_rejected_total"))
            return m["weir_messages_total"], m["weir_readings_total"], rejected

        def wait_counts(want):
            # /metrics is a snapshot the loop refreshes on its tick.
            harness.wait_for(f"/metrics (messages, readings, rejected) = {want}",
                             lambda: counts() == want, 10)

        send("sensors/{device}/telemetry", "d1", 1)
        send("extra/{device}/data", "x1", 1)
        rc.wait_processed(db, 2)
        wait_counts((2, 2, 0))

        rc.write_json(cfg_path, v2)
        weir.signal(signal.SIGHUP)
        rc.wait_log_count(weir, "reload applied", 1)
        weir.wait_log("removed topic filter extra/+/data")
        # Published before the marker reading, from its own client: were the
        # filter still subscribed, the broker would deliver these first.
        for seq in range(2, 6):
            send("extra/{device}/data", "x1", seq)
        send("sensors/{device}/telemetry", "d1", 2)
        rc.wait_processed(db, 3)
        wait_counts((3, 3, 0))
        newest = harness.sqlite_count(db, "SELECT max(seq) FROM journal")
        if newest != 3:
            raise harness.Failure(f"journal holds {newest} messages, want 3: the removed topic "
                                  "still reaches weir")

        # And back: subscribed again in the same session.
        rc.write_json(cfg_path, v1)
        weir.signal(signal.SIGHUP)
        rc.wait_log_count(weir, "reload applied", 2)
        weir.wait_log("added topic filter extra/+/data")
        send("extra/{device}/data", "x1", 6)
        rc.wait_processed(db, 4)
        wait_counts((4, 4, 0))
        connects = rc.count_in_log(weir, "subscribed to ")
        if connects != 1:
            raise harness.Failure(f"weir connected {connects} times; the topic changes must not "
                                  "reconnect")
        rc.stop_weir(weir)

        # Removed while weir was down: the start applies the file's config
        # after recovery, and the topic leaves the persistent session.
        rc.write_json(cfg_path, v2)
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir2.log"))
        procs.append(weir)
        weir.wait_log("removed topic filter extra/+/data")
        send("extra/{device}/data", "x1", 7)
        send("sensors/{device}/telemetry", "d1", 3)
        rc.wait_processed(db, 5)
        newest = harness.sqlite_count(db, "SELECT max(seq) FROM journal")
        if newest != 5:
            raise harness.Failure(f"journal holds {newest} messages, want 5: the topic removed "
                                  "while weir was down still reaches it")
        rc.stop_weir(weir)
        print("ok: a removed source topic is unsubscribed (and an added one subscribed) in the "
              "running session, and on start when it was removed while weir was down")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
