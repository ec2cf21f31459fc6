#!/usr/bin/env python3
"""Settings outside the definition take effect at the reload (DESIGN 6.5),
and processing time carries on across it: under idle_timeout 1h an open
window of a silent device stays open; a SIGHUP that lowers idle_timeout to
1s (state kept) fires it by idleness (DESIGN 5.2) within seconds, with the
readings it held, at revision 0 under its old id. Expected values are worked
out here from the readings. The reload rebuilds the pipelines from their
checkpoint: /metrics must count each reading once across it.

  run_reload_settings_test.py --bin BUILD/bin
"""
import copy
import math
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload_common as rc  # noqa: E402
from reload_common import harness  # noqa: E402

G = rc.GATEWAY


def main():
    args, work, broker, procs = harness.setup("weir-reload-settings.")
    with harness.reported(work, procs, [broker], log_name="weir.log"):
        db = os.path.join(work, "weir.db")
        cfg_path = os.path.join(work, "weir.json")
        v1 = rc.config(broker.uri, db, [rc.pipeline("climate", "10s")])
        metrics_port = rc.free_port()
        v1["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
        v2 = copy.deepcopy(v1)
        v2["pipelines"][0]["event_time"]["idle_timeout"] = "1s"
        rc.write_json(cfg_path, v1)
        _, sink_db = rc.start_sink(args.bin, broker, work, "rlt-sink", procs)
        weir = rc.start_weir(args.bin, cfg_path, work, procs)

        feed = rc.Feed(broker.uri)
        feed.publish(0, 19)  # d1 and d2: [0,10s) closes, [10s,20s) holds 10..18
        rc.wait_processed(db, feed.mark())
        first = {f"{G}/climate/{dev}/{rc.BASE_TS}" for dev in rc.DEVICES}
        harness.wait_for("[0,10s) of both devices", lambda: set(harness.sink_rows(sink_db)) ==
                         first, 15)
        # Silent for 2.5 s: under idle_timeout 1h nothing more may fire.
        time.sleep(2.5)
        if set(harness.sink_rows(sink_db)) != first:
            raise harness.Failure(f"fired without idleness: {sorted(harness.sink_rows(sink_db))}")

        rc.write_json(cfg_path, v2)
        weir.signal(signal.SIGHUP)
        rc.wait_log_count(weir, "reload applied", 1)
        if "from now on event_time.idle_timeout: 3600000 -> 1000" not in weir.log_text():
            raise harness.Failure("the idle_timeout change is not logged:\n" +
                                  weir.log_text()[-2000:])
        # Each device has been silent for over 2.5 s with lag = arrival - 18 s,
        # so its idle watermark is past 20 s at the first step after the reload.
        expected = {}
        for d, dev in enumerate(rc.DEVICES):
            temps = [rc.reading(d, i)["t"] for i in range(10, 19)]
            start = rc.BASE_TS + 10_000
            expected[f"{G}/climate/{dev}/{start}"] = {
                "rev": 0, "pipeline": "climate", "key": {"device": dev}, "start": start,
                "end": start + 10_000, "count": len(temps),
                "values": {"n": len(temps), "t_sum": math.fsum(temps), "t_max": max(temps)}}
        for dev_id in first:
            d = rc.DEVICES.index(dev_id.split("/")[2])
            temps = [rc.reading(d, i)["t"] for i in range(0, 10)]
            expected[dev_id] = {
                "rev": 0, "pipeline": "climate", "key": {"device": dev_id.split("/")[2]},
                "start": rc.BASE_TS, "end": rc.BASE_TS + 10_000, "count": 10,
                "values": {"n": 10, "t_sum": math.fsum(temps), "t_max": max(temps)}}
        rc.wait_results("[10s,20s) fired by idleness after the reload", sink_db,
                        [lambda rows: rc.compare("climate", expected, rows, f"{G}/climate/")], 10)

        def metric(name):
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                          timeout=5).read().decode()
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
            raise harness.Failure(f"no {name} in /metrics:\n{text[:2000]}")
        published = 19 * len(rc.DEVICES)
        time.sleep(0.3)  # a tick publishes the snapshot
        for name in ("weir_readings_total", 'weir_pipeline_readings_total{pipeline="climate"}'):
            if metric(name) != published:
                raise harness.Failure(f"{name} is {metric(name)} after the reload, want "
                                      f"{published}")
        if metric('weir_config_reloads_total{result="applied"}') != 1:
            raise harness.Failure("the applied reload is not counted")
        rc.stop_weir(weir)
        print("ok: idle_timeout lowered by SIGHUP fired the silent devices' open windows, state "
              "kept")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
