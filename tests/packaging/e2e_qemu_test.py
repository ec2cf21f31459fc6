#!/usr/bin/env python3
"""The cross-built aarch64 weir under qemu-user against a host Mosquitto.

Readings go in over MQTT from the host (mosquitto_pub), weir runs as an aarch64
binary under qemu-aarch64, and its results arrive at the host's weir-sink (SQLite).

  e2e_qemu_test.py --source-dir DIR --sink PATH [--target aarch64]

Exits 77 (ctest SKIP) when there is no cross-built weir (run scripts/cross aarch64)
or no qemu-user.
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

SKIP = 77
QEMU = {"aarch64": "qemu-aarch64", "armhf": "qemu-arm"}


def wait_for(cond, deadline_s, what):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (deadline_s, what))


def find_weir(src, target):
    """The release weir if scripts/cross made it, else the one of the test build."""
    for build in ("build/release-" + target, "build/" + target):
        exe = os.path.join(src, build, "bin", "weir")
        if os.access(exe, os.X_OK):
            sysroot = ""
            cache = os.path.join(src, build, "CMakeCache.txt")
            if os.path.exists(cache):
                for line in open(cache):
                    if line.startswith("WEIR_SYSROOT:PATH="):
                        sysroot = line.split("=", 1)[1].strip()
            return exe, sysroot or "/"
    return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--target", default="aarch64", choices=sorted(QEMU))
    args = ap.parse_args()

    weir, qemu_root = find_weir(args.source_dir, args.target)
    if not weir:
        print("SKIP: no cross-built weir in build/release-%s or build/%s; run scripts/cross %s"
              % (args.target, args.target, args.target))
        return SKIP
    qemu = shutil.which(QEMU[args.target])
    if not qemu:
        print("SKIP: %s not installed (apt-get install qemu-user)" % QEMU[args.target])
        return SKIP
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("SKIP: %s not installed" % tool)
            return SKIP
    out = subprocess.run(["file", "-L", weir], capture_output=True, text=True).stdout
    want = "ARM aarch64" if args.target == "aarch64" else "ARM, EABI5"
    assert want in out, "%s is not an %s binary: %s" % (weir, args.target, out)
    print("weir: %s (qemu -L %s)" % (weir, qemu_root))

    work = tempfile.mkdtemp(prefix="weir-e2e-qemu.")
    broker_py = os.path.join(args.source_dir, "tests", "broker.py")
    port, broker_pid = subprocess.run(
        [sys.executable, broker_py, "start", "--dir", os.path.join(work, "broker")],
        check=True, capture_output=True, text=True).stdout.split()
    uri = "tcp://127.0.0.1:" + port
    procs = []
    try:
        # The cloud side first, so no result is published before it subscribes.
        sink_err = open(os.path.join(work, "sink.log"), "w+")
        results_db = os.path.join(work, "results.db")
        sink = subprocess.Popen([args.sink, "--broker", uri, "--topic", "weir/#", "--db",
                                 results_db, "--client-id", "e2e-qemu-sink"],
                                stdout=subprocess.DEVNULL, stderr=sink_err)
        procs.append(sink)
        wait_for(lambda: "subscribed to weir/#" in open(sink_err.name).read(), 20,
                 "weir-sink to subscribe")

        # weir's source session (clean session off, client id weir-<gateway>) is made
        # before weir starts, so the broker queues the readings for it whatever qemu's
        # start-up time.
        subprocess.run(["mosquitto_sub", "-p", port, "-h", "127.0.0.1", "-i", "weir-e2e",
                        "-c", "-q", "1", "-t", "sensors/+/telemetry", "-E"],
                       check=True, timeout=20)

        config = {
            "gateway": "e2e",
            "source": {"broker": uri, "qos": 1,
                       "topics": [{"topic": "sensors/{device}/telemetry", "format": "json"}],
                       "timestamp": {"path": "/ts", "unit": "ms"},
                       "seq": "/seq",
                       "fields": {"temp": "/t"}},
            "pipelines": [{
                "name": "climate",
                "key": ["device"],
                "window": {"type": "tumbling", "size": "10s"},
                "aggregates": {"n": {"count": "*"}, "temp_avg": {"avg": "temp"},
                               "temp_max": {"max": "temp"}},
            }],
            "storage": {"path": os.path.join(work, "weir.db")},
            "uplink": {"broker": uri, "qos": 1, "topic": "weir/{gateway}/{pipeline}"},
        }
        config_path = os.path.join(work, "e2e.json")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2)

        # Readings: d1 at start+1s, +2s, +3s (20, 22, 24 degrees), then one at
        # start+12s. max_out_of_orderness is 0, so that last one moves d1's watermark to
        # start+12s >= the end of [start, start+10s), which fires with n=3, avg 22,
        # max 24. The reading at +12s stays in the open window [start+10s, start+20s).
        start = (int(time.time() * 1000) // 10000) * 10000 - 60000
        readings = [(1000, 20), (2000, 22), (3000, 24), (12000, 30)]
        for seq, (offset, temp) in enumerate(readings, 1):
            payload = json.dumps({"ts": start + offset, "seq": seq, "t": temp})
            subprocess.run(["mosquitto_pub", "-p", port, "-h", "127.0.0.1", "-q", "1",
                            "-i", "e2e-qemu-pub", "-t", "sensors/d1/telemetry", "-m", payload],
                           check=True, timeout=20)

        weir_log = open(os.path.join(work, "weir.log"), "w+")
        weir_proc = subprocess.Popen([qemu, "-L", qemu_root, weir, "run", config_path],
                                     stdout=weir_log, stderr=subprocess.STDOUT, cwd=work)
        procs.append(weir_proc)

        want_id = "e2e/climate/d1/%d" % start

        def result():
            if weir_proc.poll() is not None:
                raise AssertionError("weir exited with %s:\n%s" %
                                     (weir_proc.returncode, open(weir_log.name).read()))
            if not os.path.exists(results_db):
                return None
            con = sqlite3.connect(results_db, timeout=5)
            try:
                row = con.execute("SELECT result FROM weir_results WHERE id = ?",
                                  (want_id,)).fetchone()
            except sqlite3.OperationalError:
                return None
            finally:
                con.close()
            return json.loads(row[0]) if row else None

        try:
            wait_for(lambda: result() is not None, 120, "result %s at weir-sink" % want_id)
        except AssertionError:
            print(open(weir_log.name).read())
            print(open(sink_err.name).read())
            raise
        got = result()
        print("result at weir-sink:", json.dumps(got))
        assert got["rev"] == 0, got
        assert got["pipeline"] == "climate", got
        assert got["key"] == {"device": "d1"}, got
        assert got["start"] == start and got["end"] == start + 10000, got
        assert got["count"] == 3, got
        values = got["values"]
        assert values["n"] == 3, values
        assert abs(values["temp_avg"] - 22.0) < 1e-9, values
        assert values["temp_max"] == 24, values

        # SIGTERM reaches weir through qemu; it shuts down cleanly with exit 0.
        weir_proc.send_signal(signal.SIGTERM)
        rc = weir_proc.wait(timeout=60)
        assert rc == 0, "weir exit code %s:\n%s" % (rc, open(weir_log.name).read())
        print("ok: %s weir under qemu: readings in, result at weir-sink, clean stop" % args.target)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run([sys.executable, broker_py, "stop", broker_pid], check=False)
        if os.environ.get("WEIR_KEEP_TMP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
