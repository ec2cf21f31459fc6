#!/usr/bin/env python3
"""Fleet end to end (DESIGN 12, issue 13). Several gateways, each a `weir run`
with weir-sim devices on its own local Mosquitto, publish to one cloud
Mosquitto; two weir-sinks share one subscription (--share) into one
PostgreSQL. The devices are weir-sim's, in simulated time (--time-scale,
default an hour per wall second); in every gateway some of them go offline
for simulated hours (the scenario's disconnect schedule: offline status,
readings buffered, the backlog published oldest first on reconnect), while
the others carry on and move the watermarks past the missing hours. During
the run one sink and one gateway are killed with SIGKILL and restarted, and
the cloud broker is restarted.

Devices also publish out of order (jitter up to 1h) and twice now and then
(duplicates, dropped by seq). allowed_lateness (12h) is longer than any outage
(3h), so nothing may be dropped: late readings and the backlog land in windows
and sessions that have already fired (the gateway-wide pipeline's watermark
moves on with the online devices while the others are offline), as new
revisions, and merged sessions are retracted.
Afterwards a reading far ahead per device closes every window, and:

- every tumbling and hopping window's row in weir_results equals the last
  revision of that id in `weir replay --drain` over the gateway's recorded
  input (weir-sim --record) in everything but `rev`; nothing missing, nothing
  extra (the far readings' own windows stay open, so they emit nothing);
- sessions (ids depend on when a session first fired): no two live rows of
  one key overlap, and per key the live sessions hold as many readings as the
  reference's live sessions.

  fleet_test.py --bin BUILD/bin [--gateways 3] [--devices 4] [--seconds 16]
                [--time-scale 3600] [--seed N]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudlib  # noqa: E402
from cloudlib import harness  # noqa: E402

# RESTART: why the gateways are held while the cloud broker restarts under
# shared subscriptions. Mosquitto writes only ordinary subscriptions to its
# persistence file, not shared ones (seen with 2.0.11 here; the source of
# 2.0.22 and 2.1 does the same: persist__subs_save walks each node's `subs`,
# never its `shared`). After a restart the sinks' sessions and the messages
# already queued for them are back, but the $share subscriptions are not
# until each sink reconnects and subscribes again. A result a gateway
# publishes in between matches no subscriber: Mosquitto acknowledges it
# (MQTT 5: PUBACK reason 16, "no matching subscribers", which is not an
# error code) and discards it, and weir's uplink, having its PUBACK, deletes
# the outbox row. Persistent sessions and clean start off on the sinks, which
# weir-sink has, do not help: the subscription itself is gone. So with
# --subscriptions shared the gateways are stopped (SIGSTOP) from before the
# restart until both sinks have subscribed again, standing in for an
# operator who brings the sinks up before the gateways' traffic; with
# --no-hold, results are lost (the test fails: "missing ..."). With
# --subscriptions split (ordinary subscriptions under persistent sessions,
# restored from the persistence file) the gateways publish straight through
# the restart and nothing is lost. README, "The cloud side", says the same.

# Simulated time: weir-sim runs --time-scale times faster than the wall clock,
# and event time (the readings' ts) is simulated time, so the windows below
# are hours long and an outage of "3h" takes three wall seconds at 3600x.
# allowed_lateness is longer than any outage, so no backlog reading may be
# dropped (5.4), however far the other devices' watermarks have moved on.
OUTAGES = [{"at": "3h", "for": "3h"}, {"at": "9h", "for": "2h", "fraction": 0.5}]
LONGEST_OUTAGE_MS = 3 * 3_600_000
LATE = {"idle_timeout": "30m", "allowed_lateness": "12h", "late": "update"}
STATUS = {"topic": "sensors/{device}/status", "online": "online", "offline": "offline"}


def write_config(path, name, local_uri, cloud_uri, db_path):
    cfg = {
        "gateway": name,
        "source": {"broker": local_uri, "topics": [{"topic": "sensors/{device}/telemetry"}],
                   "status": STATUS, "seq": "/seq",
                   "fields": {"temp": "/t", "hum": "/h", "cur": "/i"}},
        "pipelines": [
            {"name": "tumble", "key": ["device"], "window": {"type": "tumbling", "size": "1h"},
             "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                            "t_max": {"max": "temp"}, "h_last": {"last": "hum"}},
             "event_time": LATE},
            {"name": "hop", "key": ["device"],
             "window": {"type": "hopping", "size": "2h", "hop": "30m"},
             "aggregates": {"n": {"count": "*"}, "t_min": {"min": "temp"},
                            "h_sum": {"sum": "hum"}},
             "event_time": LATE},
            {"name": "all", "key": [], "window": {"type": "tumbling", "size": "4h"},
             "aggregates": {"n": {"count": "*"}, "t_sum": {"sum": "temp"}},
             "event_time": LATE},
            # Machine runs: readings while the current is on, 80m between
            # runs. Late readings (jitter, backlog) join sessions that fired
            # without them, and merge some (retractions).
            {"name": "sess", "key": ["device"], "where": {"cur": {">": 1}},
             "window": {"type": "session", "gap": "15m"},
             "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"}},
             "event_time": LATE},
        ],
        "storage": {"path": db_path, "commit_interval": "20ms"},
        "ingest": {"durability": "journal"},
        "uplink": {"broker": cloud_uri, "topic": "weir/{gateway}/{pipeline}", "batch_max": 20},
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def write_scenario(path, devices, sim_minutes):
    """Two groups per gateway: devices that stay online, and devices that go
    offline (OUTAGES: all of them for 3h, half of them again for 2h), buffer
    their readings and publish the backlog when they reconnect."""
    def group(count, ident, outages):
        g = {"count": count, "id": ident, "topic": "sensors/{device}/telemetry",
             "format": "json", "period": "5m", "seq": True, "jitter": "1h", "duplicates": 0.02,
             "status": STATUS,
             "fields": {"t": {"model": "sine", "mean": 21.5, "amplitude": 3, "period": "6h",
                              "noise": 0.2},
                        "h": {"model": "random_walk", "start": 45, "step": 0.5, "min": 20,
                              "max": 80},
                        "i": {"model": "duty_cycle", "on": "40m", "off": "80m",
                              "on_value": 12.5, "off_value": 0, "noise": 0.4}}}
        if outages:
            g["disconnects"] = outages
        return g
    offline = max(1, devices // 2)
    groups = [group(offline, "o{n}", OUTAGES)]
    if devices > offline:
        groups.append(group(devices - offline, "d{n}", None))
    with open(path, "w") as f:
        json.dump({"duration": f"{sim_minutes}m", "groups": groups}, f)


class Gateway:
    def __init__(self, work, name, cloud_uri, bin_dir):
        self.name, self.bin = name, bin_dir
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.broker = harness.Broker(os.path.join(self.dir, "broker"))
        self.cfg = os.path.join(self.dir, "weir.json")
        write_config(self.cfg, name, self.broker.uri, cloud_uri, os.path.join(self.dir, "weir.db"))
        self.log = os.path.join(self.dir, "weir.log")
        self.record = os.path.join(self.dir, "record.jsonl")
        self.runs = 0
        self.weir = self.sim = None

    def start_weir(self):
        self.weir = harness.Process([os.path.join(self.bin, "weir"), "run", self.cfg], self.log)
        self.runs += 1
        self.weir.wait_log("subscribed to", count=self.runs, timeout_s=30)

    def start_sim(self, scenario, seed, time_scale):
        self.sim = harness.Process([os.path.join(self.bin, "weir-sim"), "--broker",
                                    self.broker.uri, "--scenario", scenario, "--seed", str(seed),
                                    "--time-scale", str(time_scale), "--record", self.record,
                                    "--client-id", f"{self.name}-sim"],
                                   os.path.join(self.dir, "sim.log"))

    def records(self):
        with open(self.record) as f:
            return [json.loads(line) for line in f]

    def outages(self):
        """What the devices' outages looked like in the recorded input:
        (longest offline-to-online span in ms, backlog readings published at
        least an hour after they were made)."""
        went, longest, backlog = {}, 0, 0
        for m in self.records():
            p = m.get("payload")
            if p == "offline":
                went[m["topic"]] = m["t"]
            elif p == "online" and m["topic"] in went:
                longest = max(longest, m["t"] - went.pop(m["topic"]))
            elif isinstance(p, dict) and m["t"] - p["ts"] >= 3_600_000:
                backlog += 1
        return longest, backlog
    def reference(self):
        out = os.path.join(self.dir, "reference.jsonl")
        subprocess.run([os.path.join(self.bin, "weir"), "replay", self.cfg, "--input",
                        self.record, "--output", out, "--drain"], check=True)
        final = {}
        with open(out) as f:
            for line in f:
                r = json.loads(line)
                if r["id"] not in final or r["rev"] > final[r["id"]]["rev"]:
                    final[r["id"]] = r
        return final

    def close_windows(self):
        """One reading two days ahead per device: every device's watermark
        passes every window and session of the run (their own windows stay
        open, so they add no result)."""
        last = {}
        for m in self.records():
            if isinstance(m.get("payload"), dict):
                last[m["topic"]] = max(last.get(m["topic"], 0), m["payload"]["ts"])
        far = max(last.values()) + 48 * 3_600_000
        for topic in last:
            harness.publish_lines(self.broker.uri, topic, [json.dumps({"ts": far, "seq": 10**9})])


def pipeline_of(rid):
    """gateway/pipeline/key/start: names match [A-Za-z0-9_.-], so no '/'."""
    return rid.split("/")[1]


def windowed_problems(rows, final):
    out = []
    for rid, want in final.items():
        if pipeline_of(rid) == "sess":
            continue
        got = rows.get(rid)
        if got is None:
            out.append(f"missing {rid}")
            continue
        g = got[2]
        if got[1] or g is None:
            out.append(f"{rid}: retracted or empty: {got}")
            continue
        for field in ("pipeline", "key", "start", "end", "count"):
            if g.get(field) != want[field]:
                out.append(f"{rid}: {field} {g.get(field)} want {want[field]}")
        if set(g["values"]) != set(want["values"]):
            out.append(f"{rid}: values {g['values']} want {want['values']}")
        for name, v in want["values"].items():
            if not harness.close_enough(g["values"].get(name), v):
                out.append(f"{rid}: {name} {g['values'].get(name)} want {v}")
    for rid, (rev, retracted, r) in rows.items():
        if rid not in final and pipeline_of(rid) != "sess":
            out.append(f"extra {rid}")
    return out


def session_problems(rows, final):
    out = []
    live, want_count = {}, {}
    for rid, (rev, retracted, r) in rows.items():
        if r is not None and r.get("pipeline") == "sess" and not retracted:
            k = (rid.split("/")[0], json.dumps(r["key"], sort_keys=True))
            live.setdefault(k, []).append(r)
    for r in final.values():
        if r.get("pipeline") == "sess" and not r.get("retracted"):
            k = (r["id"].split("/")[0], json.dumps(r["key"], sort_keys=True))
            want_count[k] = want_count.get(k, 0) + r["count"]
    for k, sessions in live.items():
        sessions.sort(key=lambda r: r["start"])
        for a, b in zip(sessions, sessions[1:]):
            if b["start"] < a["end"]:
                out.append(f"{k}: live sessions overlap: {a['id']} [{a['start']},{a['end']}) "
                           f"and {b['id']} [{b['start']},{b['end']})")
    for k in set(live) | set(want_count):
        got = sum(r["count"] for r in live.get(k, []))
        if got != want_count.get(k, 0):
            out.append(f"{k}: live sessions hold {got} readings, reference {want_count.get(k)}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--gateways", type=int, default=3)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=16, help="wall-clock length of the run")
    ap.add_argument("--time-scale", type=int, default=3600,
                    help="simulated seconds per wall second (3600: an hour a second)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--no-broker-restart", action="store_true")
    ap.add_argument("--subscriptions", choices=["shared", "split"], default="shared",
                    help="shared: both sinks on $share/fleet/weir/#; split: ordinary "
                         "subscriptions, the gateways divided between the sinks by topic")
    ap.add_argument("--no-hold", action="store_true",
                    help="let the gateways publish through the cloud broker restart even with "
                         "shared subscriptions (Mosquitto then drops results: see RESTART)")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    sim_minutes = args.seconds * args.time_scale // 60
    print(f"fleet: seed {args.seed}, {args.gateways} gateways x {args.devices} devices, "
          f"{args.seconds}s = {sim_minutes / 60:g} simulated hours")
    work = harness.temp_dir("weir-fleet.")
    cloud = PersistentBroker(os.path.join(work, "cloud"))
    pg = cloudlib.Postgres()
    gateways, sinks = [], {}
    passed = False
    try:
        def start_sink(name, after=0):
            if args.subscriptions == "shared":
                topics, share = "weir/#", "fleet"
            else:
                # Sink a takes the even gateways, b the odd ones.
                first = 0 if name == "a" else 1
                topics = [f"weir/gw{g}/#" for g in range(first, args.gateways, 2)]
                share = None
            p = cloudlib.start_sink(args.bin, cloud.uri, topics, pg.uri, f"fleet-{name}",
                                    os.path.join(work, f"sink-{name}.log"), share=share)
            p.wait_log("subscribed to", after=after, timeout_s=30)
            sinks[name] = p

        start_sink("a")
        start_sink("b")
        scenario = os.path.join(work, "scenario.json")
        write_scenario(scenario, args.devices, sim_minutes)
        for g in range(args.gateways):
            gw = Gateway(work, f"gw{g}", cloud.uri, args.bin)
            gateways.append(gw)
            gw.start_weir()
        for g, gw in enumerate(gateways):
            gw.start_sim(scenario, args.seed + g, args.time_scale)

        t0 = time.monotonic()

        def at(fraction):
            time.sleep(max(0.0, fraction * args.seconds - (time.monotonic() - t0)))

        at(0.2)
        print("kill -9 sink a")
        sinks["a"].stop(signal.SIGKILL)
        time.sleep(rnd.uniform(0.2, 1.0))
        start_sink("a", after=os.path.getsize(os.path.join(work, "sink-a.log")))
        at(0.35)
        victim = gateways[1 % len(gateways)]
        print(f"kill -9 {victim.name}'s weir run")
        victim.weir.stop(signal.SIGKILL)
        time.sleep(rnd.uniform(0.2, 1.0))
        victim.start_weir()
        at(0.5)
        if not args.no_broker_restart:
            hold = args.subscriptions == "shared" and not args.no_hold
            print("restart the cloud broker" +
                  (" (gateways held until the sinks resubscribe: RESTART)" if hold else ""))
            offsets = {n: os.path.getsize(os.path.join(work, f"sink-{n}.log")) for n in sinks}
            if hold:
                for gw in gateways:
                    gw.weir.signal(signal.SIGSTOP)
            try:
                cloud.restart()
                for n, p in sinks.items():
                    p.wait_log("subscribed to", after=offsets[n], timeout_s=40)
            finally:
                if hold:
                    for gw in gateways:
                        gw.weir.signal(signal.SIGCONT)

        for gw in gateways:
            rc = gw.sim.proc.wait(timeout=args.seconds + 60)
            if rc != 0:
                raise harness.Failure(f"{gw.name}'s weir-sim exited {rc}")
        final = {}
        for gw in gateways:
            # The outages really happened, and came back as backlog.
            longest, backlog = gw.outages()
            if longest < 2 * 3_600_000 or backlog == 0:
                raise harness.Failure(f"{gw.name}: longest outage {longest / 3.6e6:g}h, "
                                      f"{backlog} backlog readings; want hours and a backlog")
            if longest > LONGEST_OUTAGE_MS:
                raise harness.Failure(f"{gw.name}: an outage of {longest / 3.6e6:g}h is longer "
                                      f"than allowed_lateness assumes")
            print(f"{gw.name}: longest outage {longest / 3.6e6:.2f} simulated hours, "
                  f"{backlog} readings arrived an hour or more late")
            final.update(gw.reference())
            gw.close_windows()

        def problems():
            rows = pg.rows()
            return windowed_problems(rows, final) + session_problems(rows, final)
        try:
            harness.wait_for("PostgreSQL to match the reference runs", lambda: not problems(),
                             90, interval_s=1.0)
        except harness.Failure:
            found = problems()
            print("\n".join(found[:20]))
            by_gw = {}
            for line in found:
                gw = re.search(r"\bgw\d+", line)
                gw = gw.group(0) if gw else "?"
                by_gw[gw] = by_gw.get(gw, 0) + 1
            print(f"problems per gateway: {by_gw}; rows {len(pg.rows())}, "
                  f"reference {len(final)}")
            raise
        counters = {}
        for name, p in sinks.items():
            if p.stop() != 0:
                raise harness.Failure(f"sink {name} did not exit 0")
            counters[name] = p.log_text().strip().splitlines()[-1]
        rows = pg.rows()
        revised = sum(1 for rev, _, _ in rows.values() if rev > 0)
        retracted = sum(1 for _, ret, _ in rows.values() if ret)
        windows = sum(1 for rid in final if pipeline_of(rid) != "sess")
        sessions = sum(1 for r in final.values() if r.get("pipeline") == "sess")
        print(f"ok: {windows} tumbling/hopping windows equal the reference, {sessions} "
              f"reference sessions consistent, across {len(gateways)} gateways; "
              f"{revised} rows revised by late data, {retracted} sessions retracted")
        for name, line in counters.items():
            print(f"  sink {name} (last run): {line}")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work}, seed {args.seed})")
        return 1
    finally:
        for p in sinks.values():
            if p.alive():
                p.stop(signal.SIGKILL)
        for gw in gateways:
            for p in (gw.weir, gw.sim):
                if p and p.alive():
                    p.signal(signal.SIGCONT)
                    p.stop(signal.SIGKILL)
            gw.broker.stop()
        cloud.stop()
        pg.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


class PersistentBroker(harness.Broker):
    """The cloud broker: sessions and queued messages survive a restart
    (broker.py --persistence), on the same port."""

    def __init__(self, directory):
        self.directory = directory
        out = subprocess.check_output([sys.executable, harness.BROKER_PY, "start", "--dir",
                                       directory, "--persistence"], text=True).split()
        self.port, self.pid = int(out[0]), int(out[1])
        self.uri = f"tcp://127.0.0.1:{self.port}"

    def restart(self):
        self.stop()
        out = subprocess.check_output([sys.executable, harness.BROKER_PY, "start", "--dir",
                                       self.directory, "--port", str(self.port),
                                       "--persistence"], text=True).split()
        self.pid = int(out[1])


if __name__ == "__main__":
    sys.exit(main())
