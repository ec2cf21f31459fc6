#!/usr/bin/env python3
"""Malformed payloads of every kind between good ones, live through `weir
run` (DESIGN 6.1): the good readings' results are exactly what they would be
alone, each bad payload is counted under its reason in /metrics, and weir
keeps running.

  malformed_flood_test.py --bin BUILD/bin
"""
import json
import os
import socket
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import run_restart_test as rr  # noqa: E402

# (payload text, reason it is counted under) — DESIGN 6.1's list.
BAD = [
    ('{"ts": 1, "t": ', "bad_json"),
    ('[1, 2]', "not_object"),            # two elements, each rejected alone
    ('"text"', "not_object"),
    ('{"t": 20.5}', "missing_timestamp"),
    ('{"ts": "soon", "t": 20.5}', "missing_timestamp"),
    ('{"ts": 1700000000000, "t": "hot"}', "non_numeric_field"),
    ('{"ts": 1700000000000, "t": [1]}', "non_numeric_field"),
    ('{"ts": 1700000000000, "t": 1, "pad": "' + "x" * 70000 + '"}', "oversize"),
]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("weir_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def main():
    args, work, broker, procs = harness.setup("weir-flood.")
    with harness.reported(work, procs, [broker]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            mport = s.getsockname()[1]
        cfg = rr.config(broker.uri, os.path.join(work, "weir.db"))
        cfg["metrics"] = {"listen": f"127.0.0.1:{mport}"}
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        sink_db = os.path.join(work, "sink.db")
        sink = harness.Process([os.path.join(args.bin, "weir-sink"), "--broker", broker.uri,
                                "--topic", "weir/#", "--db", sink_db, "--quiet"],
                               os.path.join(work, "sink.log"))
        procs.append(sink)
        weir = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path],
                               os.path.join(work, "weir.log"))
        procs.append(weir)
        weir.wait_log("subscribed to")
        published = {}
        for d, device in enumerate(rr.DEVICES):
            lines, good = [], []
            for i in range(rr.READINGS):
                r = rr.reading(d, i)
                good.append(r)
                lines.append(json.dumps(r))
                if i % 7 == 3:
                    lines.append(BAD[(i // 7) % len(BAD)][0])
            close = {"ts": rr.BASE_TS + (rr.READINGS + 100) * 1000, "seq": rr.READINGS + 1,
                     "t": 0.0}
            good.append(close)
            lines.append(json.dumps(close))
            published[device] = good
            harness.publish_lines(broker.uri, f"sensors/{device}/telemetry", lines)
        # What each reason's counter must read: every bad payload (an array's
        # elements one by one).
        want = {reason: 0 for _, reason in BAD}
        for d in range(len(rr.DEVICES)):
            for i in range(rr.READINGS):
                if i % 7 == 3:
                    reason = BAD[(i // 7) % len(BAD)][1]
                    want[reason] += 2 if BAD[(i // 7) % len(BAD)][0] == "[1, 2]" else 1
        expected = rr.expected_results(published)
        harness.wait_for("the good results at the sink",
                         lambda: not rr.check(expected, harness.sink_rows(sink_db)), 60)
        got = harness.wait_for("the reject counters", lambda: (
            lambda m: m if all(m.get(k, 0) >= v for k, v in want.items()) else None)(
                metrics(mport)), 20)
        wrong = {k: (got.get(k, 0), v) for k, v in want.items() if got.get(k, 0) != v}
        if wrong:
            raise harness.Failure(f"reject counters (got, want): {wrong}")
        if not weir.alive():
            raise harness.Failure("weir run exited")
        print(f"ok: {len(expected)} results exact among {sum(want.values())} bad payloads; "
              f"counters {want}")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
