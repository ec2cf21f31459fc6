#!/usr/bin/env python3
"""The Linux firmware example survives a broker restart without losing a
buffered reading (issue 7): weir-fw-linux publishes N readings, the private
Mosquitto is stopped mid-run and started again on the same port, the device
buffers meanwhile and replays on reconnect. Everything that reached the
broker is captured (a persistent QoS 1 subscription on a broker with
persistence) and run through `weir replay --drain` with seq as a field:
weir must count N readings (duplicates from re-sent publishes removed by
seq), with seq from 1 to N and their sum N(N+1)/2, so every seq arrived.

  firmware_restart_test.py --bin BUILD/bin [--count N]
"""
import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402

BROKER_PY = os.path.join(HERE, "..", "broker.py")


def start_broker(directory, port=None):
    args = [sys.executable, BROKER_PY, "start", "--dir", directory, "--persistence"]
    if port:
        args += ["--port", str(port)]
    out = subprocess.check_output(args, text=True).split()
    return int(out[0]), int(out[1])


def stop_broker(pid):
    subprocess.run([sys.executable, BROKER_PY, "stop", str(pid)], check=False)


def captured(path):
    """[(topic, payload bytes)] from mosquitto_sub -F '%t %x' output."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if len(parts) == 2:
                out.append((parts[0], bytes.fromhex(parts[1])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--format", default="json", choices=["json", "flatbuffers"])
    args = ap.parse_args()
    n = args.count
    work = harness.temp_dir("weir-fwrestart.")
    broker_dir = os.path.join(work, "broker")
    port, pid = start_broker(broker_dir)
    uri = f"tcp://127.0.0.1:{port}"
    procs = []
    passed = False
    try:
        cap_path = os.path.join(work, "capture.txt")
        capture = harness.Process(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                                   "-c", "-i", "fw-capture", "-t", "sensors/#", "-F", "%t %x"],
                                  cap_path)
        procs.append(capture)
        # The subscription is in place once a probe comes back through it.
        harness.wait_for("the capture to subscribe", lambda: (
            harness.publish_lines(uri, "sensors/probe/x", ["1"]) or
            any(t == "sensors/probe/x" for t, _ in captured(cap_path))), 20, interval_s=0.3)

        fw = harness.Process([os.path.join(args.bin, "weir-fw-linux"), "--broker", uri,
                              "--id", "fw1", "--period-ms", "40", "--count", str(n),
                              "--format", args.format, "--batch", "3"],
                             os.path.join(work, "fw.log"))
        procs.append(fw)
        readings = lambda: sum(1 for t, _ in captured(cap_path) if t.endswith("/telemetry"))
        harness.wait_for("the device's first messages", lambda: readings() >= 5, 20)
        stop_broker(pid)
        fw.wait_log("buffering", timeout_s=20)
        # The outage lasts a second: the device buffers about 25 readings.
        time.sleep(1.0)
        port2, pid = start_broker(broker_dir, port)
        if port2 != port:
            raise harness.Failure(f"the broker came back on port {port2}, not {port}")
        rc = fw.proc.wait(timeout=90)
        log = fw.log_text()
        if rc != 0 or "dropped 0 buffered 0" not in log:
            raise harness.Failure(f"weir-fw-linux exited {rc}: {log[-1500:]}")
        replays = [int(l.split(", ")[1].split()[0]) for l in log.splitlines()
                   if "buffered readings to replay" in l]
        if len(replays) < 2 or replays[-1] == 0:
            raise harness.Failure(f"the device replayed no backlog after the restart: {log}")

        # The capture's session survives the restart; wait for the final status.
        harness.wait_for("the device's offline status", lambda: any(
            t == "sensors/fw1/status" and p == b"offline" for t, p in captured(cap_path)), 30)
        capture.stop(signal.SIGTERM)

        record = os.path.join(work, "record.jsonl")
        with open(record, "w") as f:
            for i, (topic, payload) in enumerate(captured(cap_path)):
                if not topic.startswith("sensors/fw1/"):
                    continue
                line = {"t": 1000 + i, "topic": topic}
                if topic.endswith("/status"):
                    line["payload"] = payload.decode()
                elif args.format == "json":
                    line["payload"] = json.loads(payload)
                else:
                    line["payload_b64"] = base64.b64encode(payload).decode()
                f.write(json.dumps(line) + "\n")
        cfg = {"gateway": "gw-fw",
               "source": {"broker": uri,
                          "topics": [{"topic": "sensors/{device}/telemetry",
                                      "format": args.format}],
                          "status": {"topic": "sensors/{device}/status"}, "seq": "/seq",
                          "fields": {"t": "/t", "h": "/h", "seq": "/seq"}},
               "pipelines": [{"name": "fw", "key": ["device"],
                              "window": {"type": "tumbling", "size": "1d"},
                              "aggregates": {"n": {"count": "*"}, "seq_min": {"min": "seq"},
                                             "seq_max": {"max": "seq"},
                                             "seq_sum": {"sum": "seq"}},
                              "event_time": {"idle_timeout": "1000h",
                                             "allowed_lateness": "1000h", "late": "update"}}]}
        cfg_path = os.path.join(work, "weir.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        out = os.path.join(work, "results.jsonl")
        subprocess.run([os.path.join(args.bin, "weir"), "replay", cfg_path, "--input", record,
                        "--output", out, "--drain"], check=True, timeout=60)
        final = {}
        with open(out) as f:
            for line in f:
                r = json.loads(line)
                if r["id"] not in final or r["rev"] > final[r["id"]]["rev"]:
                    final[r["id"]] = r
        count = sum(r["count"] for r in final.values())
        if count != n:
            raise harness.Failure(f"weir counted {count} readings of fw1, want {n}")
        if args.format == "json":
            lo = min(r["values"]["seq_min"] for r in final.values())
            hi = max(r["values"]["seq_max"] for r in final.values())
            total = sum(r["values"]["seq_sum"] for r in final.values())
            if (lo, hi, total) != (1, n, n * (n + 1) // 2):
                raise harness.Failure(f"seq min {lo}, max {hi}, sum {total}: want 1, {n}, "
                                      f"{n * (n + 1) // 2}")
        print(f"ok: {n} readings at weir after a broker restart, {replays[-1]} of them "
              f"replayed from the device's buffer")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work})")
        return 1
    finally:
        for p in procs:
            if p.alive():
                p.stop(signal.SIGKILL)
        stop_broker(pid)
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
