#!/usr/bin/env python3
"""Crash test (DESIGN 6.2, 6.3): a simulated fleet (weir-sim) publishes
through a real Mosquitto into `weir run` (ingest.durability journal), which
is killed with SIGKILL at random moments and restarted. Afterwards:

- every result of the uninterrupted reference run (`weir replay --drain` over
  what weir-sim recorded) is at the sink with equal values, and nothing else
  is: not a single acknowledged reading was lost or counted twice;
- every message seen on the uplink topic is checked: one (id, rev) always
  carries byte-identical JSON (duplicates only as repeats);
- PRAGMA integrity_check is ok after every kill.

  crash_test.py --bin BUILD/bin [--kills N] [--seconds S] [--devices D] [--seed X]
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def write_config(path, broker_uri, db_path, max_keys=None, uplink_uri=None):
    cfg = {
        "gateway": "gw-crash",
        "source": {"broker": broker_uri, "topics": [{"topic": "sensors/{device}/telemetry"}],
                   "seq": "/seq", "fields": {"temp": "/t", "hum": "/h"}},
        "pipelines": [
            {"name": "climate", "key": ["device"], "window": {"type": "tumbling", "size": "1s"},
             "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                            "t_max": {"max": "temp"}, "h_last": {"last": "hum"}},
             "event_time": {"idle_timeout": "1h", "allowed_lateness": "1h", "late": "update"}},
            {"name": "fleet", "key": [], "window": {"type": "tumbling", "size": "5s"},
             "aggregates": {"n": {"count": "*"}, "t_sum": {"sum": "temp"}},
             "event_time": {"idle_timeout": "1h", "allowed_lateness": "1h", "late": "update"}},
        ],
        "storage": {"path": db_path, "commit_interval": "20ms"},
        "ingest": {"durability": "journal"},
        "uplink": {"broker": uplink_uri or broker_uri, "topic": "weir/{gateway}/{pipeline}",
                   "batch_max": 20},
    }
    if max_keys:
        for p in cfg["pipelines"]:
            p["limits"] = {"max_keys": max_keys}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def write_scenario(path, devices, seconds):
    scenario = {"duration": f"{seconds}s", "groups": [{
        "count": devices, "id": "d{n}", "topic": "sensors/{device}/telemetry", "format": "json",
        "period": "50ms", "seq": True,
        "fields": {"t": {"model": "sine", "mean": 21.5, "amplitude": 3, "period": "1m",
                         "noise": 0.2},
                   "h": {"model": "random_walk", "start": 45, "step": 0.5, "min": 20,
                         "max": 80}}}]}
    with open(path, "w") as f:
        json.dump(scenario, f)


def integrity_ok(db_path):
    con = sqlite3.connect(db_path, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--cut-uplink", type=int, default=0,
                    help="also cut weir's uplink connection this many times (weir reaches the "
                         "broker through a TCP proxy that is killed and restarted)")
    ap.add_argument("--max-keys", type=int, default=0,
                    help="limits.max_keys for the live run (the reference replay keeps every key "
                         "in memory): spilling must not change any result")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    print(f"crash test: seed {args.seed}, {args.kills} kills, {args.seconds}s, "
          f"{args.devices} devices")

    work = harness.temp_dir("weir-crash.")
    broker = harness.Broker(os.path.join(work, "broker"))
    procs = []
    with harness.reported(work, procs, [broker], note=f", seed {args.seed}"):
        cfg_path = os.path.join(work, "weir.json")
        db_path = os.path.join(work, "weir.db")
        proxy = None
        uplink_uri = None
        if args.cut_uplink:
            import socket
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                proxy_port = sock.getsockname()[1]
            uplink_uri = f"tcp://127.0.0.1:{proxy_port}"
            broker_port = broker.uri.rsplit(":", 1)[1]

            def start_proxy():
                p = harness.Process(["socat", f"TCP-LISTEN:{proxy_port},bind=127.0.0.1,fork,"
                                     "reuseaddr", f"TCP:127.0.0.1:{broker_port}"],
                                    os.path.join(work, "proxy.log"))
                procs.append(p)
                harness.wait_for("the proxy to listen", lambda: harness.port_open(proxy_port), 10)
                return p
            proxy = start_proxy()
        write_config(cfg_path, broker.uri, db_path, args.max_keys, uplink_uri)
        scenario = os.path.join(work, "scenario.json")
        write_scenario(scenario, args.devices, args.seconds)
        sink_db = os.path.join(work, "sink.db")
        sink = harness.Process([os.path.join(args.bin, "weir-sink"), "--broker", broker.uri,
                                "--topic", "weir/#", "--db", sink_db, "--client-id",
                                "crash-sink", "--quiet"], os.path.join(work, "sink.log"))
        procs.append(sink)
        sink.wait_log("subscribed")
        # Every uplink message, as published (a recorder with a persistent session).
        capture_path = os.path.join(work, "uplink.capture")
        port = broker.uri.rsplit(":", 1)[1]
        capture = harness.Process(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-q", "1",
                                   "-c", "-i", "crash-capture", "-t", "weir/#", "-N", "-F",
                                   "%p\n"], capture_path)
        procs.append(capture)

        weir_log = os.path.join(work, "weir.log")

        def start_weir():
            p = harness.Process([os.path.join(args.bin, "weir"), "run", cfg_path], weir_log)
            procs.append(p)
            # Each run logs one readiness line into the shared log.
            p.wait_log("subscribed to", count=sum(1 for pr in procs if pr.args[:2] == p.args[:2]))
            return p

        weir = start_weir()
        record = os.path.join(work, "record.jsonl")
        sim = harness.Process([os.path.join(args.bin, "weir-sim"), "--broker", broker.uri,
                               "--scenario", scenario, "--seed", str(args.seed), "--record",
                               record, "--client-id", "crash-sim"], os.path.join(work, "sim.log"))
        procs.append(sim)

        events = [(rnd.uniform(0.5, args.seconds - 0.5), "kill") for _ in range(args.kills)]
        events += [(rnd.uniform(0.5, args.seconds - 0.5), "cut") for _ in range(args.cut_uplink)]
        events.sort()
        t0 = time.monotonic()
        k = -1
        for at, what in events:
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            if what == "cut":
                # Every connection through the proxy drops mid-stream (socat's
                # forked children are in its process group).
                os.killpg(proxy.proc.pid, signal.SIGKILL)
                proxy.proc.wait()
                time.sleep(rnd.uniform(0.2, 1.5))
                proxy = start_proxy()
                continue
            k += 1
            weir.stop(signal.SIGKILL)
            if not integrity_ok(db_path):
                raise harness.Failure(f"integrity_check failed after kill {k + 1}")
            time.sleep(rnd.uniform(0.0, 0.5))  # devices keep publishing meanwhile
            weir = start_weir()
        rc = sim.proc.wait(timeout=args.seconds + 60)
        if rc != 0:
            raise harness.Failure(f"weir-sim exited {rc}: {sim.log_text()[-1000:]}")

        # Reference: the same input through weir replay, drained.
        reference = os.path.join(work, "reference.jsonl")
        subprocess.run([os.path.join(args.bin, "weir"), "replay", cfg_path, "--input", record,
                        "--output", reference, "--drain"], check=True)
        final = {}
        with open(reference) as f:
            for line in f:
                r = json.loads(line)
                if r["id"] not in final or r["rev"] > final[r["id"]]["rev"]:
                    final[r["id"]] = r
        # Readings far ahead close every window of the live run.
        last = {}
        with open(record) as f:
            for line in f:
                m = json.loads(line)
                last[m["topic"]] = max(last.get(m["topic"], 0), m["payload"]["ts"])
        far = max(last.values()) + 3_600_000
        for topic in last:
            harness.publish_lines(broker.uri, topic, [json.dumps({"ts": far, "seq": 10**9})])

        def problems():
            rows = harness.sink_rows(sink_db)
            out = []
            for rid, want in final.items():
                got = rows.get(rid)
                if got is None:
                    out.append(f"missing {rid}")
                    continue
                g = got[2]
                if g is None or g["count"] != want["count"] or g["start"] != want["start"]:
                    out.append(f"{rid}: got {g}, want {want}")
                    continue
                for name, v in want["values"].items():
                    if not harness.close_enough(g["values"].get(name), v):
                        out.append(f"{rid}: {name} {g['values'].get(name)} want {v}")
            for rid in rows:
                if rid not in final:
                    out.append(f"extra {rid}")
            return out

        try:
            harness.wait_for("the sink to match the reference run", lambda: not problems(), 90,
                             interval_s=0.5)
        except harness.Failure:
            print("\n".join(problems()[:30]))
            print("--- weir log tail\n" + weir.log_text()[-3000:])
            raise
        weir.stop(signal.SIGTERM)
        if not integrity_ok(db_path):
            raise harness.Failure("integrity_check failed after the final stop")

        time.sleep(0.5)
        capture.stop(signal.SIGTERM)
        seen = {}
        repeats = 0
        with open(capture_path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                msg = json.loads(line)
                for r in msg if isinstance(msg, list) else [msg]:
                    key = (r["id"], r["rev"])
                    text = json.dumps(r, sort_keys=True)
                    if key in seen and seen[key] != text:
                        raise harness.Failure(f"{key} published with two different bodies:\n"
                                              f"{seen[key]}\n{text}")
                    repeats += key in seen
                    seen[key] = text
        print(f"ok: {len(final)} results equal the reference after {args.kills} SIGKILLs and "
              f"{args.cut_uplink} uplink cuts; "
              f"{len(seen)} (id, rev) published, {repeats} repeats, all identical")
        return 0
    return 1  # reported() printed the failure


if __name__ == "__main__":
    sys.exit(main())
