#!/usr/bin/env python3
"""End to end: `weir run` with metrics, `weir status`, SIGHUP counters, logs.

Two private Mosquittos: one the gateway's (weir-sim publishes there), one
the cloud's (weir's uplink). The test
  1. scrapes /metrics and parses it with prometheus_client's parser (Debian's
     python3-prometheus-client): every family of DESIGN 7 is there and
     weir_readings_total grows;
  2. sends SIGHUP with the same config (applied) and with a broken one
     (rejected) and reads weir_config_reloads_total; every log line is one
     line with time, level and component;
  3. stops the uplink broker: `weir status --db` shows a growing backlog with
     an oldest pending age; restarts it on the same port: the backlog goes;
  4. stops it again, restarts weir during the outage (everything pending is
     then backlog, drained at uplink.max_rate), restarts the broker:
     `weir status --db --watch --json` shows a decreasing backlog with a
     finite ETA, and one `weir status --db --url` shows an ETA from the
     metrics' delivery rate;
  5. checks `weir status` exit codes.
"""
import argparse
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a pyenv or venv python: use Debian's package
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BROKER = os.path.join(ROOT, "tests", "broker.py")

# Families a scrape must have (prometheus_client drops a counter's _total).
EXPECTED_FAMILIES = {
    "weir_readings": "counter",
    "weir_messages": "counter",
    "weir_rejected": "counter",
    "weir_duplicates": "counter",
    "weir_dedup_unchecked": "counter",
    "weir_late_updates": "counter",
    "weir_late_dropped": "counter",
    "weir_results": "counter",
    "weir_open_windows": "gauge",
    "weir_keys": "gauge",
    "weir_spilled_keys": "gauge",
    "weir_watermark_lag_seconds": "gauge",
    "weir_pipeline_generation": "gauge",
    "weir_journal_rows": "gauge",
    "weir_outbox_rows": "gauge",
    "weir_outbox_bytes": "gauge",
    "weir_outbox_oldest_age_seconds": "gauge",
    "weir_storage_commit_latency_seconds": "gauge",
    "weir_storage_file_bytes": "gauge",
    "weir_uplink_connected": "gauge",
    "weir_uplink_state": "gauge",
    "weir_uplink_delivered_rows": "counter",
    "weir_uplink_delivery_rate": "gauge",
    "weir_source_connected": "gauge",
    "weir_source_state": "gauge",
    "weir_config_reloads": "counter",
}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) [a-z]+: ")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr, flush=True)
    return cond


def wait_for(pred, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(directory, port=None):
    cmd = [sys.executable, BROKER, "start", "--dir", directory]
    if port:
        cmd += ["--port", str(port)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout
    port, pid = out.split()
    return int(port), int(pid)


def stop_broker(pid):
    subprocess.run([sys.executable, BROKER, "stop", str(pid)], check=True, timeout=30)


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    families = {}
    for f in text_string_to_metric_families(text):
        families[f.name] = f
    return text, families


def value(families, family, sample=None, **labels):
    f = families[family]
    for s in f.samples:
        if sample and s.name != sample:
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(f"{family} {labels}")


def status(weir, *args):
    p = subprocess.run([weir, "status", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def status_json(weir, *args):
    rc, out, err = status(weir, *args, "--json")
    if rc != 0:
        raise AssertionError(f"weir status {args} exited {rc}: {err}")
    return json.loads(out)


class Weir:
    def __init__(self, weir, config, log_path):
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen([weir, "run", config], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with weir and weir-sim")
    a = ap.parse_args()
    weir = os.path.join(a.bin, "weir")
    sim = os.path.join(a.bin, "weir-sim")
    work = tempfile.mkdtemp(prefix="weir-ops-")
    procs = []
    brokers = []
    weir_proc = None
    try:
        src_port, src_pid = start_broker(os.path.join(work, "source-broker"))
        brokers.append(src_pid)
        up_port, up_pid = start_broker(os.path.join(work, "uplink-broker"))
        brokers.append(up_pid)
        metrics_port = free_port()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        db = os.path.join(work, "weir.db")
        config = {
            "gateway": "ops",
            "source": {
                "broker": f"tcp://127.0.0.1:{src_port}",
                "topics": [{"topic": "sensors/{device}/telemetry", "format": "json"}],
                "seq": "/seq",
                "fields": {"temp": "/t", "hum": "/h"},
            },
            "pipelines": [{
                "name": "climate",
                "window": {"type": "tumbling", "size": "1s"},
                "aggregates": {"n": {"count": "*"}, "temp_avg": {"avg": "temp"}},
            }],
            "storage": {"path": db},
            # A backlog left from before a restart drains at 40 rows/s: slow
            # enough for status to watch it go.
            "uplink": {"broker": f"tcp://127.0.0.1:{up_port}", "topic": "weir/{gateway}/{pipeline}",
                       "batch_max": 5, "max_rate": "40/s"},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        }
        config_path = os.path.join(work, "weir.json")
        good_text = json.dumps(config, indent=2)
        with open(config_path, "w") as f:
            f.write(good_text)
        log_path = os.path.join(work, "weir.log")

        # Before weir runs: no database, no endpoint -> exit 1 with a message.
        rc, out, err = status(weir, "--db", db)
        check(rc == 1 and db in err, f"status on a missing db exits 1 naming it (rc {rc}, {err!r})")
        check(not os.path.exists(db), "status --db created no database")
        rc, out, err = status(weir, "--url", url)
        check(rc == 1 and "cannot read" in err, f"status on a closed url exits 1 (rc {rc}, {err!r})")
        rc, out, err = status(weir)
        check(rc == 1 and "--db" in err, f"status with neither --db nor --url exits 1 ({err!r})")

        weir_proc = Weir(weir, config_path, log_path)
        # 10 devices, one reading a second each, 5x: 50 readings/s, ~50 results/s.
        sim_proc = subprocess.Popen(
            [sim, "--broker", f"tcp://127.0.0.1:{src_port}", "--scenario",
             os.path.join(ROOT, "configs", "scenarios", "demo.json"), "--time-scale", "5",
             "--duration", "24h"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sim.log"), "w"))
        procs.append(sim_proc)

        # ---- 1. /metrics ------------------------------------------------------
        def scraped():
            try:
                return scrape(url)
            except OSError:
                return None
        text, fam = wait_for(scraped, "/metrics to answer")
        r1 = wait_for(lambda: (lambda t: value(t[1], "weir_readings", "weir_readings_total") > 0 and t)(
            scrape(url)), "readings to arrive")[1]
        first = value(r1, "weir_readings", "weir_readings_total")
        text, fam = wait_for(
            lambda: (lambda t: value(t[1], "weir_readings", "weir_readings_total") > first and t)(
                scrape(url)), "weir_readings_total to grow")
        for name, kind in EXPECTED_FAMILIES.items():
            if check(name in fam, f"/metrics has family {name}"):
                check(fam[name].type == kind, f"{name} is a {kind} (got {fam[name].type})")
        check("# HELP weir_readings_total " in text, "HELP line for weir_readings_total")
        check(value(fam, "weir_rejected", "weir_rejected_total", reason="bad_json") == 0,
              "weir_rejected_total{reason=bad_json} is 0")
        check(value(fam, "weir_open_windows", pipeline="climate") >= 1, "open windows of climate")
        check(value(fam, "weir_pipeline_generation", pipeline="climate") == 0, "generation 0")
        check(value(fam, "weir_source_connected") == 1, "source connected")
        wait_for(lambda: value(scrape(url)[1], "weir_uplink_connected") == 1, "uplink connected")
        _, fam = wait_for(lambda: (lambda t: value(t[1], "weir_results", "weir_results_total",
                                                   pipeline="climate") > 0 and t)(scrape(url)),
                          "results")
        wait_for(lambda: value(scrape(url)[1], "weir_uplink_delivered_rows",
                               "weir_uplink_delivered_rows_total") > 0, "results delivered")

        # status on a live database, and from the URL.
        s = status_json(weir, "--db", db, "--url", url)
        check(s["ok"] and s["uplink"]["state"] == "connected", f"status sees the uplink connected: {s}")
        check([p["name"] for p in s["pipelines"]] == ["climate"], "status lists the pipeline")
        check(s["pipelines"][0]["generation"] == 0 and len(s["pipelines"][0]["fingerprint"]) == 64,
              "status: generation and fingerprint")
        check(s["config"] is not None and len(s["config"]["fingerprint"]) == 64,
              "status: config last applied with its fingerprint")
        rc, out, err = status(weir, "--db", db, "--url", url)
        check(rc == 0 and "pipeline    climate: generation 0" in out and "uplink      connected" in out,
              f"human status:\n{out}{err}")
        # The database readable, the URL not: exit 0 (DESIGN 3), the URL's error reported.
        rc, out, err = status(weir, "--db", db, "--url", "http://127.0.0.1:1/metrics")
        check(rc == 0 and "cannot read http://127.0.0.1:1/metrics" in out + err,
              f"status with a good --db and a dead --url exits 0 and says so (rc {rc}):\n{out}{err}")

        # ---- 2. reloads --------------------------------------------------------
        weir_proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: value(scrape(url)[1], "weir_config_reloads", "weir_config_reloads_total",
                               result="applied") == 1, "reload applied counted")
        with open(config_path, "w") as f:
            f.write(good_text.replace('"size": "1s"', '"size": "1 second"'))
        weir_proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: value(scrape(url)[1], "weir_config_reloads", "weir_config_reloads_total",
                               result="rejected") == 1, "reload rejected counted")
        with open(config_path, "w") as f:
            f.write(good_text)
        with open(log_path) as f:
            log = f.read().splitlines()
        bad = [line for line in log if not LOG_LINE.match(line)]
        check(not bad, f"every log line has time, level and component: {bad[:5]}")
        check(any("reload rejected" in line and "/pipelines/0/window/size" in line for line in log),
              "the rejected reload's errors are on its one log line")

        # ---- 3. uplink broker down and back ------------------------------------
        stop_broker(up_pid)
        brokers.remove(up_pid)
        wait_for(lambda: value(scrape(url)[1], "weir_uplink_connected") == 0, "uplink disconnected")
        s1 = wait_for(lambda: (lambda s: s["backlog"]["rows"] >= 100 and s)(
            status_json(weir, "--db", db)), "a backlog in the database")
        s2 = wait_for(lambda: (lambda s: s["backlog"]["rows"] > s1["backlog"]["rows"] and s)(
            status_json(weir, "--db", db)), "the backlog to grow")
        check(s2["backlog"]["bytes"] > 0 and s2["backlog"]["oldest_age_ms"] > 0,
              f"backlog bytes and oldest age: {s2['backlog']}")
        _, fam = scrape(url)
        check(value(fam, "weir_outbox_rows") > 0 and value(fam, "weir_outbox_oldest_age_seconds") > 0,
              "metrics show the backlog and its age")
        up_port2, up_pid = start_broker(os.path.join(work, "uplink-broker"), up_port)
        brokers.append(up_pid)
        wait_for(lambda: value(scrape(url)[1], "weir_uplink_connected") == 1, "uplink reconnected",
                 timeout=90)
        wait_for(lambda: status_json(weir, "--db", db)["backlog"]["rows"] < 100,
                 "the backlog to drain after the broker came back", timeout=90)

        # ---- 4. a backlog across a restart drains at max_rate ------------------
        stop_broker(up_pid)
        brokers.remove(up_pid)
        wait_for(lambda: status_json(weir, "--db", db)["backlog"]["rows"] >= 600,
                 "a backlog of 600 results", timeout=120)
        check(weir_proc.stop() == 0, "weir exits 0 on SIGTERM")
        weir_proc = Weir(weir, config_path, log_path)
        wait_for(scraped, "/metrics after the restart")
        watch = subprocess.Popen([weir, "status", "--db", db, "--watch", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(watch)
        samples = []

        def read_watch(until):
            while time.monotonic() < until:
                r, _, _ = select.select([watch.stdout], [], [], 0.2)
                if r:
                    line = watch.stdout.readline()
                    if not line:
                        return
                    samples.append(json.loads(line))
                    if samples[-1]["backlog"]["rows"] < 40 and len(samples) > 3:
                        return

        read_watch(time.monotonic() + 2.5)  # a few samples while the broker is down
        before = len(samples)
        up_port2, up_pid = start_broker(os.path.join(work, "uplink-broker"), up_port)
        brokers.append(up_pid)
        # One sample through the URL while it drains: ETA from the delivery rate.
        one = wait_for(lambda: (lambda s: s["drain"]["eta_s"] is not None and s)(
            status_json(weir, "--db", db, "--url", url)), "an ETA from the metrics' delivery rate")
        check(one["backlog"]["rows"] > 0 and 0 < one["drain"]["eta_s"] < 3600,
              f"finite ETA from --url: {one['drain']}")
        read_watch(time.monotonic() + 90)
        watch.send_signal(signal.SIGINT)
        check(watch.wait(timeout=10) == 0, "status --watch exits 0 on Ctrl-C")
        rows = [s["backlog"]["rows"] for s in samples]
        print("watched backlog:", rows, flush=True)
        draining = [s for s in samples[before:] if s["backlog"]["rows"] > 0 and
                    s["drain"]["eta_s"] is not None and math.isfinite(s["drain"]["eta_s"])]
        check(len(draining) >= 2, f"at least two watched samples with a finite ETA: {rows}")
        after = rows[before:]
        check(len(after) >= 4 and after[-1] < max(after) and
              sum(1 for x, y in zip(after, after[1:]) if y < x) >= 3,
              f"the watched backlog decreases: {after}")
        if draining:
            d = draining[-1]["drain"]
            check(0 < d["progress"] <= 1 and d["rate_rows_per_s"] > 0, f"progress and rate: {d}")

        rc, out, err = status(weir, "--db", db, "--url", url)
        check(rc == 0, f"status exits 0 on a live database and URL ({err})")
        check(weir_proc.stop() == 0, "weir exits 0 on SIGTERM after the drain")
        weir_proc = None
        rc, out, err = status(weir, "--url", url)
        check(rc == 1, "status --url exits 1 once weir is gone")
        rc, out, err = status(weir, "--db", db)
        check(rc == 0 and "backlog" in out, "status --db still reads the database after weir exits")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if weir_proc is not None and weir_proc.proc.poll() is None:
            weir_proc.proc.kill()
            weir_proc.proc.wait()
        for pid in brokers:
            stop_broker(pid)
    if failures:
        print(f"{len(failures)} check(s) failed; logs in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
