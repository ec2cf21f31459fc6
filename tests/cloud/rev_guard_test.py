#!/usr/bin/env python3
"""The rev guard end to end (DESIGN 12): results, duplicates, stale revisions
(an older rev after a newer one), retractions and loss records published
straight to the cloud broker with mosquitto_pub, single and in arrays. Two
sinks with their own sessions, one into SQLite and one into PostgreSQL, must
each hold exactly the highest rev per id:

- an id whose highest rev is a result holds exactly that result;
- an id whose highest rev is a retraction holds that rev, retracted = true, and
  either no result or one of that id's results with a lower rev (a retraction
  keeps whatever was stored when it arrived);
- every loss record once; nothing else.

With --kill, both sinks are killed with SIGKILL several times mid-stream and
restarted under the same --client-id: the outcome must be the same.

  rev_guard_test.py --bin BUILD/bin [--kill] [--seed N]
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudlib  # noqa: E402
from cloudlib import harness  # noqa: E402

IDS = 60
MAX_REV = 6


def make_stream(rnd):
    """The messages (JSON lines) in publishing order, and per id every element."""
    elements = []
    for k in range(IDS):
        rid = f"gw-rev/p/d{k}/{1000 * k}"
        top = rnd.randint(1, MAX_REV)
        retract_top = k % 4 == 0 and top > 1  # a quarter end in a retraction
        if k % 10 == 5:
            top, retract_top = 1, True  # a retraction with nothing before it
        for rev in range(1, top + 1):
            if rev == top and retract_top:
                e = {"id": rid, "rev": rev, "retracted": True}
            else:
                e = {"id": rid, "rev": rev, "start": 1000 * k, "end": 1000 * k + 1000,
                     "count": rev * 10 + k, "values": {"avg": rev + k / 7}}
            elements.append(e)
    losses = [{"id": f"gw-rev/loss/{10 * i + 1}-{10 * i + 5}", "lost": 5, "from": 100 * i,
               "to": 100 * i + 50} for i in range(8)]
    everything = elements + losses
    # Duplicates: a third of all elements again; then shuffle, which puts
    # older revs after newer ones for most ids.
    everything += rnd.sample(everything, len(everything) // 3)
    rnd.shuffle(everything)
    messages, i = [], 0
    while i < len(everything):
        n = rnd.choice([1, 1, 1, 3, 7])  # single elements and arrays, like the uplink's batches
        chunk = everything[i:i + n]
        messages.append(json.dumps(chunk[0] if n == 1 else chunk))
        i += n
    by_id = {}
    for e in elements:
        by_id.setdefault(e["id"], []).append(e)
    return messages, by_id, {loss["id"]: loss for loss in losses}


def problems(rows, losses, by_id, want_losses):
    out = []
    for rid, elems in by_id.items():
        top = max(elems, key=lambda e: e["rev"])
        got = rows.get(rid)
        if got is None:
            out.append(f"missing {rid}")
            continue
        rev, retracted, result = got
        if rev != top["rev"] or retracted != bool(top.get("retracted")):
            out.append(f"{rid}: rev {rev} retracted {retracted}, want {top}")
        elif not retracted and result != top:
            out.append(f"{rid}: result {result}, want {top}")
        elif retracted and result is not None and result not in [
                e for e in elems if not e.get("retracted") and e["rev"] < top["rev"]]:
            out.append(f"{rid}: retracted row keeps {result}, not an earlier result of its own")
    out += [f"extra {rid}" for rid in rows if rid not in by_id]
    if losses != want_losses:
        out.append(f"losses {sorted(losses)} want {sorted(want_losses)}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kill", action="store_true")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    messages, by_id, want_losses = make_stream(rnd)
    print(f"rev guard: seed {args.seed}, {len(messages)} messages, {len(by_id)} ids"
          f"{', sinks killed mid-stream' if args.kill else ''}")
    work = harness.temp_dir("weir-revguard.")
    broker = harness.Broker(os.path.join(work, "broker"))
    pg = cloudlib.Postgres()
    sqlite_db = os.path.join(work, "sink.db")
    dbs = {"sqlite": sqlite_db, "postgres": pg.uri}
    sinks = {}
    passed = False
    try:
        def start(name, after=0):
            p = cloudlib.start_sink(args.bin, broker.uri, "weir/#", dbs[name], f"rev-{name}",
                                    os.path.join(work, f"{name}.log"))
            p.wait_log("subscribed to", after=after)
            sinks[name] = p

        for name in dbs:
            start(name)
        def publish():
            # In small chunks with pauses, so that the kills land mid-stream.
            step = 4 if args.kill else 20
            for i in range(0, len(messages), step):
                harness.publish_lines(broker.uri, "weir/gw-rev/p", messages[i:i + step])
                if args.kill:
                    time.sleep(0.05)
        publisher = threading.Thread(target=publish)
        publisher.start()
        if args.kill:
            for k in range(3):
                time.sleep(rnd.uniform(0.2, 0.5))
                for name in dbs:
                    sinks[name].stop(signal.SIGKILL)
                    after = os.path.getsize(os.path.join(work, f"{name}.log"))
                    start(name, after)
        publisher.join()

        def check():
            return {"sqlite": problems(harness.sink_rows(sqlite_db),
                                       cloudlib.sqlite_losses(sqlite_db), by_id, want_losses),
                    "postgres": problems(pg.rows(), pg.losses(), by_id, want_losses)}
        try:
            harness.wait_for("both databases to hold the highest rev per id",
                             lambda: not any(check().values()), 60, 0.3)
        except harness.Failure:
            for name, p in check().items():
                print(f"{name}: " + "\n  ".join(p[:15]))
            raise
        for name in dbs:
            sinks[name].signal(signal.SIGUSR1)
            # Counters on demand, commit latency included (issue 13).
            sinks[name].wait_log("commit_ms_max=", after=0)
            if sinks[name].stop() != 0:
                raise harness.Failure(f"{name} sink did not exit 0")
        print(f"ok: SQLite and PostgreSQL each hold the highest rev of {len(by_id)} ids and "
              f"{len(want_losses)} loss records")
        for name in dbs:
            print(f"  {name}: {sinks[name].log_text().strip().splitlines()[-1]}")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work}, seed {args.seed})")
        return 1
    finally:
        for p in sinks.values():
            if p.alive():
                p.stop(signal.SIGKILL)
        pg.stop()
        broker.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
