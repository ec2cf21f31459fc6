#!/usr/bin/env python3
"""`weir validate`'s memory budget against the peak RSS of `weir run` (issue 9).

For 1k keys (durability journal) and 10k keys (durability batch; once within
one window, once crossing a window boundary so that every key fires), one key
per device: `weir validate` prints the budget; `weir run` first subscribes once
(a persistent session), then, while it is away, a real Mosquitto queues three
readings per device; `weir run` starts again and drains them, and once every
reading is counted and every key is held (from /metrics) its VmHWM is read from
/proc/PID/status. Checks:

  peak RSS <= budget        the budget is an upper bound: a gateway sized by it
                            does not run out of memory;
  budget <= 2 x peak RSS    and not so loose that it is useless for sizing.
                            The budget assumes what this run does not reach:
                            the window pool at its doubling limit, every key
                            firing a result and a checkpoint row in one commit,
                            the queue full with ~100-byte payloads, full
                            SQLite caches. Those add up to at most about as
                            much again as the state this run holds, so twice
                            the peak is the bound an honest budget stays
                            within; a budget above it has stopped describing
                            what weir allocates.

  memory_budget_test.py --bin DIR
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BROKER = os.path.join(ROOT, "tests", "broker.py")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def wait_for(what, pred, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m and not line.startswith("#"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def parse_budget(text):
    m = re.search(r"^memory budget: ([0-9.]+)(B|KB|MB|GB) = ", text, re.M)
    if not m:
        raise ValueError("no memory budget line in: " + text)
    return float(m.group(1)) * UNITS[m.group(2)]


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_case(bindir, tmp, broker_port, keys, durability, step_ms=1000):
    weir = os.path.join(bindir, "weir")
    d = tempfile.mkdtemp(dir=tmp, prefix=f"k{keys}-s{step_ms}-")
    mport = free_port()
    cfg = {
        "gateway": "gw",
        "source": {"broker": f"tcp://127.0.0.1:{broker_port}", "client_id": f"weir-mem-{keys}-{step_ms}",
                   "topics": [{"topic": "mem/data", "format": "json"}], "device": "/d",
                   "fields": {"temp": "/temp"}, "max_devices": keys},
        "pipelines": [{"name": "p", "key": ["device"],
                       "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                                      "t_max": {"max": "temp"}},
                       "limits": {"max_keys": keys}}],
        "storage": {"path": os.path.join(d, "weir.db")},
        "ingest": {"durability": durability},
        # Nothing listens there: results stay in the outbox, as on a gateway
        # whose uplink is down.
        "uplink": {"broker": "tcp://127.0.0.1:1", "topic": "up/{pipeline}"},
        "metrics": {"listen": f"127.0.0.1:{mport}"},
    }
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    v = subprocess.run([weir, "validate", path], capture_output=True, text=True)
    if v.returncode != 0:
        check(False, f"{keys} keys: weir validate exited {v.returncode}: {v.stderr}")
        return
    budget = parse_budget(v.stdout)
    print(f"     {keys} keys: " + next(l for l in v.stdout.splitlines()
                                        if l.startswith("memory budget")))

    log = open(os.path.join(d, "weir.log"), "w")
    p = subprocess.Popen([weir, "run", path], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("the source's first connection",
                 lambda: (scrape(mport) or {}).get("weir_source_connected") == 1, 60)
    finally:
        stop(p)
    # Three readings per device, devices round-robin, event time advancing
    # step_ms per round (1 s: all in one 1-minute window; 30 s: the third
    # round crosses into the next window, so every key fires a result),
    # queued by the broker.
    n = 3 * keys
    payloads = os.path.join(d, "payloads.txt")
    with open(payloads, "w") as f:
        for i in range(n):
            f.write('{"d":"dev-%d","ts":%d,"temp":%.1f}\n'
                    % (i % keys, 1700000000000 + (i // keys) * step_ms, 20 + (i % 97) * 0.1))
    with open(payloads) as f:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker_port), "-q", "1",
                        "-t", "mem/data", "-l"], stdin=f, check=True)

    p = subprocess.Popen([weir, "run", path], stdout=log, stderr=subprocess.STDOUT)
    try:
        key_metric = 'weir_keys{pipeline="p"}'
        # When crossing a window boundary, also every key's result.
        results = keys if step_ms >= 30000 else 0
        m = wait_for(f"{n} readings, {keys} keys and {results} results",
                     lambda: (lambda s: s if s and s.get("weir_readings_total", 0) >= n
                              and s.get(key_metric, 0) >= keys
                              and s.get('weir_results_total{pipeline="p"}', 0) >= results
                              else None)(scrape(mport)), 300)
        # A group commit with every key's checkpoint row follows the last
        # reading: wait until it is through (no state left uncommitted shows
        # as the journal/outbox no longer changing), with a deadline.
        last = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            s = scrape(mport) or {}
            cur = (s.get("weir_storage_file_bytes"), s.get("weir_outbox_rows"))
            if cur == last:
                break
            last = cur
            time.sleep(0.5)
        hwm_kb = status_kb(p.pid, "VmHWM")
    finally:
        stop(p)
    rss = hwm_kb * 1024
    what = f"{keys} keys ({durability}, {'every key fires' if step_ms >= 30000 else 'no firing'})"
    print(f"     {what}: peak RSS {rss / 2**20:.1f} MB, "
          f"budget {budget / 2**20:.1f} MB, budget/RSS {budget / rss:.2f}; "
          f"readings {int(m['weir_readings_total'])}")
    check(rss <= budget, f"{what}: peak RSS {rss / 2**20:.1f} MB <= budget "
                         f"{budget / 2**20:.1f} MB")
    check(budget <= 2 * rss, f"{what}: budget {budget / 2**20:.1f} MB <= 2 x peak RSS "
                             f"{2 * rss / 2**20:.1f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="weir-mem-")
    out = subprocess.run([sys.executable, BROKER, "start", "--dir", os.path.join(tmp, "broker")],
                         check=True, capture_output=True, text=True)
    port, pid = out.stdout.split()
    try:
        run_case(a.bin, tmp, int(port), 1000, "journal")
        run_case(a.bin, tmp, int(port), 10000, "batch")
        run_case(a.bin, tmp, int(port), 10000, "batch", step_ms=30000)
    finally:
        subprocess.run([sys.executable, BROKER, "stop", pid], check=False)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
