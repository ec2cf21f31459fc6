#!/usr/bin/env python3
"""A config edited while weir runs, then kill -9 before any SIGHUP, then a
restart (DESIGN 6.5): weir must recover under the config the state was
written with (here: everything it took in is still a journal tail, since the
first config commits only every hour), emit the open windows of the old
definition as --drain would, and go on under the new one as generation 1.
Then a clean stop, another edit and a start give generation 2: generations
survive restarts.

  run_reload_restart_test.py --bin BUILD/bin
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

G = rc.GATEWAY


def main():
    args, work, broker, procs = harness.setup("weir-reload-restart.")
    weir_bin = os.path.join(args.bin, "weir")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        v1 = rc.config(broker.uri, db, [rc.pipeline("climate", "10s")], batch_max=5)
        # No commit while it runs: what it takes in stays a journal tail.
        v1["storage"]["commit_interval"] = "1h"
        v2 = rc.config(broker.uri, db, [rc.pipeline("climate", "20s")], batch_max=5)
        v3 = rc.config(broker.uri, db, [rc.pipeline("climate", "30s")], batch_max=5)
        rc.write_json(cfg_path, v1)

        _, sink_db = rc.start_sink(args.bin, broker, work, "rlr-sink", procs)
        weir_log = os.path.join(work, "weir.log")

        def start_weir():
            after = len(open(weir_log, "rb").read()) if os.path.exists(weir_log) else 0
            return rc.start_weir(args.bin, cfg_path, work, procs, after=after), after

        weir, _ = start_weir()
        feed = rc.Feed(broker.uri)
        # Windows [0,10s) and [10,20s) close inside these messages; [20,30s) stays open.
        feed.publish(0, 25)
        harness.wait_for("both messages journaled",
                         lambda: rc.journal_newest(db) >= feed.mark(), 15)
        gen0_upto = feed.mark()

        # Edit, then crash before any SIGHUP.
        rc.write_json(cfg_path, v2)
        weir.stop(signal.SIGKILL)
        # Readings the broker queues for weir's session meanwhile: the new config's.
        feed.publish(25, 45)
        weir, after = start_weir()
        log = weir.log_text()[after:]
        for want in ("recovered under the stored one",
                     "pipeline climate: definition changed (window.size: 10000 -> 20000)",
                     "ids climate~1"):
            if want not in log:
                raise harness.Failure(f"no {want!r} in the log after the restart:\n{log[-2000:]}")

        climate0 = rc.final_results(rc.replay(weir_bin, work, "gen0", v1,
                                              feed.messages[:gen0_upto], drain=True))
        # [20,40s) of generation 1 holds 25..39 and closes at 40 s.
        gen1_closed = rc.final_results(rc.replay(weir_bin, work, "gen1-live", v2,
                                                 feed.messages[gen0_upto:], drain=False),
                                       rename=("climate", "climate~1"))
        rc.wait_results("generation 0 drained, generation 1 live", sink_db, [
            lambda rows: rc.compare("climate", climate0, rows, f"{G}/climate/"),
            lambda rows: rc.compare("climate~1", gen1_closed, rows, f"{G}/climate~1/"),
        ])
        if rc.stored_generations(db).get("climate", (None,))[0] != 1:
            raise harness.Failure(f"stored generations {rc.stored_generations(db)}, want 1")

        # A clean stop, another edit, a start: generation 2.
        rc.wait_processed(db, feed.mark())
        rc.stop_weir(weir)
        rc.write_json(cfg_path, v3)
        weir, after = start_weir()
        log = weir.log_text()[after:]
        if "pipeline climate: definition changed (window.size: 20000 -> 30000)" not in log or \
                "ids climate~2" not in log:
            raise harness.Failure(f"the second change is not logged:\n{log[-2000:]}")
        gen2_from = feed.mark()
        feed.publish(45, 120)
        climate1 = rc.final_results(rc.replay(weir_bin, work, "gen1", v2,
                                              feed.messages[gen0_upto:gen2_from], drain=True),
                                    rename=("climate", "climate~1"))
        climate2 = rc.final_results(rc.replay(weir_bin, work, "gen2", v3,
                                              feed.messages[gen2_from:], drain=False),
                                    rename=("climate", "climate~2"))
        if not climate2:
            raise harness.Failure("the test's readings close no climate~2 window")
        rc.wait_results("every generation's results", sink_db, [
            lambda rows: rc.compare("climate", climate0, rows, f"{G}/climate/"),
            lambda rows: rc.compare("climate~1", climate1, rows, f"{G}/climate~1/"),
            lambda rows: rc.compare("climate~2", climate2, rows, f"{G}/climate~2/"),
        ])
        if rc.stored_generations(db).get("climate", (None,))[0] != 2:
            raise harness.Failure(f"stored generations {rc.stored_generations(db)}, want 2")
        rc.stop_weir(weir)
        print(f"ok: kill -9 after an edit recovered under the old config "
              f"({len(climate0)} results = replay --drain), then generations 1 and 2 "
              f"({len(climate1)}/{len(climate2)} results) across restarts")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
