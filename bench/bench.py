#!/usr/bin/env python3
"""Runs weir's benchmarks and writes bench/report.md and bench/report.json.

  bench.py [--quick] [--only core,ingest,...] [--bin-dir build/bin] [--bench-dir build/bench]
           [--out-dir bench] [--runs N] [--smoke]

Every benchmark runs at least --runs times (3) and reports min/median/max together with a
baseline measured in the same run on the same machine, and their ratio (the machine is
shared and noisy; absolute numbers move between sessions, ratios much less). Goals from
issue 10 are marked met / not met with the measured value. --smoke (the CI test) uses tiny
inputs and checks nothing but that the report gets written; numbers never go in tests.

Benchmarks: core (weir replay on JSON input + the Engine on decoded readings), ingest
(drain mode through a private Mosquitto), uplink (outbox flush), recovery, footprint
(binary size, peak RSS).
"""
import argparse
import datetime
import json
import select
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

ALL = ["core", "ingest", "uplink", "footprint", "peer"]  # uplink also measures recovery


# ---------------------------------------------------------------- helpers

def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0, 0, 0)
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "load_avg_at_start": [round(x, 2) for x in load]}


def stats(values):
    v = sorted(values)
    return {"min": v[0], "median": statistics.median(v), "max": v[-1], "runs": len(v)}


def case(name, unit, values, baseline_name=None, baseline_values=None, higher_is_better=True,
         extra=None):
    c = {"name": name, "unit": unit, "value": stats(values)}
    if baseline_values:
        c["baseline"] = dict(stats(baseline_values), name=baseline_name)
        b = c["baseline"]["median"]
        c["ratio"] = round(c["value"]["median"] / b, 4) if b else None
    if extra:
        c.update(extra)
    return c


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, pred, timeout_s=60.0, interval_s=0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval_s)
    raise TimeoutError(f"timed out waiting for {what}")


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and not m.group(2):
            try:
                out[m.group(1)] = float(m.group(3))
            except ValueError:
                pass
    return out


class Broker:
    def __init__(self, directory):
        self.dir = directory
        out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "broker.py"), "start",
                              "--dir", directory], check=True, capture_output=True, text=True)
        port, pid = out.stdout.split()
        self.port, self.pid = int(port), int(pid)
        self.uri = f"tcp://127.0.0.1:{self.port}"

    def stop(self):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "broker.py"), "stop",
                        str(self.pid)], check=False)


def stop_proc(p, sig=signal.SIGTERM, timeout_s=20):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- core

WINDOWS = {
    "tumbling": {"type": "tumbling", "size": "1m"},
    "hopping": {"type": "hopping", "size": "1m", "hop": "15s"},
    "session": {"type": "session", "gap": "30s"},
}


def pipeline_config(window, broker="tcp://127.0.0.1:1", extra=None):
    c = {
        "gateway": "gw",
        "source": {"broker": broker,
                   "topics": [{"topic": "bench/{device}/data", "format": "json"}],
                   "fields": {"temp": "/temp"}},
        "pipelines": [{"name": "p", "key": ["device"], "window": window,
                       "aggregates": {"n": {"count": "*"}, "t_avg": {"avg": "temp"},
                                      "t_max": {"max": "temp"}}}],
    }
    if extra:
        for k, v in extra.items():
            c[k] = v
    return c


def write_replay_input(path, n, keys):
    """n readings, devices round-robin, one reading per device per second of event time,
    and a silent minute after every minute (so sessions with a 30 s gap close too)."""
    with open(path, "w") as f:
        base = 1700000000000
        for i in range(n):
            second = i // keys
            ts = base + (second + (second // 60) * 60) * 1000
            f.write('{"t":%d,"topic":"bench/dev-%d/data","payload":{"ts":%d,"temp":%.1f}}\n'
                    % (ts, i % keys, ts, 20 + (i % 97) * 0.1))


def timed(args, **kw):
    """Runs args to completion; returns (wall seconds, CPU seconds user+sys, process)."""
    import resource
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    return dt, cpu, p


def short_symbol(sym):
    # Drops template arguments and parameter lists so a profile line fits in a table.
    sym = re.sub(r"(\s+-)+\s*$", "", sym).replace("(anonymous namespace)", "{anon}")
    out, depth = [], 0
    for ch in sym:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip()[:90]


def perf_profile(args, top=12):
    """Flat perf profile of one run of args: [(percent, symbol)], or None without perf."""
    if not shutil.which("perf"):
        return None
    with tempfile.TemporaryDirectory(prefix="weir-perf-") as d:
        data = os.path.join(d, "perf.data")
        rec = subprocess.run(["perf", "record", "-F", "1999", "-o", data, "--"] + args,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rec.returncode != 0:
            return None
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol",
                              "--stdio", "-g", "none"], capture_output=True, text=True)
    rows = []
    for line in rep.stdout.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+\[[.k]\]\s+(.*?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), short_symbol(m.group(2))))
    return rows[:top]


def profile_md(title, rows):
    if not rows:
        return f"{title}: no profile (perf not available)."
    lines = [f"{title} (perf, self time, top {len(rows)}):", "", "| % | symbol |", "|---|---|"]
    lines += [f"| {p:.1f} | `{s}` |" for p, s in rows]
    return "\n".join(lines)


def bench_core(ctx):
    a = ctx.args
    n = 20000 if a.smoke else (200000 if a.quick else 1000000)
    key_counts = [1000] if a.smoke else ([1000, 10000] if a.quick else [1000, 10000, 100000])
    windows = ["tumbling"] if a.smoke else list(WINDOWS)
    weir = os.path.join(a.bin_dir, "weir")
    baseline = os.path.join(a.bench_dir, "weir_json_baseline")
    cases, notes = [], []
    for keys in key_counts:
        inp = os.path.join(ctx.tmp, f"replay-{keys}.jsonl")
        write_replay_input(inp, n, keys)
        base_vals = []
        for _ in range(a.runs):
            _dt, cpu, _p = timed([baseline, inp])
            base_vals.append(n / cpu)
        for w in windows:
            cfg = os.path.join(ctx.tmp, f"core-{w}.json")
            with open(cfg, "w") as f:
                json.dump(pipeline_config(WINDOWS[w]), f)
            vals, walls = [], []
            out = os.path.join(ctx.tmp, "replay-out.jsonl")
            replay_args = [weir, "replay", cfg, "--input", inp, "--output", out, "--drain"]
            for _ in range(a.runs):
                dt, cpu, _p = timed(replay_args)
                vals.append(n / cpu)
                walls.append(n / dt)
            c = case(f"replay json {w} @{keys} keys", "readings/s/core", vals,
                     "simdjson read+parse of the same file (weir_json_baseline)", base_vals,
                     extra={"readings": n, "wall_readings_per_s": round(statistics.median(walls))})
            if w == "tumbling" and keys == 10000:
                ctx.replay_profile_args = replay_args
            log(f"core: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
            cases.append(c)
    notes.append("Replay figures are readings divided by the CPU time (user + sys, from "
                 "getrusage) of the whole `weir replay --drain` process over a generated "
                 "JSON-lines file (one reading per line, devices round-robin, one reading per "
                 "device per second of event time, a silent minute after every minute), output "
                 "written to a temp file; the same CPU-time rate without profile noise from "
                 "other processes is why these are per core. The "
                 "baseline reads the same file and parses every line with simdjson, touching the "
                 "fields a reading needs, and nothing else.")
    eng = os.path.join(a.bench_dir, "weir_engine_bench")
    if os.path.exists(eng):
        flt = "BM_Engine/window:0/keys:1000$" if a.smoke else (
            "BM_Engine/window:0/keys:(1000|10000)$|BM_Engine/window:[12]/" if a.quick else ".")
        reps = 1 if a.smoke else a.runs
        args = [eng, f"--benchmark_filter={flt}", f"--benchmark_repetitions={reps}",
                "--benchmark_format=json"]
        args.append(f"--benchmark_min_time={0.05 if a.smoke else 0.5}")
        _dt, _cpu, p = timed(args)
        data = json.loads(p.stdout)
        per = {}
        for b in data.get("benchmarks", []):
            if b.get("run_type") != "iteration":
                continue
            name = b["run_name"]
            per.setdefault(name, []).append(b)
        kinds = {"0": "tumbling", "1": "hopping", "2": "session"}
        for name, runs in per.items():
            m = re.search(r"window:(\d)/keys:(\d+)", name)
            label = f"engine decoded {kinds[m.group(1)]} @{m.group(2)} keys"
            vals = [r["items_per_second"] for r in runs]
            allocs = statistics.median(r.get("allocs_per_reading", 0) for r in runs)
            c = case(label, "readings/s", vals, extra={"allocs_per_reading": round(allocs, 4)})
            log(f"core: {label}: median {c['value']['median']:.0f}/s allocs {allocs:.3f}")
            cases.append(c)
        notes.append("Engine figures are Google Benchmark runs of operators::Engine::OnReading on "
                     "pre-decoded Readings (bench/engine_bench.cc), one thread, after two minutes "
                     "of event time of warm-up; allocations per reading are counted by replacing "
                     "global operator new in the benchmark binary. They have no baseline: the "
                     "goal is absolute (readings/s/core).")
    ctx.result["core"] = {"cases": cases, "notes": notes}

    def med(name):
        for c in cases:
            if c["name"] == name:
                return c["value"]["median"]
        return None
    e = med("engine decoded tumbling @10000 keys")
    ctx.goal("core.decoded", "Engine >= 10M readings/s/core, tumbling @10k keys, decoded input",
             e, 10e6, "readings/s/core")
    j = med("replay json tumbling @10000 keys")
    ctx.goal("core.json",
             ">= 1M readings/s/core including JSON decode (weir replay, tumbling @10k keys)",
             j, 1e6, "readings/s/core")
    # Where the time goes, for the goals missed (not in the smoke test: it is slow).
    if a.smoke:
        return
    if e is not None and e < 10e6 and os.path.exists(eng):
        rows = perf_profile([eng, "--benchmark_filter=BM_Engine/window:0/keys:10000$",
                             "--benchmark_min_time=3"])
        ctx.profiles.append(profile_md("Engine, tumbling @10k keys, decoded input", rows))
    if j is not None and j < 1e6 and getattr(ctx, "replay_profile_args", None):
        rows = perf_profile(ctx.replay_profile_args)
        ctx.profiles.append(profile_md(f"`weir replay`, JSON, tumbling @10k keys, {n} readings",
                                       rows))


# ---------------------------------------------------------------- ingest (drain mode)

def ingest_payloads(n, keys):
    base = 1700000000000
    for i in range(n):
        ts = base + (i // keys) * 1000
        yield '{"d":"dev-%d","ts":%d,"temp":%.1f}' % (i % keys, ts, 20 + (i % 97) * 0.1)


def publish_lines(broker, topic, lines_path):
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-h", "127.0.0.1", "-q", "1",
                    "-t", topic, "-l"], stdin=open(lines_path), check=True,
                   stdout=subprocess.DEVNULL)


def run_weir_drain(ctx, broker, payloads, n, durability, tag, profile=False):
    """Primes weir's persistent session, queues n readings while weir is away, then times
    the drain from the first to the last reading processed (weir_readings_total)."""
    a = ctx.args
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix=f"ingest-{tag}-")
    mport = free_port()
    cfg = pipeline_config(WINDOWS["tumbling"], broker.uri, {
        "storage": {"path": os.path.join(d, "weir.db")},
        "ingest": {"durability": durability},
        "uplink": {"broker": "tcp://127.0.0.1:1", "topic": "up/{pipeline}"},
        "metrics": {"listen": f"127.0.0.1:{mport}"}})
    cfg["source"]["topics"] = [{"topic": "bench/data", "format": "json"}]
    cfg["source"]["device"] = "/d"
    cfg["source"]["client_id"] = f"weir-bench-{tag}"
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    weir = os.path.join(a.bin_dir, "weir")
    logf = open(os.path.join(d, "weir.log"), "w")
    p = subprocess.Popen([weir, "run", path], stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_for("weir source connected",
                 lambda: (metrics(mport) or {}).get("weir_source_connected") == 1, 30)
    finally:
        stop_proc(p)
    publish_lines(broker, "bench/data", payloads)
    p = subprocess.Popen([weir, "run", path], stdout=logf, stderr=subprocess.STDOUT)
    perf = None
    if profile and shutil.which("perf"):
        perf_data = os.path.join(d, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "1999", "-o", perf_data, "-p",
                                 str(p.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        first = wait_for("first reading", lambda: (lambda m: (time.perf_counter(), m[
            "weir_readings_total"]) if m and m.get("weir_readings_total", 0) > 0 else None)(
                metrics(mport)), 60, 0.002)
        cpu0 = cpu_seconds(p.pid)
        last = wait_for("last reading", lambda: (lambda m: (time.perf_counter(), m[
            "weir_readings_total"]) if m and m.get("weir_readings_total", 0) >= n else None)(
                metrics(mport)), 600, 0.005)
        cpu1 = cpu_seconds(p.pid)
        rss = vm_hwm_kb(p.pid)
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        stop_proc(p)
    dt = last[0] - first[0]
    busy = (cpu1 - cpu0) / dt if dt > 0 and cpu0 is not None and cpu1 is not None else None
    rows = None
    if perf:
        rep = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "--sort",
                              "symbol", "--stdio", "-g", "none"], capture_output=True, text=True)
        rows = []
        for line in rep.stdout.splitlines():
            m = re.match(r"^\s+([0-9.]+)%\s+\[[.k]\]\s+(.*?)\s*$", line)
            if m:
                rows.append((float(m.group(1)), short_symbol(m.group(2))))
        rows = rows[:12]
    rate = (n - first[1]) / dt if dt > 0 else None
    if profile:
        return rate, rss, busy, rows
    return rate, rss


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_sub_drain(ctx, broker, payloads, n, tag):
    """Drain-mode baseline. With bench/paho_count_sub built: a bare Paho C++ subscriber
    that only counts, timed by itself from the first to the N-th message (the issue's
    baseline, measured like weir). Otherwise mosquitto_sub, timed by wall clock."""
    cid = f"bench-sub-{tag}"
    paho = os.path.join(ctx.args.bench_dir, "weir_paho_count_sub")
    if os.path.exists(paho):
        subprocess.run([paho, broker.uri, cid, "bench/data", "1", "--prime"], check=True)
        publish_lines(broker, "bench/data", payloads)
        _dt, _cpu, p = timed([paho, broker.uri, cid, "bench/data", "1", str(n)])
        r = json.loads(p.stdout)
        return "paho", r["messages"] / r["seconds"]
    base = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-c", "-i", cid, "-q",
            "1", "-t", "bench/data"]
    subprocess.run(base + ["-E"], check=True, stdout=subprocess.DEVNULL)
    publish_lines(broker, "bench/data", payloads)
    dt, _cpu, _p = timed(base + ["-C", str(n)])
    return "mosquitto_sub", n / dt


BASELINE_NAMES = {
    "paho": "bare Paho C++ subscriber that only counts (bench/paho_count_sub.cc), QoS 1, "
            "first to N-th message",
    "mosquitto_sub": "mosquitto_sub -c -q 1 -C N draining the same queue (wall time)",
}


def bench_ingest(ctx):
    a = ctx.args
    n = 5000 if a.smoke else (50000 if a.quick else 300000)
    keys = 1000 if a.smoke else 10000
    payloads = os.path.join(ctx.tmp, "ingest-payloads.txt")
    with open(payloads, "w") as f:
        for line in ingest_payloads(n, keys):
            f.write(line + "\n")
    cases = []
    for durability in ["batch", "journal"]:
        vals, base, rss = [], [], []
        kind = None
        for r in range(a.runs):
            broker = Broker(tempfile.mkdtemp(dir=ctx.tmp, prefix="broker-"))
            try:
                kind, b = run_sub_drain(ctx, broker, payloads, n, f"{durability}{r}")
                base.append(b)
                v, kb = run_weir_drain(ctx, broker, payloads, n, durability, f"{durability}{r}")
                vals.append(v)
                rss.append(kb)
            finally:
                broker.stop()
        c = case(f"ingest drain {durability} tumbling @{keys} keys", "readings/s", vals,
                 BASELINE_NAMES[kind], base,
                 extra={"readings": n, "peak_rss_kb": max(x for x in rss if x)})
        log(f"ingest: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
        cases.append(c)
    ctx.result["ingest"] = {"cases": cases, "notes": [
        "Drain mode (shared/BENCHMARKING.md): weir connects once to create its persistent "
        "session and stops; N readings are published at QoS 1 (mosquitto_pub -l, one topic, "
        "device from the payload) while it is away; then `weir run` starts and the time from "
        "the first to the last reading counted by /metrics weir_readings_total is the drain "
        "time (polled every 2-5 ms; weir's source subscribes at QoS 1). The baseline drains "
        "the same number of queued messages from the same broker with a persistent session, "
        "in the same run, just before weir."]}
    med = {c["name"].split()[2]: c for c in cases}
    ctx.goal("ingest.batch", ">= 0.9x bare subscriber, durability batch",
             med["batch"]["ratio"], 0.9, "x baseline")
    ctx.goal("ingest.journal", ">= 0.5x bare subscriber, durability journal",
             med["journal"]["ratio"], 0.5, "x baseline")
    if a.smoke:
        return
    # Where the time goes: one more drain per mode under perf, and how busy weir was
    # (CPU seconds over wall seconds of the drain; well below 1 means waiting, not computing).
    for durability in ["batch", "journal"]:
        if (med[durability]["ratio"] or 0) >= (0.9 if durability == "batch" else 0.5):
            continue
        broker = Broker(tempfile.mkdtemp(dir=ctx.tmp, prefix="broker-"))
        try:
            rate, _kb, busy, rows = run_weir_drain(ctx, broker, payloads, n, durability,
                                                   f"prof-{durability}", profile=True)
        finally:
            broker.stop()
        title = (f"`weir run` draining {n} readings, durability {durability} "
                 f"({fmt(rate)} readings/s under perf; weir used "
                 f"{busy:.2f} CPU-seconds per second of the drain)" if busy is not None else
                 f"`weir run` draining {n} readings, durability {durability}")
        ctx.profiles.append(profile_md(title, rows))


# ---------------------------------------------------------------- uplink flush + recovery

def fill_outbox(ctx, n_readings, keys, batch_max, tag):
    """Runs weir with its uplink broker down and feeds readings that each close a 1 s
    tumbling window of their device, so the outbox fills with about n_readings - keys
    results. Returns what the flush needs; weir is SIGKILLed once the outbox holds them."""
    a = ctx.args
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix=f"uplink-{tag}-")
    src = Broker(tempfile.mkdtemp(dir=d, prefix="src-"))
    up_port = free_port()
    mport = free_port()
    cfg = pipeline_config({"type": "tumbling", "size": "1s"}, src.uri, {
        "storage": {"path": os.path.join(d, "weir.db")},
        "ingest": {"durability": "batch"},
        "uplink": {"broker": f"tcp://127.0.0.1:{up_port}", "topic": "up/{pipeline}",
                   "batch_max": batch_max},
        "metrics": {"listen": f"127.0.0.1:{mport}"}})
    cfg["source"]["topics"] = [{"topic": "bench/data", "format": "json"}]
    cfg["source"]["device"] = "/d"
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    payloads = os.path.join(d, "payloads.txt")
    with open(payloads, "w") as f:
        for line in ingest_payloads(n_readings, keys):
            f.write(line + "\n")
    weir = os.path.join(a.bin_dir, "weir")
    logf = open(os.path.join(d, "weir.log"), "a")
    p = subprocess.Popen([weir, "run", path], stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_for("weir source connected",
                 lambda: (metrics(mport) or {}).get("weir_source_connected") == 1, 30)
        publish_lines(src, "bench/data", payloads)
        expected = n_readings - keys

        def filled():
            m = metrics(mport) or {}
            return m.get("weir_outbox_rows", 0) >= expected
        wait_for("outbox filled", filled, 600, 0.05)
        rows = int(metrics(mport)["weir_outbox_rows"])
    finally:
        stop_proc(p, signal.SIGKILL)
    # The gateway broker stays up for the flush, as on a gateway: with it down, the uplink
    # was seen to connect only after the source's 1 s connect retry (about 1.2 s to the
    # first publish instead of 0.2 s).
    return {"dir": d, "config": path, "up_port": up_port, "mport": mport, "rows": rows,
            "log": logf, "src": src}


def flush(ctx, f):
    """Starts the uplink broker and a subscriber, then weir: time from start to the first
    message upstream (recovery after SIGKILL) and results/s of the flush (first to last row
    received by a subscriber on the uplink broker)."""
    up = Broker.__new__(Broker)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "broker.py"), "start",
                          "--dir", os.path.join(f["dir"], "up"), "--port", str(f["up_port"])],
                         check=True, capture_output=True, text=True)
    up.port, up.pid = map(int, out.stdout.split())
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(up.port), "-t",
                            "up/#", "-t", "bench/probe", "-v"], stdout=subprocess.PIPE, text=True)
    weir = None
    try:
        # The subscriber is ready when it sees a probe published after it started.
        deadline = time.monotonic() + 10
        while True:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(up.port), "-t",
                            "bench/probe", "-m", "x"], check=True)

            r, _, _ = select.select([sub.stdout], [], [], 0.1)
            if r and sub.stdout.readline().startswith("bench/probe"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("uplink subscriber not ready")
        t0 = time.perf_counter()
        weir = subprocess.Popen([os.path.join(ctx.args.bin_dir, "weir"), "run", f["config"]],
                                stdout=f["log"], stderr=subprocess.STDOUT)
        # Rows as the subscriber sees them (an array per message with batch_max > 1).
        first_publish, first_rows, got, t_first = None, 0, 0, None
        deadline = time.monotonic() + 600
        while got < f["rows"]:
            line = sub.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"subscriber saw {got} of {f['rows']} rows")
            if not line.startswith("up/"):
                continue
            body = json.loads(line.split(" ", 1)[1])
            k = len(body) if isinstance(body, list) else 1
            now = time.perf_counter()
            if first_publish is None:
                first_publish, t_first, first_rows = now - t0, now, k
            got += k
        t_last = time.perf_counter()
        rate = (got - first_rows) / (t_last - t_first) if t_last > t_first else None
        return first_publish, rate
    finally:
        if weir:
            stop_proc(weir)
        sub.kill()
        sub.wait()
        up.stop()
        f["src"].stop()


def pub_baseline(ctx, rows, payload_len):
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix="pubbase-")
    b = Broker(os.path.join(d, "b"))
    try:
        path = os.path.join(d, "lines.txt")
        line = '{"id":"gw/p/dev-1/1700000000000","rev":0,"x":"' + "x" * max(0, payload_len - 50) \
            + '"}'
        with open(path, "w") as f:
            for _ in range(rows):
                f.write(line + "\n")
        t0 = time.perf_counter()
        publish_lines(b, "up/p", path)
        return rows / (time.perf_counter() - t0)
    finally:
        b.stop()


def bench_uplink(ctx):
    a = ctx.args
    n = 3000 if a.smoke else (20000 if a.quick else 200000)
    keys = 100
    cases, rec_cases = [], []
    results = {}
    for batch in [1, 100]:
        vals, firsts = [], []
        for r in range(a.runs):
            f = fill_outbox(ctx, n, keys, batch, f"b{batch}r{r}")
            first, rate = flush(ctx, f)
            vals.append(rate)
            firsts.append(first)
        results[batch] = (vals, firsts, f["rows"])
    base = [pub_baseline(ctx, results[1][2], 150) for _ in range(a.runs)]
    for batch in [1, 100]:
        vals, firsts, rows = results[batch]
        c = case(f"uplink flush batch_max {batch}, {rows} rows", "results/s", vals,
                 "mosquitto_pub -l -q 1 of as many ~150-byte payloads", base,
                 extra={"rows": rows})
        log(f"uplink: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
        cases.append(c)
        rec_cases.append(case(f"start to first publish after SIGKILL, {rows} rows pending, "
                              f"batch_max {batch}", "s", firsts, higher_is_better=False))
    ctx.result["uplink"] = {"cases": cases, "notes": [
        "The outbox is filled by `weir run` with its uplink broker down (readings that each "
        "close a 1 s tumbling window of their device), weir is SIGKILLed, the uplink broker "
        "started, and weir started again; the flush rate is rows received by a mosquitto_sub "
        "on the uplink broker from its first to its last message (results after the first "
        "message over the time between them). "
        "Baseline: mosquitto_pub -l at QoS 1 publishing as many single-result payloads to the "
        "same kind of broker (one message per result, its default window of 20 in flight)."]}
    ctx.result["recovery"] = {"cases": rec_cases, "notes": [
        "Same runs as uplink: wall time from starting `weir run` on the SIGKILLed database to "
        "the first message a subscriber on the uplink broker receives, gateway broker up. "
        "With the gateway broker down, runs were bimodal (0.2 s or 1.2 s): the uplink "
        "connected only after the source's first 1 s connect retry."]}
    ctx.goal("uplink.batched", ">= 100k results/s flushing the outbox, batch_max 100",
             cases[1]["value"]["median"], 100e3, "results/s")
    ctx.goal("recovery", "start to first publish < 1 s with many undelivered rows after SIGKILL "
             f"({results[100][2]} rows, the issue asks 1M)", rec_cases[1]["value"]["median"], 1.0,
             "s", higher_is_better=False)


# ---------------------------------------------------------------- peer: Node-RED

NODE_RED_FUNC = r"""
const p = msg.payload;
let s = context.get('s');
if (!s) { s = new Map(); context.set('s', s); }
const w = Math.floor(p.ts / 60000);
let k = s.get(p.d);
if (!k) { k = {w: w, sum: 0, n: 0}; s.set(p.d, k); }
if (k.w !== w) {
  node.send({payload: {device: p.d, start: k.w * 60000, end: k.w * 60000 + 60000,
                       count: k.n, temp_avg: k.sum / k.n}});
  k.w = w; k.sum = 0; k.n = 0;
}
k.sum += p.temp; k.n += 1;
const c = (global.get('count') || 0) + 1;
const now = Date.now();
if (c === 1) global.set('first_ms', now);
global.set('last_ms', now);
global.set('count', c);
return null;
"""


def node_red_install(ctx):
    """npm installs Node-RED 4 (runs on Debian's node 20) into build/bench-peers once."""
    d = os.path.join(ROOT, "build", "bench-peers", "node-red")
    red = os.path.join(d, "node_modules", "node-red", "red.js")
    if not os.path.exists(red):
        if not shutil.which("npm"):
            raise RuntimeError("npm not found (apt-get install npm)")
        os.makedirs(d, exist_ok=True)
        log("peer: npm install node-red@4")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                        "node-red@4"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    return red


def run_node_red_drain(ctx, red, broker, payloads, n, tag):
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix=f"nodered-{tag}-")
    port = free_port()
    flows = [
        {"id": "t1", "type": "tab", "label": "bench"},
        {"id": "b1", "type": "mqtt-broker", "broker": "127.0.0.1", "port": str(broker.port),
         "clientid": f"nodered-bench-{tag}", "cleansession": False, "protocolVersion": "4",
         "autoConnect": True, "keepalive": "60", "autoUnsubscribe": False},
        {"id": "in1", "type": "mqtt in", "z": "t1", "topic": "bench/data", "qos": "1",
         "datatype": "json", "broker": "b1", "wires": [["fn1"]]},
        {"id": "fn1", "type": "function", "z": "t1", "func": NODE_RED_FUNC, "outputs": 1,
         "wires": [[]]},
        {"id": "h1", "type": "http in", "z": "t1", "url": "/count", "method": "get",
         "wires": [["fn2"]]},
        {"id": "fn2", "type": "function", "z": "t1", "outputs": 1, "wires": [["r1"]],
         "func": "msg.payload = {count: global.get('count') || 0, "
                 "first_ms: global.get('first_ms') || 0, last_ms: global.get('last_ms') || 0}; "
                 "return msg;"},
        {"id": "r1", "type": "http response", "z": "t1", "wires": []},
    ]
    with open(os.path.join(d, "flows.json"), "w") as f:
        json.dump(flows, f)
    with open(os.path.join(d, "settings.js"), "w") as f:
        f.write("module.exports = {uiPort: %d, uiHost: '127.0.0.1', httpAdminRoot: false, "
                "flowFile: 'flows.json', credentialSecret: false, "
                "logging: {console: {level: 'warn'}}};\n" % port)

    def counters():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=1) as r:
                return json.loads(r.read())
        except (OSError, ValueError, KeyError):
            return None

    def count():
        c = counters()
        return c["count"] if c else None
    args = ["node", red, "--settings", os.path.join(d, "settings.js"), "--userDir", d]
    logf = open(os.path.join(d, "node-red.log"), "w")
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_for("node-red http", lambda: count() is not None, 60, 0.05)

        def subscribed():  # a probe counted means the persistent session is subscribed
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q",
                            "1", "-t", "bench/data", "-m", '{"d":"probe","ts":0,"temp":0}'],
                           check=True)
            return (count() or 0) > 0
        wait_for("node-red subscribed", subscribed, 60, 0.1)
        idle_kb = vm_hwm_kb(p.pid)
    finally:
        # Killed, so its mqtt node cannot unsubscribe the persistent session on close.
        stop_proc(p, signal.SIGKILL)
    publish_lines(broker, "bench/data", payloads)
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
    try:
        # The function node stamps its first and last message (ms): no polling error.
        c = wait_for("last reading", lambda: (lambda c: c if c and c["count"] >= n else None)(
            counters()), 600, 0.05)
        kb = vm_hwm_kb(p.pid)
    finally:
        stop_proc(p)
    dt = (c["last_ms"] - c["first_ms"]) / 1000.0
    return (c["count"] - 1) / dt if dt > 0 else None, kb, idle_kb


def bench_peer(ctx):
    a = ctx.args
    red = node_red_install(ctx)
    n = 5000 if a.smoke else (50000 if a.quick else 300000)
    keys = 1000 if a.smoke else 10000
    payloads = os.path.join(ctx.tmp, "peer-payloads.txt")
    with open(payloads, "w") as f:
        for line in ingest_payloads(n, keys):
            f.write(line + "\n")
    nr, weir, nr_rss, weir_rss = [], [], [], []
    for r in range(a.runs):
        broker = Broker(tempfile.mkdtemp(dir=ctx.tmp, prefix="broker-"))
        try:
            v, kb, _idle = run_node_red_drain(ctx, red, broker, payloads, n, f"r{r}")
            nr.append(v)
            nr_rss.append(kb / 1024)
            v, kb = run_weir_drain(ctx, broker, payloads, n, "batch", f"peer{r}")
            weir.append(v)
            weir_rss.append(kb / 1024)
        finally:
            broker.stop()
    cases = [
        case(f"weir drain (batch) tumbling 1 m @{keys} keys, QoS 1", "readings/s", weir,
             "Node-RED 4 mqtt-in + function node, per-device 1-minute average, same queue", nr,
             extra={"readings": n}),
        case(f"weir peak RSS in that run", "MB", weir_rss, "Node-RED peak RSS", nr_rss),
    ]
    for c in cases:
        log(f"peer: {c['name']}: median {c['value']['median']:.1f} ratio {c['ratio']}")
    ctx.result["peer"] = {"cases": cases, "notes": [
        "Node-RED 4.x (npm, into build/bench-peers/node-red once; Debian's node 20), headless "
        "(editor off), an mqtt-in node (QoS 1, persistent session) feeding a function node "
        "that keeps a per-device 1-minute average and counts readings, read through a small "
        "http-in endpoint. Drain mode as for ingest, same broker and queue size, in the same "
        "run; the ratio is weir / Node-RED. Node-RED keeps its windows in memory and stores "
        "nothing, weir commits to SQLite."]}


# ---------------------------------------------------------------- reload (issue 12)

def bench_reload(ctx):
    import reload_pause  # bench/reload_pause.py: the ingest pause a SIGHUP causes
    ctx.result["reload"] = reload_pause.bench_section(ctx.args.bin_dir, ctx.args.runs,
                                                      ctx.args.smoke, ctx.tmp)


ALL.append("reload")


# ---------------------------------------------------------------- footprint

def bench_footprint(ctx):
    a = ctx.args
    cases = []
    sizes = {}
    for label, path in [("amd64", os.path.join(a.bin_dir, "weir")),
                        ("aarch64", os.path.join(ROOT, "build", "release-aarch64", "bin", "weir"))]:
        if not os.path.exists(path):
            continue
        copy = os.path.join(ctx.tmp, f"weir-{label}")
        shutil.copy(path, copy)
        strip = "strip"
        if label == "aarch64":
            strip = shutil.which("aarch64-linux-gnu-strip") or "strip"
        subprocess.run([strip, copy], check=False)
        sizes[label] = os.path.getsize(copy)
        cases.append({"name": f"stripped weir binary {label} ({path})", "unit": "bytes",
                      "value": stats([sizes[label]])})
    # Peak RSS of `weir run` after draining a backlog that touches every key.
    key_counts = [1000] if a.smoke else ([1000, 10000] if a.quick else [1000, 10000, 100000])
    rss_10k = None
    for keys in key_counts:
        n = max(keys * 3, 5000 if a.smoke else 30000)
        payloads = os.path.join(ctx.tmp, f"rss-{keys}.txt")
        with open(payloads, "w") as f:
            for line in ingest_payloads(n, keys):
                f.write(line + "\n")
        vals = []
        for r in range(a.runs):
            broker = Broker(tempfile.mkdtemp(dir=ctx.tmp, prefix="broker-"))
            try:
                _rate, kb = run_weir_drain(ctx, broker, payloads, n, "batch", f"rss{keys}r{r}")
                vals.append(kb / 1024)
            finally:
                broker.stop()
        c = case(f"peak RSS of weir run @{keys} keys ({n} readings drained)", "MB", vals)
        log(f"footprint: {c['name']}: median {c['value']['median']:.1f} MB")
        cases.append(c)
        if keys == 10000:
            rss_10k = c["value"]["max"]
    ctx.result["footprint"] = {"cases": cases, "notes": [
        "Size of a stripped copy of the built binary (build/bin/weir is the RelWithDebInfo host "
        "build; build/release-aarch64/bin/weir when that build exists).",
        "Peak RSS is VmHWM from /proc/PID/status of `weir run` (tumbling 1 m, durability "
        "batch) right after it drained a queued backlog in which every key sent readings. "
        "The 6 h offline period with a 1M-reading backlog is not measured yet."]}
    ctx.goal("memory.10k", "peak RSS of weir run <= 12 MB at 10k keys", rss_10k, 12.0, "MB",
             higher_is_better=False)
    ctx.goal("footprint.aarch64", "stripped aarch64 binary <= 3 MB",
             sizes.get("aarch64"), 3 * 1024 * 1024, "bytes", higher_is_better=False)


# ---------------------------------------------------------------- report

class Ctx:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.result = {}
        self.goals = []
        self.profiles = []

    def goal(self, gid, text, measured, target, unit, higher_is_better=True):
        if measured is None:
            met = None
        else:
            met = measured >= target if higher_is_better else measured <= target
        self.goals.append({"id": gid, "goal": text, "target": target, "measured": measured,
                           "unit": unit,
                           "ratio_to_target": round(measured / target, 4) if measured else None,
                           "met": met})


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 100:
        return f"{v:.3g}"
    return f"{v:,.0f}"


def write_report(ctx, out_dir, started):
    report = {"generated": started, "quick": ctx.args.quick, "smoke": ctx.args.smoke,
              "runs": ctx.args.runs, "machine": ctx.machine, "benchmarks": ctx.result,
              "goals": ctx.goals, "profiles": ctx.profiles}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    m = ctx.machine
    lines = ["# weir benchmark report", "",
             f"Generated {started} by `scripts/bench{' --quick' if ctx.args.quick else ''}`"
             f" ({ctx.args.runs} runs per figure). Machine: {m['nproc']} cores, {m['cpu']}, "
             f"Linux {m['kernel']}, load average at start {m['load_avg_at_start']}.", "",
             "The machine is shared and noisy: compare ratios to the baseline measured in the "
             "same run, not absolute figures between reports.", "", "## Goals", "",
             "| goal | measured | target | met |", "|---|---|---|---|"]
    for g in ctx.goals:
        met = {True: "met", False: "**not met**", None: "not measured"}[g["met"]]
        lines.append(f"| {g['goal']} | {fmt(g['measured'])} {g['unit']} | {fmt(g['target'])} | "
                     f"{met}" + (f" ({g['ratio_to_target']:.3g}x of target)"
                                 if g["ratio_to_target"] else "") + " |")
    lines += ["", "Not measured yet (issue 10): FlatBuffers input for core; allocations per "
              "reading of the whole `weir replay` (the Engine's are counted); memory over a "
              "simulated 6 h offline period with a 1M-reading backlog; the 1M-row outbox and "
              "1M-row recovery of the issue (full runs use 200k rows, quick runs 20k); a bare "
              "Paho publisher as the uplink baseline (mosquitto_pub -l stands in); the aarch64 "
              "size unless build/release-aarch64 exists."]
    for name, b in ctx.result.items():
        lines += ["", f"## {name}", "",
                  "| case | unit | min | median | max | baseline median | ratio | extra |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in b["cases"]:
            v, bl = c["value"], c.get("baseline")
            extra = ", ".join(f"{k}={c[k]}" for k in ("allocs_per_reading", "peak_rss_kb",
                                                       "readings", "rows") if k in c)
            lines.append(f"| {c['name']} | {c['unit']} | {fmt(v['min'])} | {fmt(v['median'])} | "
                         f"{fmt(v['max'])} | {fmt(bl['median']) if bl else '-'} | "
                         f"{c.get('ratio', '-')} | {extra} |")
        bases = sorted({c['baseline']['name'] for c in b["cases"] if c.get("baseline")})
        for bn in bases:
            lines.append(f"\nBaseline: {bn}.")
        for n in b.get("notes", []):
            lines += ["", n]
    if ctx.profiles or ctx.profile:
        lines += ["", "## Where the time goes"]
        for pr in ctx.profiles:
            lines += ["", pr]
        if ctx.profile:
            lines += ["", ctx.profile]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny inputs, for the CI test")
    ap.add_argument("--only", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--bench-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--profile-note", default=os.path.join(HERE, "profile.md"),
                    help="markdown appended to the report as the profile summary")
    args = ap.parse_args()
    # The peer needs npm and a minute of Node-RED start-ups: full runs, or when named.
    only = [x for x in args.only.split(",") if x] or (
        [x for x in ALL if x != "peer"] if args.quick else ALL)
    for x in only:
        if x not in ALL:
            ap.error(f"unknown benchmark {x}; known: {', '.join(ALL)}")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tmp = tempfile.mkdtemp(prefix="weir-bench-")
    ctx = Ctx(args, tmp)
    ctx.machine = machine()
    ctx.profile = ""
    if os.path.exists(args.profile_note):
        with open(args.profile_note) as f:
            ctx.profile = f.read().strip()
    funcs = {"core": bench_core, "ingest": bench_ingest, "uplink": bench_uplink,
             "peer": bench_peer,
             "reload": bench_reload,
             "footprint": bench_footprint}
    failed = []
    try:
        for name in only:
            if name not in funcs:
                log(f"{name}: not implemented yet, skipped")
                ctx.result[name] = {"cases": [], "notes": ["Not implemented yet."]}
                continue
            log(f"{name}: start")
            try:
                funcs[name](ctx)
            except Exception as e:  # one broken benchmark must not lose the others' figures
                log(f"{name}: failed: {e}")
                failed.append(name)
                ctx.result[name] = {"cases": ctx.result.get(name, {}).get("cases", []),
                                    "notes": [f"Failed: {e}"]}
        write_report(ctx, args.out_dir, started)
        log(f"wrote {args.out_dir}/report.md and report.json")
    finally:
        if os.environ.get("WEIR_BENCH_KEEP"):
            log(f"kept {tmp} (WEIR_BENCH_KEEP)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
