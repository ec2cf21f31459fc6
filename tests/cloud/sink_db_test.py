#!/usr/bin/env python3
"""weir-sink against a database that is wrong or goes away (DESIGN 12, issue 13):

- bad --db values (a malformed URI, a missing database, a wrong password, a
  server that is not there, a SQLite file in a missing folder): weir-sink
  exits 1 at once with an error that names the cause;
- PostgreSQL stopped mid-stream: the sink retries with backoff; while the
  database is down for less than --db-retry it carries on by itself; down for
  longer, it exits 1 without acknowledging. After the database is back and the
  sink restarted under the same --client-id, every published result is there:
  no message was acknowledged that was not committed.

  sink_db_test.py --bin BUILD/bin
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudlib  # noqa: E402
from cloudlib import harness  # noqa: E402


def check_bad_db_values(bin_dir, broker, pg, work):
    # Password authentication for one role, ahead of the fixture's trust lines.
    pg.psql("CREATE ROLE weir_pw LOGIN PASSWORD 'right'")
    hba = os.path.join(pg.data, "pg_hba.conf")
    subprocess.run(["sh", "-c", f"sed -i '1i local all weir_pw scram-sha-256' {hba}"],
                   check=True)
    pg._ctl("reload")
    base = pg.uri.split("?", 1)
    cases = [
        ("malformed URI", "postgresql://%zz", "invalid percent-encoded"),
        ("missing database", f"postgresql:///nosuchdb?{base[1]}", 'database "nosuchdb" does not exist'),
        ("wrong password", f"{pg.uri.replace('user=postgres', 'user=weir_pw')}&password=wrong",
         "password authentication failed"),
        ("no server", "postgresql:///postgres?host=/nonexistent&port=5", "No such file"),
        ("SQLite in a missing folder", os.path.join(work, "no", "such", "dir", "sink.db"),
         "open"),
    ]
    for name, db, fragment in cases:
        p = subprocess.run([os.path.join(bin_dir, "weir-sink"), "--broker", broker.uri,
                            "--topic", "weir/#", "--db", db, "--client-id", "bad-db"],
                           capture_output=True, text=True, timeout=20)
        if p.returncode != 1 or fragment not in p.stderr or "weir-sink:" not in p.stderr:
            raise harness.Failure(f"{name}: want exit 1 and {fragment!r}; got {p.returncode}, "
                                  f"stderr {p.stderr!r}")
        print(f"ok: {name}: exit 1, {p.stderr.strip().splitlines()[0]}")
    # A right password works (so the wrong one failed for its own reason).
    good = f"{pg.uri.replace('user=postgres', 'user=weir_pw')}&password=right"
    pg.psql("GRANT ALL ON SCHEMA public TO weir_pw")
    p = cloudlib.start_sink(bin_dir, broker.uri, "weir/#", good, "good-pw",
                            os.path.join(work, "good.log"))
    p.wait_log("subscribed to")
    if p.stop() != 0:
        raise harness.Failure("sink with the right password did not exit 0")
    print("ok: the right password connects")


def result(i, rev):
    return json.dumps({"id": f"gw/p/k{i}/{i}", "rev": rev, "start": i, "count": i,
                       "values": {"n": i}})


def check_outage(bin_dir, broker, pg, work, outage_s, db_retry_s, base):
    """Publishes 3 x 100 results; stops PostgreSQL after the first 100 for
    outage_s seconds. Returns the sink's exit code during the outage (None:
    still running)."""
    log = os.path.join(work, f"outage{base}.log")
    cid = f"outage-{base}"
    sink = cloudlib.start_sink(bin_dir, broker.uri, f"weir/out{base}", pg.uri, cid, log,
                               extra=["--db-retry", str(db_retry_s)])
    sink.wait_log("subscribed to")
    ids = range(base, base + 300)
    lines = [result(i, 1) for i in ids]
    harness.publish_lines(broker.uri, f"weir/out{base}", lines[:100])
    def stored():
        rows = pg.rows()  # once per poll: each call is a psql process
        return sum(1 for i in ids if f"gw/p/k{i}/{i}" in rows)
    harness.wait_for("the first 100 rows", lambda: stored() >= 100, 30, 0.2)
    pg.pause()
    harness.publish_lines(broker.uri, f"weir/out{base}", lines[100:200])
    started = time.monotonic()
    sink.wait_log("database unavailable", 20)
    exit_code = None
    while time.monotonic() - started < outage_s:
        if not sink.alive():
            exit_code = sink.proc.returncode
        time.sleep(0.1)
    if not sink.alive():
        exit_code = sink.proc.returncode
    pg.resume()
    harness.publish_lines(broker.uri, f"weir/out{base}", lines[200:])
    if exit_code is not None:
        after = len(sink.log_text())
        sink.log.close()
        sink = cloudlib.start_sink(bin_dir, broker.uri, f"weir/out{base}", pg.uri, cid, log)
        sink.wait_log("subscribed to", after=after)

    def missing():
        rows = pg.rows()
        return [i for i in ids if rows.get(f"gw/p/k{i}/{i}", (0,))[0] != 1]
    try:
        harness.wait_for("every result after the outage", lambda: not missing(), 60, 0.3)
    except harness.Failure:
        raise harness.Failure(f"{len(missing())} results missing after the outage, e.g. "
                              f"{missing()[:5]}\n{sink.log_text()[-2000:]}")
    if sink.stop() != 0:
        raise harness.Failure("sink did not exit 0 on SIGTERM")
    return exit_code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    work = harness.temp_dir("weir-sink-db.")
    broker = harness.Broker(os.path.join(work, "broker"))
    pg = cloudlib.Postgres()
    passed = False
    try:
        check_bad_db_values(args.bin, broker, pg, work)
        # Down for 2 s, retrying for up to 30 s: the sink rides it out.
        rc = check_outage(args.bin, broker, pg, work, outage_s=2, db_retry_s=30, base=1000)
        if rc is not None:
            raise harness.Failure(f"sink exited {rc} during a short outage")
        print("ok: a 2 s outage: the sink waited and stored everything")
        # Down for 6 s, retrying for 2 s: the sink exits 1, unacknowledged.
        rc = check_outage(args.bin, broker, pg, work, outage_s=6, db_retry_s=2, base=2000)
        if rc != 1:
            raise harness.Failure(f"sink exit code {rc} during a long outage, want 1")
        print("ok: a 6 s outage: the sink exited 1, and after a restart nothing is missing")
        passed = True
        return 0
    except harness.Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work})")
        return 1
    finally:
        pg.stop()
        broker.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
