#!/usr/bin/env python3
"""SIGHUP reloads of a running `weir run` (DESIGN 6.5), end to end: a private
Mosquitto, mosquitto_pub as the devices, weir-sink as the cloud side and a
mosquitto_sub that records every uplink message.

  1. SIGHUP adding pipeline `peak` and raising uplink.batch_max 1 -> 5;
  2. SIGHUP with an invalid config: rejected with the errors `weir validate`
     prints, weir keeps running under the old config;
  3. SIGHUP changing climate's window 10s -> 20s: climate's results up to the
     change equal `weir replay --drain` of the same readings under the first
     config; ids from then on carry `climate~1`;
  4. SIGHUP removing `peak`: its open windows are drained, and its results
     equal replay --drain over the readings it saw;
  5. SIGHUP changing climate again (20s -> 30s): ids carry `climate~2`; and
     adding `peak` back: it starts empty as generation 1 (`peak~1`), the
     generation reserved when it was removed, so no old id comes back.
Throughout: weir never exits, no (id, rev) ever arrives with two different
results, and results name the bare pipeline on the bare pipeline's topic.

  run_reload_test.py --bin BUILD/bin
"""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

G = rc.GATEWAY


def main():
    args, work, broker, procs = harness.setup("weir-reload.")
    weir_bin = os.path.join(args.bin, "weir")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        climate10 = rc.pipeline("climate", "10s")
        climate20 = rc.pipeline("climate", "20s")
        climate30 = rc.pipeline("climate", "30s")
        peak = rc.pipeline("peak", "20s", {"n": {"count": "*"}, "t_max": {"max": "temp"}})
        v1 = rc.config(broker.uri, db, [climate10], batch_max=1)
        v2 = rc.config(broker.uri, db, [climate10, peak], batch_max=5)
        v3 = rc.config(broker.uri, db, [climate20, peak], batch_max=5)
        v4 = rc.config(broker.uri, db, [climate20], batch_max=5)
        # peak comes back: its name's next generation was reserved at removal.
        v5 = rc.config(broker.uri, db, [climate30, peak], batch_max=5)
        rc.write_json(cfg_path, v1)

        _, sink_db = rc.start_sink(args.bin, broker, work, "rl-sink", procs)
        capture_path = os.path.join(work, "capture.txt")
        rc.start_capture(broker, capture_path, "rl-capture", procs)

        weir = rc.start_weir(args.bin, cfg_path, work, procs)
        feed = rc.Feed(broker.uri)

        def sighup(n_applied=None, n_rejected=None):
            weir.signal(signal.SIGHUP)
            if n_applied:
                rc.wait_log_count(weir, "reload applied", n_applied)
            if n_rejected:
                rc.wait_log_count(weir, "reload rejected", n_rejected)

        def ids(rows, pipeline):
            return sorted(i for i in rows if i.startswith(f"{G}/{pipeline}/"))

        # Phase A, v1: one message per reading; windows [0,10s) and [10,20s) close.
        feed.publish(0, 25, as_array=False)
        harness.wait_for("climate's first windows at the sink",
                         lambda: len(ids(harness.sink_rows(sink_db), "climate")) == 4)

        # 1. Add `peak`, batch_max 1 -> 5.
        rc.wait_processed(db, feed.mark())
        rc.write_json(cfg_path, v2)
        sighup(n_applied=1)
        log = weir.log_text()
        for want in ("pipeline climate: definition unchanged", "pipeline peak: new"):
            if want not in log:
                raise harness.Failure(f"no {want!r} in the log:\n{log[-2000:]}")
        peak_from = feed.mark()
        # Phase B: one array per device: 25..44 closes climate [20,30) and
        # [30,40) in one message (one commit, one topic: one uplink batch) and
        # peak's [20,40), which saw 25..39 only.
        feed.publish(25, 45)
        harness.wait_for("phase B results", lambda: (
            len(ids(harness.sink_rows(sink_db), "climate")) == 8 and
            len(ids(harness.sink_rows(sink_db), "peak")) == 2))

        # 2. An invalid config: rejected with what `weir validate` prints.
        bad = json.loads(json.dumps(v2))
        bad["pipelines"][0]["window"]["size"] = "ten seconds"
        bad["pipelines"][1]["aggregates"]["t_max"] = {"max": "pressure"}
        rc.write_json(cfg_path, bad)
        val = subprocess.run([weir_bin, "validate", cfg_path], capture_output=True, text=True,
                             timeout=30)
        if val.returncode != 2:
            raise harness.Failure(f"weir validate exited {val.returncode} on the bad config")
        error_lines = [l for l in (val.stdout + val.stderr).splitlines() if l.strip()]
        sighup(n_rejected=1)
        log = weir.log_text()
        missing = [l for l in error_lines if l not in log]
        if missing or len(error_lines) < 2:
            raise harness.Failure(f"the rejection does not log what weir validate prints; "
                                  f"missing {missing} of {error_lines}:\n{log[-2000:]}")
        if not weir.alive():
            raise harness.Failure("weir exited on an invalid config")

        # Phase C, still v2 in force: climate [40,50) closes; [50,60) and
        # peak's [40,60) stay open.
        feed.publish(45, 55)
        harness.wait_for("climate [40,50)", lambda: len(
            ids(harness.sink_rows(sink_db), "climate")) == 10)
        climate0_upto = feed.mark()

        # 3. climate 10s -> 20s.
        rc.wait_processed(db, feed.mark())
        rc.write_json(cfg_path, v3)
        sighup(n_applied=2)
        if "pipeline climate: definition changed (window.size: 10000 -> 20000)" \
                not in weir.log_text():
            raise harness.Failure("the change of window.size is not logged:\n" +
                                  weir.log_text()[-2000:])
        if "pipeline peak: definition unchanged" not in weir.log_text():
            raise harness.Failure("peak's carrying on is not logged")
        climate0 = rc.final_results(rc.replay(weir_bin, work, "climate0", v1,
                                              feed.messages[:climate0_upto], drain=True))
        rc.wait_results("climate under the first config = replay --drain", sink_db,
                        [lambda rows: rc.compare("climate", climate0, rows, f"{G}/climate/")])

        # Phase D: climate~1 [40,60) gets 55..59 only, [60,80) closes; peak's
        # [40,60) and [60,80) close, [80,100) stays open.
        climate1_from = feed.mark()
        feed.publish(55, 85)
        harness.wait_for("climate~1 [60,80)", lambda: len(
            ids(harness.sink_rows(sink_db), "climate~1")) == 4)

        # 4. Remove peak: its open [80,100) windows are drained.
        rc.wait_processed(db, feed.mark())
        rc.write_json(cfg_path, v4)
        sighup(n_applied=3)
        if "pipeline peak: removed" not in weir.log_text():
            raise harness.Failure("peak's removal is not logged")
        peak_cfg = rc.config(broker.uri, db, [peak])
        peak_expected = rc.final_results(rc.replay(weir_bin, work, "peak", peak_cfg,
                                                   feed.messages[peak_from:], drain=True))
        rc.wait_results("peak = replay --drain over what it saw", sink_db,
                        [lambda rows: rc.compare("peak", peak_expected, rows, f"{G}/peak/")])

        # Phase E: climate~1 [80,100) stays open (max ts 99 s).
        feed.publish(85, 100)
        climate1_upto = feed.mark()
        # Taken in under generation 1 before the next SIGHUP (nothing fires).
        rc.wait_processed(db, feed.mark())

        # 5. climate 20s -> 30s: generation 2.
        rc.write_json(cfg_path, v5)
        sighup(n_applied=4)
        if "(window.size: 20000 -> 30000)" not in weir.log_text() or \
                "ids climate~2" not in weir.log_text() or \
                "pipeline peak: new; starting empty as generation 1 (ids peak~1)" \
                not in weir.log_text():
            raise harness.Failure("the second change is not logged:\n" + weir.log_text()[-2000:])
        climate1 = rc.final_results(
            rc.replay(weir_bin, work, "climate1", v4, feed.messages[climate1_from:climate1_upto],
                      drain=True), rename=("climate", "climate~1"))
        climate2_from = feed.mark()
        feed.publish(100, 161)
        climate2 = rc.final_results(
            rc.replay(weir_bin, work, "climate2", rc.config(broker.uri, db, [climate30]),
                      feed.messages[climate2_from:], drain=False),
            rename=("climate", "climate~2"))
        peak1 = rc.final_results(
            rc.replay(weir_bin, work, "peak1", peak_cfg, feed.messages[climate2_from:],
                      drain=False), rename=("peak", "peak~1"))
        if not climate2 or not peak1:
            raise harness.Failure("the test's readings close no climate~2 or peak~1 window")
        rc.wait_results("every generation's results", sink_db, [
            lambda rows: rc.compare("climate", climate0, rows, f"{G}/climate/"),
            lambda rows: rc.compare("climate~1", climate1, rows, f"{G}/climate~1/"),
            lambda rows: rc.compare("climate~2", climate2, rows, f"{G}/climate~2/"),
            lambda rows: rc.compare("peak", peak_expected, rows, f"{G}/peak/"),
            lambda rows: rc.compare("peak~1", peak1, rows, f"{G}/peak~1/"),
        ])

        # Every message the uplink sent, as the recorder saw it.
        msgs = rc.captured_messages(capture_path, skip_topic=rc.PROBE)
        problems = rc.check_capture(msgs)
        too_big = [m for m in msgs if len(m[1]) > 5]
        if too_big:
            problems.append(f"a batch larger than batch_max 5: {too_big[0]}")
        if not any(is_array and len(results) >= 2 for _, results, is_array in msgs):
            problems.append("no uplink message carried more than one result after batch_max 5")
        first_four = msgs[:4]
        if any(is_array for _, _, is_array in first_four):
            problems.append("results sent under batch_max 1 were not single objects")
        all_ids = {r["id"] for _, results, _ in msgs for r in results}
        want_ids = (set(climate0) | set(climate1) | set(climate2) | set(peak_expected) |
                    set(peak1))
        if want_ids - all_ids:
            problems.append(f"the recorder missed {sorted(want_ids - all_ids)[:5]}")
        if problems:
            raise harness.Failure("\n".join(problems[:20]))

        if not weir.alive():
            raise harness.Failure("weir exited")
        rc.stop_weir(weir)
        print(f"ok: 4 reloads applied and 1 rejected; climate generations 0/1/2 "
              f"({len(climate0)}/{len(climate1)}/{len(climate2)} results) and peak/peak~1 "
              f"({len(peak_expected)}/{len(peak1)}) equal weir replay; {len(msgs)} uplink messages consistent")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
