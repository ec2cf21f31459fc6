#!/usr/bin/env python3
"""Writes the sample replay inputs beside this script, one per example
config (`weir replay ../NAME.json --input NAME.jsonl --drain`). Deterministic:
run it again after changing an example config, and commit the output.
FlatBuffers samples are built with `flatc` (schemas/reading.fbs) and carried
base64-encoded in `payload_b64` lines (DESIGN 8)."""
import base64
import datetime
import json
import math
import os
import random
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "..", "schemas", "reading.fbs")
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def write(name, lines):
    with open(os.path.join(HERE, name + ".jsonl"), "w") as f:
        for line in sorted(lines, key=lambda l: l["t"]):
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def demo(rnd):
    lines = []
    for d in range(1, 4):
        for i in range(60):
            ts = T0 + i * 1000 + d * 37
            lines.append({"t": ts + 20, "topic": f"sensors/d{d}/telemetry",
                          "payload": {"ts": ts, "seq": i + 1, "sent_at": ts + 5,
                                      "t": round(21.5 + 3 * math.sin(i / 10) + rnd.gauss(0, 0.2), 2),
                                      "h": round(45 + rnd.uniform(-2, 2), 1)}})
    lines.append({"t": T0 + 30500, "topic": "sensors/d2/status", "payload": "offline"})
    lines.append({"t": T0 + 61000})
    return lines


def climate_rooms(rnd):
    lines = []
    rooms = [("1", "kitchen", "c1"), ("1", "office", "c2"), ("2", "lab", "c3")]
    for floor, room, dev in rooms:
        for i in range(40):  # one reading a minute
            ts_s = T0 // 1000 + i * 60 + rnd.randint(0, 5)
            lines.append({"t": ts_s * 1000 + 300,
                          "topic": f"building/{floor}/{room}/{dev}/climate",
                          "payload": {"time": ts_s, "seq": i, "t": round(20 + rnd.uniform(0, 3), 2),
                                      "h": round(40 + rnd.uniform(0, 10), 1),
                                      "co2": rnd.randint(400, 1200), "model": "SHT31"}})
    return lines


def energy_sites(rnd):
    lines = []
    for site in ("north", "south"):
        for m, phase in enumerate(("L1", "L2", "L3")):
            kwh = 1000.0 * (m + 1)
            for i in range(90):  # one reading a minute for 1.5 h
                ts = T0 + i * 60_000
                kw = round(2 + m + math.sin(i / 15) + rnd.uniform(0, 0.5), 3)
                kwh += kw / 60
                iso = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc)
                lines.append({"t": ts + 500, "topic": f"meters/{site}/m{m}/reading",
                              "payload": {"time": iso.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                                          "energy": {"kwh": round(kwh, 3)},
                                          "power": {"kw": kw}, "phase": phase}})
    return lines


def machine_runs(rnd):
    lines = []
    for dev in ("press1", "press2"):
        seq = 0
        t = T0
        for run in range(3):  # runs of 10-20 minutes with idle gaps of 5-15 minutes
            for _ in range(rnd.randint(20, 40)):
                seq += 1
                lines.append({"t": t + 200, "topic": f"factory/a/{dev}/power",
                              "payload": {"ts": t, "seq": seq, "i": round(rnd.uniform(8, 15), 2),
                                          "v": 230}})
                t += 30_000
            t += rnd.randint(5, 15) * 60_000
    lines.append({"t": T0 + 3 * 3600_000})
    return lines


def flatbuffer(batch):
    """Binary FlatBuffers Batch for a dict in the schema's JSON form, via flatc."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "batch.json")
        with open(src, "w") as f:
            json.dump(batch, f)
        subprocess.run(["flatc", "-b", "-o", d, SCHEMA, src], check=True)
        with open(os.path.join(d, "batch.bin"), "rb") as f:
            return f.read()


def cold_chain_batches(rnd):
    """Battery tags that wake once a minute and send the six readings they took
    every 10 s as one FlatBuffers batch (configs/scenarios/flatbuffers-batch.json
    publishes the same shape live). One tag's radio drops out for 20 minutes
    and it then sends its buffered batches in a burst, in order."""
    lines = []
    for n in range(1, 4):
        dev = f"tag-{n}"
        seq = 0
        skew = rnd.randint(-3000, 3000)  # device clock vs gateway clock
        t_base = 4.0 + n * 0.5
        pending = []
        for minute in range(90):
            samples = []
            for k in range(6):
                seq += 1
                ts = T0 + minute * 60_000 + k * 10_000 + skew
                temp = round(t_base + 1.5 * math.sin((minute * 6 + k) / 60) + rnd.gauss(0, 0.1), 2)
                volt = round(3.9 - minute * 0.002 + rnd.uniform(-0.01, 0.01), 3)
                samples.append({"ts": ts, "seq": seq, "channel": 0, "value": temp})
                samples.append({"ts": ts, "seq": seq, "channel": 1, "value": volt})
            sent_at = T0 + minute * 60_000 + 59_000 + skew
            batch = {"device": dev, "channels": ["t", "v"], "samples": samples,
                     "sent_at": sent_at}
            payload = base64.b64encode(flatbuffer(batch)).decode()
            pending.append(payload)
            offline = n == 2 and 30 <= minute < 50
            if offline:
                continue
            arrival = T0 + minute * 60_000 + 59_000 + rnd.randint(50, 400)
            for i, p in enumerate(pending):  # a backlog goes out oldest first
                lines.append({"t": arrival + i * 20, "topic": f"sensors/{dev}/batch",
                              "payload_b64": p})
            pending = []
    lines.append({"t": T0 + 3 * 3600_000})
    return lines


def main():
    rnd = random.Random(7)
    write("demo", demo(rnd))
    write("gateway", demo(random.Random(11)))  # the packaged config reads the demo's topics
    write("climate-rooms", climate_rooms(rnd))
    write("energy-sites", energy_sites(rnd))
    write("machine-runs", machine_runs(rnd))
    write("cold-chain-batches", cold_chain_batches(random.Random(13)))


if __name__ == "__main__":
    main()
