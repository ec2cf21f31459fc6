#!/usr/bin/env python3
"""`late: side` publishes the raw reading (DESIGN 5.4, 6.4): a reading too late for its
window reaches the uplink broker on the pipeline's topic followed by /late, as the
device sent it (a single-object payload byte for byte, an array element as the same
JSON), and is counted as late_dropped; readings that are not late never go there.

  late_side_test.py --bin BUILD/bin
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BASE = 1_700_000_000_000


def main():
    args, work, broker, procs = harness.setup("weir-late-side.")
    with harness.reported(work, procs, [broker]):
        cfg = {
            "gateway": "gw",
            "source": {"broker": broker.uri, "topics": [{"topic": "s/{device}"}],
                       "fields": {"v": "/v"}, "tags": {"note": "/note"}},
            "pipelines": [{"name": "p", "window": {"type": "tumbling", "size": "1s"},
                           "aggregates": {"n": {"count": "*"}},
                           "event_time": {"max_out_of_orderness": 0, "idle_timeout": "1h",
                                          "allowed_lateness": 0, "late": "side"}}],
            "storage": {"path": os.path.join(work, "weir.db")},
            "uplink": {"broker": broker.uri, "client_id": "weir-up", "batch_max": 10},
        }
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        capture_path = os.path.join(work, "late.txt")
        capture = harness.Process(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                                   "-q", "1", "-t", "weir/gw/p/late", "-t", "weir/gw/p",
                                   "-F", "%t %p"], capture_path)
        procs.append(capture)
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir.log"))
        procs.append(weir)
        weir.wait_log("subscribed to")
        time.sleep(0.3)  # mosquitto_sub subscribes (a clean session sees only what follows)

        # The watermark of d1 moves to BASE+5000: window [BASE+1000, BASE+2000) is closed.
        harness.publish_lines(broker.uri, "s/d1", [json.dumps({"ts": BASE + 5000, "v": 1})])
        # Late, as one object with white space, a tag and a key weir does not know.
        single = '{ "ts": %d, "v": 7, "note": "first",  "extra": [1, 2.50] }' % (BASE + 1000)
        harness.publish_lines(broker.uri, "s/d1", [single])
        # An array: the first element is on time, the second late.
        on_time = {"ts": BASE + 6000, "v": 2}
        late_el = {"ts": BASE + 1500, "v": 9, "note": "second", "deep": {"a": [True, None]}}
        harness.publish_lines(broker.uri, "s/d1", [json.dumps([on_time, late_el])])
        # Something after, so the on-time windows fire.
        harness.publish_lines(broker.uri, "s/d1", [json.dumps({"ts": BASE + 9000, "v": 3})])

        def messages():
            out = []
            with open(capture_path) as f:
                for line in f:
                    topic, _, payload = line.rstrip("\n").partition(" ")
                    if topic:
                        out.append((topic, payload))
            return out
        harness.wait_for("two late readings on weir/gw/p/late", lambda: sum(
            1 for t, _ in messages() if t.endswith("/late")) >= 2, 20)
        harness.wait_for("results on weir/gw/p", lambda: any(
            t == "weir/gw/p" for t, _ in messages()), 20)
        time.sleep(0.5)  # anything wrongly sent to /late would show by now
        late = []
        for t, p in messages():
            if not t.endswith("/late"):
                continue
            body = json.loads(p)
            late.extend(body if isinstance(body, list) else [body])
        late_raw = [p for t, p in messages() if t.endswith("/late")]
        if len(late) != 2:
            raise harness.Failure(f"{len(late)} late readings published, want 2: {late_raw}")
        # batch_max > 1: side readings travel in a JSON array like results (DESIGN 6.4).
        if not any(single.strip() in p for p in late_raw):
            raise harness.Failure(f"the single-object late reading was not published byte for "
                                  f"byte: sent {single!r}, got {late_raw}")
        if late_el not in late:
            raise harness.Failure(f"the late array element is not among {late}: want {late_el}")
        for t, p in messages():
            if t == "weir/gw/p":
                for r in (lambda b: b if isinstance(b, list) else [b])(json.loads(p)):
                    if "id" not in r:
                        raise harness.Failure(f"a non-result on the results topic: {p}")
        print("ok: late readings published raw on weir/gw/p/late:", late_raw)
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
