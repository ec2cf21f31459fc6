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

ALL = ["core", "ingest", "uplink", "offline", "sink", "footprint", "peer"]  # uplink also measures recovery


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


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmHWM, VmRSS, ...), None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def vm_hwm_kb(pid):
    return proc_status_kb(pid, "VmHWM")


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
            if w == "tumbling":
                json_vals = vals
        # The same readings as FlatBuffers batches (one reading per message, as the JSON
        # lines), tumbling only; the baseline is the JSON replay just measured.
        fb_gen = os.path.join(a.bench_dir, "weir_fb_input")
        if os.path.exists(fb_gen):
            fb_inp = os.path.join(ctx.tmp, f"replay-{keys}-fb.jsonl")
            subprocess.run([fb_gen, str(n), str(keys), fb_inp], check=True)
            cfg = os.path.join(ctx.tmp, "core-fb.json")
            fb_cfg = pipeline_config(WINDOWS["tumbling"])
            fb_cfg["source"]["topics"] = [{"topic": "bench/{device}/batch",
                                           "format": "flatbuffers"}]
            with open(cfg, "w") as f:
                json.dump(fb_cfg, f)
            out = os.path.join(ctx.tmp, "replay-out.jsonl")
            vals = []
            for _ in range(a.runs):
                _dt, cpu, _p = timed([weir, "replay", cfg, "--input", fb_inp, "--output", out,
                                      "--drain"])
                vals.append(n / cpu)
            c = case(f"replay flatbuffers tumbling @{keys} keys", "readings/s/core", vals,
                     "weir replay of the same readings as JSON lines (tumbling, same keys, same run)", json_vals,
                     extra={"readings": n})
            log(f"core: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
            cases.append(c)
    notes.append("Replay figures are readings divided by the CPU time (user + sys, from "
                 "getrusage) of the whole `weir replay --drain` process over a generated "
                 "JSON-lines file (one reading per line, devices round-robin, one reading per "
                 "device per second of event time, a silent minute after every minute), output "
                 "written to a temp file; the same CPU-time rate without profile noise from "
                 "other processes is why these are per core. The "
                 "baseline reads the same file and parses every line with simdjson, touching the "
                 "fields a reading needs, and nothing else. FlatBuffers rows replay the same "
                 "readings (same devices, timestamps and values, one reading per message) as "
                 "`weir.fb.Batch` payloads (schemas/reading.fbs, written by "
                 "bench/fb_input.cc), which replay input carries base64-encoded in "
                 "`payload_b64` inside a JSON line (DESIGN 8): the figure includes that line's "
                 "JSON parse and the base64 decode, which a live MQTT payload would not need. "
                 "Its ratio is to the JSON replay at the same keys in the same run.")
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
    # Allocations of the whole `weir replay` process (LD_PRELOAD counter): the difference
    # between n/2 and n readings at 1k keys (windows open and close in both), so start-up
    # and the per-key working set cancel out and what is left is per reading.
    shim = os.path.join(a.bench_dir, "weir_alloc_count.so")
    if os.path.exists(shim):
        keys, half = 1000, n // 2
        counts = {}
        for fmt_name in ("json", "flatbuffers"):
            for m in (half, n):
                inp = os.path.join(ctx.tmp, f"alloc-{fmt_name}-{m}.jsonl")
                cfg_path = os.path.join(ctx.tmp, f"alloc-{fmt_name}.json")
                c = pipeline_config(WINDOWS["tumbling"])
                if fmt_name == "json":
                    write_replay_input(inp, m, keys)
                else:
                    fb_gen = os.path.join(a.bench_dir, "weir_fb_input")
                    if not os.path.exists(fb_gen):
                        continue
                    subprocess.run([fb_gen, str(m), str(keys), inp], check=True)
                    c["source"]["topics"] = [{"topic": "bench/{device}/batch",
                                              "format": "flatbuffers"}]
                with open(cfg_path, "w") as f:
                    json.dump(c, f)
                cnt = os.path.join(ctx.tmp, "alloc.count")
                timed([weir, "replay", cfg_path, "--input", inp, "--output",
                       os.path.join(ctx.tmp, "replay-out.jsonl"), "--drain"],
                      env=dict(os.environ, LD_PRELOAD=shim, WEIR_ALLOC_COUNT_FILE=cnt))
                with open(cnt) as f:
                    counts[(fmt_name, m)] = int(f.read())
                os.unlink(inp)
            if (fmt_name, n) in counts:
                per = (counts[(fmt_name, n)] - counts[(fmt_name, half)]) / (n - half)
                cases.append({"name": f"heap allocations per reading, whole `weir replay` "
                                      f"process, {fmt_name} tumbling @{keys} keys",
                              "unit": "allocs/reading", "value": stats([round(per, 4)]),
                              "readings": n, "allocs_total": counts[(fmt_name, n)]})
                log(f"core: {cases[-1]['name']}: {per:.4f}")
        notes.append("Allocations per reading of the whole `weir replay` process are counted "
                     "by an LD_PRELOAD shim (bench/alloc_count.c: malloc, calloc, realloc and "
                     "the aligned ones; operator new goes through malloc) as the difference "
                     "between runs over n/2 and n readings at 1k keys, so start-up and the "
                     "per-key working set cancel out; `allocs_total` is the whole run's.")
    dec = os.path.join(a.bench_dir, "weir_decoder_bench")
    if os.path.exists(dec):
        reps = 1 if a.smoke else a.runs
        _dt, _cpu, p = timed([dec, f"--benchmark_repetitions={reps}", "--benchmark_format=json",
                              f"--benchmark_min_time={0.05 if a.smoke else 0.5}"])
        per = {}
        for b in json.loads(p.stdout).get("benchmarks", []):
            if b.get("run_type") == "iteration":
                per.setdefault(b["run_name"], []).append(b["items_per_second"])
        for batch in (1, 10):
            js = per.get(f"BM_Decode/format:0/batch:{batch}")
            fb = per.get(f"BM_Decode/format:1/batch:{batch}")
            if not js or not fb:
                continue
            cases.append(case(f"decoder json, {batch} reading(s) per message", "readings/s/core",
                              js))
            c = case(f"decoder flatbuffers, {batch} reading(s) per message", "readings/s/core",
                     fb, f"decoder json, {batch} reading(s) per message", js)
            log(f"core: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
            cases.append(c)
        notes.append("Decoder figures are Google Benchmark runs of MessageDecoder::Decode "
                     "(ingest/decoder.h, bench/decoder_bench.cc) on payloads as they arrive "
                     "from MQTT, 10k devices, one thread, CPU time: the same readings as JSON "
                     "(one object, or an array of 10) and as a FlatBuffers Batch of 1 or 10 "
                     "samples, verified before reading. The FlatBuffers ratio is to JSON at "
                     "the same batch size in the same run.")
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


BENCH_DIR = os.path.join(ROOT, "build", "bench")  # set from --bench-dir


def publish_lines(broker, topic, lines_path):
    """Queues every line as a QoS 1 message and returns once the broker has PUBACKed all.
    mosquitto_pub -l does not wait: at EOF it disconnects with messages still unsent (of
    300k lines about 38k reached the broker), so the bare Paho publisher does this."""
    paho = os.path.join(BENCH_DIR, "weir_paho_pub")
    if os.path.exists(paho):
        subprocess.run([paho, broker.uri, f"bench-queue-{os.getpid()}", topic, lines_path],
                       check=True, stdout=subprocess.DEVNULL)
        return
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
        "session and stops; N readings are published at QoS 1 (bench/paho_pub.cc, which "
        "returns once the broker has PUBACKed every one; one topic, device from the "
        "payload) while it is away; then `weir run` starts and the time from "
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

UPLINK_KEYS = 100


def start_broker_on(directory, port):
    b = Broker.__new__(Broker)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "broker.py"), "start",
                          "--dir", directory, "--port", str(port)],
                         check=True, capture_output=True, text=True)
    b.port, b.pid = map(int, out.stdout.split())
    b.dir, b.uri = directory, f"tcp://127.0.0.1:{b.port}"
    return b


def make_outbox(ctx, n_readings, tag):
    """An outbox of about n_readings - UPLINK_KEYS undelivered results in a database weir
    itself wrote: `weir replay --db` over readings that each close a 1 s tumbling window of
    their device (the same config `weir run` then uses), then `weir run` opens it with its
    uplink broker down and is SIGKILLed once /metrics shows the rows. Returns what flush()
    needs; copy_outbox() gives each run its own copy of the database and its batch_max."""
    a = ctx.args
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix=f"uplink-{tag}-")
    src = Broker(tempfile.mkdtemp(dir=d, prefix="src-"))
    up_port, mport = free_port(), free_port()
    db = os.path.join(d, "weir.db")
    cfg = pipeline_config({"type": "tumbling", "size": "1s"}, src.uri, {
        # 1M results with their journal pass the default 256MB bound (drop_oldest would
        # drop rows): a gateway meant to hold that much backlog is given room for it.
        "storage": {"path": db, "max_bytes": "2GB"},
        "ingest": {"durability": "batch"},
        "uplink": {"broker": f"tcp://127.0.0.1:{up_port}", "topic": "up/{pipeline}"},
        "metrics": {"listen": f"127.0.0.1:{mport}"}})
    cfg["source"]["topics"] = [{"topic": "bench/data", "format": "json"}]
    cfg["source"]["device"] = "/d"
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    inp = os.path.join(d, "input.jsonl")
    with open(inp, "w") as f:
        for i, line in enumerate(ingest_payloads(n_readings, UPLINK_KEYS)):
            ts = 1700000000000 + (i // UPLINK_KEYS) * 1000
            f.write('{"t":%d,"topic":"bench/data","payload":%s}\n' % (ts, line))
    weir = os.path.join(a.bin_dir, "weir")
    results = os.path.join(d, "results.jsonl")
    t0 = time.perf_counter()
    timed([weir, "replay", path, "--input", inp, "--output", results, "--db", db])
    fill_s = time.perf_counter() - t0
    os.unlink(inp)
    logf = open(os.path.join(d, "weir.log"), "a")
    p = subprocess.Popen([weir, "run", path], stdout=logf, stderr=subprocess.STDOUT)
    try:
        expected = n_readings - UPLINK_KEYS
        wait_for("weir run sees the outbox",
                 lambda: (metrics(mport) or {}).get("weir_outbox_rows", 0) >= expected, 300, 0.05)
        rows = int(metrics(mport)["weir_outbox_rows"])
    finally:
        stop_proc(p, signal.SIGKILL)
    src.stop()
    log(f"uplink: outbox of {rows} rows written by weir replay --db "
        f"in {fill_s:.1f} s, opened by weir run and SIGKILLed")
    return {"dir": d, "config": path, "db": db, "up_port": up_port, "mport": mport,
            "rows": rows, "log": logf, "results": results, "fill_s": fill_s}


def copy_outbox(f, r, batch_max):
    """A copy of the SIGKILLed database (with its -wal) for one run, and its config with
    uplink.batch_max set (an uplink setting: the pipelines and their state are the same)."""
    d = os.path.join(f["dir"], f"run{r}-b{batch_max}")
    os.makedirs(d, exist_ok=True)
    db = os.path.join(d, "weir.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f["db"] + suffix):
            shutil.copy(f["db"] + suffix, db + suffix)
    with open(f["config"]) as fh:
        cfg = json.load(fh)
    cfg["storage"]["path"] = db
    cfg["uplink"]["batch_max"] = batch_max
    path = os.path.join(d, "config.json")
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    return dict(f, dir=d, config=path, db=db)


def count_upstream(sub, until, deadline_s):
    """Reads `mosquitto_sub -v` lines (bytes) of up/# and counts results (an array per
    message when batch_max > 1; "id": occurs once per result) until `until` were seen.
    Returns (perf time of the first message, results in it, results seen, perf time of the
    last)."""
    t_first, first_rows, got = None, 0, 0
    deadline = time.monotonic() + deadline_s
    while got < until:
        line = sub.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"subscriber saw {got} of {until} results")
        if not line.startswith(b"up/"):
            continue
        k = line.count(b'"id":')
        if t_first is None:
            t_first, first_rows = time.perf_counter(), k
        got += k
    return t_first, first_rows, got, time.perf_counter()


def ready_subscriber(port):
    """mosquitto_sub on up/# that is known to be subscribed (it saw a probe)."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "up/#",
                            "-t", "bench/probe", "-v"], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t",
                        "bench/probe", "-m", "x"], check=True)
        r, _, _ = select.select([sub.stdout], [], [], 0.1)
        if r and sub.stdout.readline().startswith(b"bench/probe"):
            return sub
        if time.monotonic() > deadline:
            sub.kill()
            raise TimeoutError("uplink subscriber not ready")


def perf_report_rows(perf_data, top=12):
    rep = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "--sort", "symbol",
                          "--stdio", "-g", "none"], capture_output=True, text=True)
    rows = []
    for line in rep.stdout.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+\[[.k]\]\s+(.*?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), short_symbol(m.group(2))))
    return rows[:top]


def flush(ctx, f, measure_rows, perf_data=None):
    """Starts the gateway and uplink brokers and a subscriber, then weir on the SIGKILLed
    database: time from start to the first message upstream (recovery) and results/s of the
    flush over the first measure_rows results (first to last message seen)."""
    src = start_broker_on(os.path.join(f["dir"], "src"), json.load(open(f["config"]))[
        "source"]["broker"].rsplit(":", 1)[1])
    up = start_broker_on(os.path.join(f["dir"], "up"), f["up_port"])
    sub = ready_subscriber(up.port)
    weir = None
    try:
        t0 = time.perf_counter()
        weir = subprocess.Popen([os.path.join(ctx.args.bin_dir, "weir"), "run", f["config"]],
                                stdout=f["log"], stderr=subprocess.STDOUT)
        perf = None
        if perf_data:
            perf = subprocess.Popen(["perf", "record", "-F", "1999", "-o", perf_data, "-p",
                                     str(weir.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        t_first, first_rows, got, t_last = count_upstream(sub, measure_rows, 900)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        rate = (got - first_rows) / (t_last - t_first) if t_last > t_first else None
        return t_first - t0, rate, got
    finally:
        if weir:
            stop_proc(weir)
        sub.kill()
        sub.wait()
        up.stop()
        src.stop()


def pub_baseline(ctx, results_path, rows):
    """Bare Paho C++ publisher (bench/paho_pub.cc): the first `rows` results weir would
    send, one per message, QoS 1, weir's window, to a broker of the same kind."""
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix="pubbase-")
    lines = os.path.join(d, "lines.jsonl")
    with open(results_path) as src, open(lines, "w") as dst:
        for i, line in enumerate(src):
            if i >= rows:
                break
            dst.write(line)
    b = Broker(os.path.join(d, "b"))
    try:
        _dt, _cpu, p = timed([os.path.join(ctx.args.bench_dir, "weir_paho_pub"), b.uri,
                              "bench-pub", "up/p", lines])
        r = json.loads(p.stdout)
        return r["messages"] / r["seconds"]
    finally:
        b.stop()


def bench_uplink(ctx):
    a = ctx.args
    # The 1M rows in full runs. batch_max 1 sends about 5k results/s, so its rate is
    # taken over the first 100k results of the 1M pending (the baseline sends as many).
    n = 3000 if a.smoke else (50000 if a.quick else 1000000)
    window1 = min(n, 100000)
    cases, rec_cases = [], []
    results = {}
    f = make_outbox(ctx, n, "fill")
    for batch in [1, 100]:
        measure = min(window1, f["rows"]) if batch == 1 else f["rows"]
        vals, firsts = [], []
        for r in range(a.runs):
            run = copy_outbox(f, r, batch)
            try:
                first, rate, got = flush(ctx, run, measure)
            finally:
                shutil.rmtree(run["dir"], ignore_errors=True)  # a 1M-row copy is ~300 MB
            vals.append(rate)
            firsts.append(first)
            log(f"uplink: batch_max {batch} run {r}: first publish {first:.3f} s, "
                f"{rate:.0f} results/s over {got}")
        results[batch] = (vals, firsts, f["rows"], measure)
    base = [pub_baseline(ctx, f["results"], window1) for _ in range(a.runs)]
    bname = ("bare Paho C++ publisher (bench/paho_pub.cc): the same results, one per message, "
             f"QoS 1, weir's in-flight window, {window1} messages")
    for batch in [1, 100]:
        vals, firsts, rows, measure = results[batch]
        c = case(f"uplink flush batch_max {batch}, {rows} rows pending"
                 + (f" (rate over the first {measure})" if measure < rows else ""),
                 "results/s", vals, bname, base,
                 extra={"rows": rows, "fill_s": round(f["fill_s"], 1)})
        log(f"uplink: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
        cases.append(c)
        rec_cases.append(case(f"start to first publish after SIGKILL, {rows} rows pending, "
                              f"batch_max {batch}", "s", firsts, higher_is_better=False,
                              extra={"rows": rows}))
    size_note = ("" if n >= 1000000 else
                 f" This was a {'smoke' if a.smoke else 'quick'} run: {n} readings, not the "
                 "issue's 1M (full runs use 1M).")
    ctx.result["uplink"] = {"cases": cases, "notes": [
        f"The outbox: {n} readings, each closing a 1 s tumbling window of one of "
        f"{UPLINK_KEYS} devices, go through `weir replay --db` with the same config `weir run` "
        "uses, so the database (outbox rows, operator state, journal) is one weir wrote; "
        "then `weir run` opens it with its uplink broker down and is SIGKILLed once /metrics "
        "shows the rows (fill_s: the replay's wall time). Each run flushes its own copy: the "
        "gateway and uplink brokers are started, a mosquitto_sub on the uplink broker is "
        "subscribed, and `weir run` starts; the rate is results seen by the subscriber "
        "from its first to its last message, not counting the first message's."
        + size_note,
        "Baseline: the bare Paho publisher sends the first results of the same outbox, one "
        "per message at QoS 1, with weir's window (64 in flight, capped by the broker's "
        "Receive Maximum, 20 for Mosquitto, as weir caps it), timed from its first publish "
        "to its last PUBACK. batch_max 100 beats it because weir sends 100 results per "
        "message."]}
    ctx.result["recovery"] = {"cases": rec_cases, "notes": [
        "Same runs as uplink: wall time from starting `weir run` on the SIGKILLed database to "
        "the first message the subscriber on the uplink broker receives, gateway broker up."
        + size_note]}
    if not a.smoke and cases[1]["value"]["median"] < 100e3 and shutil.which("perf"):
        run = copy_outbox(f, "prof", 100)
        try:
            perf_data = os.path.join(ctx.tmp, "uplink.perf")
            _first, rate, got = flush(ctx, run, run["rows"], perf_data)
            ctx.profiles.append(profile_md(
                f"`weir run` flushing {got} results, batch_max 100 ({fmt(rate)} results/s "
                "under perf)", perf_report_rows(perf_data)))
        finally:
            shutil.rmtree(run["dir"], ignore_errors=True)
    ctx.goal("uplink.batched", f">= 100k results/s flushing a {n}-row outbox, batch_max 100",
             cases[1]["value"]["median"], 100e3, "results/s")
    ctx.goal("recovery", f"start to first publish < 1 s with {results[100][2]} undelivered "
             "rows after SIGKILL" + ("" if n >= 1000000 else " (the issue asks 1M)"),
             rec_cases[1]["value"]["median"], 1.0, "s", higher_is_better=False)


# ---------------------------------------------------------------- sink into PostgreSQL

def replay_results(ctx, n, path):
    """n real weir results (JSON lines, as weir publishes them) from `weir replay` over
    readings that each close a 1 s tumbling window of one of 100 devices."""
    keys = 100
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix="results-")
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump(pipeline_config({"type": "tumbling", "size": "1s"}), f)
    inp = os.path.join(d, "input.jsonl")
    with open(inp, "w") as f:
        for i in range(n + keys):
            ts = 1700000000000 + (i // keys) * 1000
            f.write('{"t":%d,"topic":"bench/dev-%d/data","payload":{"ts":%d,"temp":%.1f}}\n'
                    % (ts, i % keys, ts, 20 + (i % 97) * 0.1))
    timed([os.path.join(ctx.args.bin_dir, "weir"), "replay", cfg, "--input", inp, "--output",
           path])
    with open(path) as f:
        lines = [l for l in f if l.strip()][:n]
    with open(path, "w") as f:
        f.writelines(lines)
    return lines


class Postgres:
    """A private PostgreSQL cluster like tests/postgres.py's, but with fsync on (its
    default): a benchmark of commits should pay for them."""

    def __init__(self, directory):
        import postgres as pg  # tests/postgres.py
        self.pg = pg
        self.dir = directory
        data, self.sock = os.path.join(directory, "data"), os.path.join(directory, "sock")
        os.makedirs(self.sock, exist_ok=True)
        if os.getuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            for path in (directory, self.sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        b = pg.bindir()
        subprocess.run(pg.as_owner([f"{b}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                                    "--no-sync"]), check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=''"
        subprocess.run(pg.as_owner([f"{b}/pg_ctl", "-D", data, "-o", opts, "-l",
                                    os.path.join(directory, "server.log"), "-w", "-t", "30",
                                    "start"]), check=True, stdout=subprocess.DEVNULL)

    def uri(self, db):
        return f"postgresql:///{db}?host={self.sock}&port={self.port}&user=postgres"

    def psql(self, db, *args, **kw):
        return subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", self.uri(db)] +
                              list(args), check=True, stdout=subprocess.DEVNULL, **kw)

    def create_db(self, name):
        self.psql("postgres", "-c", f"CREATE DATABASE {name}")

    def stop(self):
        self.pg.stop(self.dir)


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def insert_baseline(pg, db, lines, per_tx, d):
    """Plain multi-row INSERT of the same results (id, rev, jsonb) into a table without a
    key, per_tx rows per transaction, through psql; rows/s of psql's wall time."""
    pg.psql(db, "-c", "CREATE TABLE plain(id text, rev integer, result jsonb)")
    path = os.path.join(d, f"insert-{db}.sql")
    with open(path, "w") as f:
        for i in range(0, len(lines), per_tx):
            rows = []
            for line in lines[i:i + per_tx]:
                r = json.loads(line)
                rows.append(f"({sql_literal(r['id'])},{int(r.get('rev', 0))},"
                            f"{sql_literal(line.strip())}::jsonb)")
            f.write("BEGIN;\nINSERT INTO plain(id, rev, result) VALUES\n" + ",\n".join(rows) +
                    ";\nCOMMIT;\n")
    t0 = time.perf_counter()
    pg.psql(db, "-f", path)
    return len(lines) / (time.perf_counter() - t0)


def sink_drain(ctx, pg, db, broker, lines, batch, tag, d):
    """Drain mode for weir-sink: its persistent session is created, the results are queued
    as messages of `batch` results while it is away, then it starts and is timed from its
    first to its last upsert line on stdout (it prints one per committed result)."""
    sink = os.path.join(ctx.args.bin_dir, "weir-sink")
    args = [sink, "--broker", broker.uri, "--topic", "up/#", "--db", pg.uri(db), "--client-id",
            f"bench-sink-{tag}"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            r, _, _ = select.select([p.stderr], [], [], 0.5)
            if r and "subscribed" in p.stderr.readline():
                break
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError("weir-sink did not subscribe")
    finally:
        stop_proc(p)
    msgs = os.path.join(d, f"msgs-{tag}.txt")
    with open(msgs, "w") as f:
        for i in range(0, len(lines), batch):
            chunk = [l.strip() for l in lines[i:i + batch]]
            f.write((chunk[0] if batch == 1 else "[" + ",".join(chunk) + "]") + "\n")
    publish_lines(broker, "up/p", msgs)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        t_first, got = None, 0
        deadline = time.monotonic() + 900
        while got < len(lines):
            line = p.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"weir-sink stored {got} of {len(lines)} results")
            if line.startswith(b"upsert "):
                got += 1
                if t_first is None:
                    t_first = time.perf_counter()
                    first_batch = min(batch, len(lines))
        t_last = time.perf_counter()
    finally:
        stop_proc(p)
    # Results after the first message's, over the time between the first and last upsert.
    return (got - first_batch) / (t_last - t_first) if t_last > t_first else None


def bench_sink(ctx):
    a = ctx.args
    n100 = 2000 if a.smoke else (20000 if a.quick else 100000)
    n1 = 500 if a.smoke else (2000 if a.quick else 5000)
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix="sink-")
    lines = replay_results(ctx, n100, os.path.join(d, "results.jsonl"))
    # Its own top-level temp dir: as root the cluster belongs to `postgres`, which cannot
    # enter the run's private (0700) temp dir.
    pg = Postgres(tempfile.mkdtemp(prefix="weir-bench-pg-"))
    vals = {1: [], 100: []}
    base, base1 = [], []
    try:
        for r in range(a.runs):
            broker = Broker(tempfile.mkdtemp(dir=d, prefix="broker-"))
            try:
                pg.create_db(f"plain{r}")
                base.append(insert_baseline(pg, f"plain{r}", lines, 100, d))
                pg.create_db(f"plainone{r}")
                base1.append(insert_baseline(pg, f"plainone{r}", lines[:n1], 1, d))
                for batch, rows in ((1, lines[:n1]), (100, lines)):
                    db = f"sink{batch}r{r}"
                    pg.create_db(db)
                    v = sink_drain(ctx, pg, db, broker, rows, batch, f"b{batch}r{r}", d)
                    vals[batch].append(v)
                    log(f"sink: batch {batch} run {r}: {v:.0f} results/s; plain INSERT "
                        f"{base[-1]:.0f} rows/s (100 per tx), {base1[-1]:.0f} (1 per tx)")
            finally:
                broker.stop()
    finally:
        pg.stop()
    bname = "plain multi-row INSERT of the same results, 100 rows per transaction (psql)"
    cases = [
        case(f"weir-sink into PostgreSQL, 1 result per message, {n1} results", "results/s",
             vals[1], bname, base,
             extra={"rows": n1, "insert_1_per_tx_rows_per_s": round(statistics.median(base1))}),
        case(f"weir-sink into PostgreSQL, 100 results per message, {n100} results",
             "results/s", vals[100], bname, base, extra={"rows": n100}),
    ]
    for c in cases:
        log(f"sink: {c['name']}: median {c['value']['median']:.0f}/s ratio {c['ratio']}")
    ctx.result["sink"] = {"cases": cases, "notes": [
        "A private PostgreSQL 15 cluster (initdb into the run's temp dir, Unix socket only, "
        "fsync on), a fresh database per measurement. The results are real weir results "
        "(`weir replay` output, about 200 bytes each). weir-sink (tools/sink) is measured in "
        "drain mode: its persistent session is created, the results are queued at QoS 1 as "
        "messages of 1 result or arrays of 100 (what weir's uplink sends at batch_max 1 and "
        "100) while it is away, then it starts; the rate is upserts it reports on stdout "
        "from the first to the last (one transaction per message, committed before the "
        "PUBACK). Baseline in the same run and cluster: psql running a plain multi-row "
        "INSERT of the same rows into a table without a key, 100 rows per transaction; "
        "`insert_1_per_tx_rows_per_s` is the same INSERT one row per transaction, the "
        "floor for one result per message."]}


# ---------------------------------------------------------------- memory over a 6 h offline period

def vm_rss_kb(pid):
    return proc_status_kb(pid, "VmRSS")


def rss_split_kb(pid):
    """RssAnon (heap, stacks), RssFile (the binary and libraries paged in) and RssShmem."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(line.split()[1])
    except OSError:
        pass
    return out


def run_offline(ctx, devices, scale, lateness):
    """weir run while weir-sim devices go offline for 6 h of simulated time and then replay
    their backlog: RSS sampled over the whole run. Returns the case."""
    a = ctx.args
    period_s = 216  # 100 readings per device in 6 h: 1M readings of backlog at 10k devices
    d = tempfile.mkdtemp(dir=ctx.tmp, prefix="offline-")
    log(f"offline: {devices} devices, allowed_lateness {lateness or 0}, {scale}x")
    scenario = {
        "description": "every device offline for 6 h, then its backlog (bench)",
        "duration": "410m",
        "groups": [{"count": devices, "id": "dev-{n}", "topic": "bench/{device}/data",
                    "format": "json", "period": f"{period_s}s", "batch": 10,
                    "disconnects": [{"at": "40m", "for": "6h", "fraction": 1}],
                    "buffer": 150,
                    "fields": {"t": {"model": "sine", "mean": 21.5, "amplitude": 3,
                                     "period": "6h", "noise": 0.2}}}]}
    scen = os.path.join(d, "scenario.json")
    with open(scen, "w") as f:
        json.dump(scenario, f)
    src = Broker(os.path.join(d, "src"))
    up = Broker(os.path.join(d, "up"))
    mport = free_port()
    cfg = pipeline_config(WINDOWS["tumbling"], src.uri, {
        "storage": {"path": os.path.join(d, "weir.db")},
        "ingest": {"durability": "batch"},
        "uplink": {"broker": up.uri, "topic": "up/{pipeline}"},
        "metrics": {"listen": f"127.0.0.1:{mport}"}})
    cfg["source"].update({"topics": [{"topic": "bench/{device}/data", "format": "json"}],
                          "timestamp": {"path": "/ts", "unit": "ms"}, "seq": "/seq",
                          "sent_at": "/sent_at", "fields": {"temp": "/t"}})
    if lateness:
        cfg["pipelines"][0]["event_time"] = {"allowed_lateness": lateness, "late": "update"}
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    weir = subprocess.Popen([os.path.join(a.bin_dir, "weir"), "run", path],
                            stdout=open(os.path.join(d, "weir.log"), "w"),
                            stderr=subprocess.STDOUT)
    samples = []  # (wall s since start, readings processed, RSS kB)
    try:
        wait_for("weir source connected",
                 lambda: (metrics(mport) or {}).get("weir_source_connected") == 1, 30)
        t0 = time.perf_counter()
        sim = subprocess.Popen([os.path.join(a.bin_dir, "weir-sim"), "--broker", src.uri,
                                "--scenario", scen, "--seed", "1", "--time-scale", str(scale),
                                "--start", "1700000000000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def sample():
            m = metrics(mport) or {}
            samples.append((round(time.perf_counter() - t0, 2),
                            int(m.get("weir_readings_total", 0)), vm_rss_kb(weir.pid)))
        while sim.poll() is None:
            sample()
            time.sleep(0.25)
        err = sim.stderr.read()
        m = re.search(r"published \d+ messages \((\d+) readings", err)
        if sim.returncode != 0 or not m:
            raise RuntimeError(f"weir-sim failed: {err[-300:]}")
        total = int(m.group(1))
        deadline = time.monotonic() + 900
        while samples[-1][1] < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"weir processed {samples[-1][1]} of {total} readings")
            time.sleep(0.25)
            sample()
        for _ in range(8):  # two more seconds: closing windows, commits, uplink
            time.sleep(0.25)
            sample()
        peak_kb = vm_hwm_kb(weir.pid)
        split = rss_split_kb(weir.pid)
    finally:
        stop_proc(weir)
        src.stop()
        up.stop()
    # Readings processed before the devices reconnect (one message of 10 each, 36-40
    # minutes in); the rest is backlog and the minutes after it.
    reconnect_s = (40 + 360) * 60 / scale
    live = max((n for t, n, _kb in samples if t < reconnect_s), default=0)
    backlog = total - live

    def rss_at(frac):  # RSS when frac of all readings had been processed
        for _t, n, kb in samples:
            if n >= frac * total and kb:
                return kb / 1024
        return samples[-1][2] / 1024
    marks = {f: round(rss_at(f), 1) for f in (0.25, 0.5, 0.75, 1.0)}
    before = max((kb for _t, n, kb in samples if n <= live and kb), default=0) / 1024
    flat = marks[1.0] <= marks[0.25] * 1.10
    c = {"name": f"weir run, {devices} devices offline 6 h, {total} readings ({backlog} of "
                 f"backlog) replayed, allowed_lateness {lateness or '0 (default)'}",
         "unit": "MB", "value": stats([peak_kb / 1024]),
         "rss_mb_at_fraction_processed": marks, "rss_mb_before_backlog": round(before, 1),
         "flat": flat, "readings": total, "backlog": backlog, "devices": devices,
         "rss_mb_at_end": {k: round(v / 1024, 1) for k, v in split.items()},
         "samples": samples[::max(1, len(samples) // 60)]}
    log(f"offline: peak {peak_kb / 1024:.1f} MB, RSS at 25/50/75/100 %: {marks}, flat {flat}")
    return c


def bench_offline(ctx):
    """Peak RSS and whether it stays flat over a 6 h outage and its backlog: with the
    default allowed_lateness (the goal), and with 6 h (DESIGN's example), which keeps every
    window of the outage open for late updates, on a smaller fleet."""
    a = ctx.args
    devices = 100 if a.smoke else (1000 if a.quick else 10000)
    scale = 3600 if (a.smoke or a.quick) else 720
    c = run_offline(ctx, devices, scale, None)
    cases = [c]
    if not a.smoke:
        cases.append(run_offline(ctx, 1000, 3600, "6h"))
    period_s = 216
    ctx.result["offline"] = {"cases": cases, "notes": [
        f"weir-sim (tools/sim) devices sending one JSON message of 10 readings every "
        f"{period_s * 10} s (a reading every {period_s} s), with seq and sent_at; all "
        "go offline 40 minutes in (after their first message) for 6 h of simulated time "
        "(status `offline`), keep their readings (buffer 150), then reconnect and publish "
        "the backlog, oldest first, before new readings; the simulation runs "
        f"{scale}x faster than the wall clock, the backlog as fast as weir takes it. "
        "`weir run` (tumbling 1 m per device, durability batch, uplink to a live broker) "
        "runs throughout; its VmRSS is sampled every 0.25 s together with /metrics "
        "weir_readings_total. The value is the peak (VmHWM); "
        "`rss_mb_at_fraction_processed` is VmRSS when that fraction of all readings had "
        "been processed; flat means RSS after the whole backlog is within 10 % of RSS after "
        "its first quarter (memory does not grow with the backlog's length); "
        "`rss_mb_at_end` splits the last VmRSS into RssAnon (heap) and RssFile (binary and "
        "libraries, RelWithDebInfo build). The goal is judged on the first row (default "
        "allowed_lateness 0: watermarks are per device, so a device's own backlog is not "
        "late). The second row, allowed_lateness 6 h at 1000 devices, shows the cost of "
        "that setting: a window's state is kept until the key's watermark passes its end "
        "plus allowed_lateness (DESIGN 5), so the whole outage's windows stay in memory and "
        "RSS grows with the backlog by design."
        + ("" if devices >= 10000 else f" This was a {'smoke' if a.smoke else 'quick'} run: "
           f"{devices} devices and about {devices * 100} readings of backlog in the first "
           "row, not 10k and 1M (full runs).")]}
    flat, backlog, peak = c["flat"], c["backlog"], c["value"]["max"]
    ctx.goal("memory.offline", f"peak RSS <= 12 MB and flat over a 6 h offline period with a "
             f"{backlog}-reading backlog replayed ({devices} keys; flat: "
             f"{'yes' if flat else 'no'})", peak, 12.0, "MB", higher_is_better=False)
    if not flat:
        ctx.goals[-1]["met"] = False


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
    aarch64 = os.path.join(ROOT, "build", "release-aarch64", "bin", "weir")
    cross_note = None
    if not os.path.exists(aarch64) and not a.smoke:
        if a.quick and "footprint" not in a.only.split(","):
            cross_note = ("No aarch64 size: build/release-aarch64 does not exist and quick runs "
                          "do not build it. `scripts/cross aarch64 --release-only` builds it "
                          "(minutes; `scripts/bench --only footprint` runs it too).")
        else:
            # The stripped MinSizeRel-like release build scripts/cross makes (WEIR_MINSIZE).
            log("footprint: building build/release-aarch64 with scripts/cross aarch64 "
                "--release-only (minutes)")
            logpath = os.path.join(ROOT, "build", "bench-cross-aarch64.log")
            with open(logpath, "w") as lf:
                rc = subprocess.run([os.path.join(ROOT, "scripts", "cross"), "aarch64",
                                     "--release-only"], stdout=lf, stderr=subprocess.STDOUT,
                                    cwd=ROOT).returncode
            if rc != 0 or not os.path.exists(aarch64):
                cross_note = (f"No aarch64 size: `scripts/cross aarch64 --release-only` failed "
                              f"(exit {rc}; log in {logpath}).")
    for label, path in [("amd64", os.path.join(a.bin_dir, "weir")),
                        ("aarch64", aarch64)]:
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
        "Size of a stripped copy of the built binary: build/bin/weir is the RelWithDebInfo "
        "host build (what the benchmarks run); build/release-aarch64/bin/weir is the release "
        "build `scripts/cross aarch64 --release-only` makes (Release, WEIR_MINSIZE, "
        "cross-compiled for the gateway), built by this benchmark when it is missing."
        + (" " + cross_note if cross_note else ""),
        "Peak RSS is VmHWM from /proc/PID/status of `weir run` (tumbling 1 m, durability "
        "batch) right after it drained a queued backlog in which every key sent readings. "
        "The 6 h offline period with a 1M-reading backlog is under offline."]}
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
        self.kept, self.kept_goals, self.kept_profiles = {}, [], []  # --merge
        self.only = []

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


def gaps(ctx):
    """What issue 10 (and 5, 8, 13) ask that this run did not measure, for the report."""
    r, a, out = ctx.result, ctx.args, []
    names = {c["name"] for b in r.values() for c in b.get("cases", [])}
    if "core" not in r:
        out.append("core (not run)")
    elif not any(n.startswith("replay flatbuffers") for n in names):
        out.append("FlatBuffers input for core")
    if not any("allocations per reading" in n for n in names):
        out.append("allocations per reading of the whole `weir replay`")
    if "ingest" not in r:
        out.append("end-to-end ingest (not run)")
    up = [c for c in r.get("uplink", {}).get("cases", [])]
    if not up:
        out.append("uplink flush and recovery (not run)")
    elif up[0].get("rows", 0) < 999000:
        out.append(f"the 1M-row outbox and 1M-row recovery (this run used {up[0]['rows']} rows; "
                   "full runs use 1M)")
    off = r.get("offline", {}).get("cases", [])
    if not off:
        out.append("memory over a 6 h offline period with a 1M-reading backlog (not run)")
    elif off[0].get("readings", 0) < 1000000:
        out.append(f"memory over the 6 h offline period at 10k devices and a 1M-reading backlog "
                   f"(this run: {off[0]['readings']} readings; full runs: 10k devices)")
    if "sink" not in r:
        out.append("weir-sink into PostgreSQL (not run)")
    if not any(g["id"] == "footprint.aarch64" and g["measured"] for g in ctx.goals):
        out.append("the stripped aarch64 size (build it with `scripts/cross aarch64 "
                   "--release-only`, or run `scripts/bench --only footprint`)")
    if "peer" not in r:
        out.append("the Node-RED peer (full runs or `--only peer`)")
    failed = [n for n, b in r.items() if any(x.startswith("Failed") for x in b.get("notes", []))]
    if failed:
        out.append("failed in this run: " + ", ".join(failed))
    return out


PROFILE_SECTIONS = [("Engine", "core"), ("`weir replay`", "core"),
                    ("`weir run` draining", "ingest"), ("`weir run` flushing", "uplink")]


def merge_previous(ctx, path):
    """--merge: sections, goals and profiles of an earlier report that this run does not
    measure are kept (each section says which run it came from)."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return
    ran = set(ctx.only) | ({"recovery"} if "uplink" in ctx.only else set())
    for name, b in old.get("benchmarks", {}).items():
        if name not in ran:
            b.setdefault("generated", old.get("generated"))
            ctx.kept[name] = b
    kept_goals = {"core": ("core.",), "ingest": ("ingest.",), "uplink": ("uplink.", "recovery"),
                  "offline": ("memory.offline",), "footprint": ("memory.10k", "footprint.")}
    for g in old.get("goals", []):
        owner = next((n for n, pre in kept_goals.items()
                      if any(g["id"].startswith(x) for x in pre)), None)
        if owner not in ran:
            ctx.kept_goals.append(g)
    for pr in old.get("profiles", []):
        owner = next((n for pre, n in PROFILE_SECTIONS if pr.startswith(pre)), None)
        if owner not in ran:
            ctx.kept_profiles.append(pr)


def write_report(ctx, out_dir, started):
    result = dict(ctx.kept)
    result.update(ctx.result)
    order = [n for n in ALL + ["recovery"] if n in result]
    order = [n for n in order if n != "recovery"]
    if "recovery" in result:
        order.insert(order.index("uplink") + 1 if "uplink" in order else len(order), "recovery")
    saved = ctx.result, ctx.goals, ctx.profiles
    ctx.result = {n: result[n] for n in order}
    ctx.goals = ctx.kept_goals + ctx.goals
    ctx.profiles = ctx.kept_profiles + ctx.profiles
    try:
        write_report_now(ctx, out_dir, started)
    finally:
        ctx.result, ctx.goals, ctx.profiles = saved


def write_report_now(ctx, out_dir, started):
    report = {"generated": started, "quick": ctx.args.quick, "smoke": ctx.args.smoke,
              "only": ctx.args.only, "full": ctx.args.full,
              "runs": ctx.args.runs, "machine": ctx.machine, "benchmarks": ctx.result,
              "goals": ctx.goals, "profiles": ctx.profiles}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    m = ctx.machine
    lines = ["# weir benchmark report", "",
             f"Generated {started} by `scripts/bench{' --quick' if ctx.args.quick else ''}"
             f"{' --full ' + ctx.args.full if ctx.args.full else ''}"
             f"{' --only ' + ctx.args.only if ctx.args.only else ''}`"
             f" ({ctx.args.runs} runs per figure). Machine: {m['nproc']} cores, {m['cpu']}, "
             f"Linux {m['kernel']}, load average at start {m['load_avg_at_start']}.", "",
             "The machine is shared and noisy: compare ratios to the baseline measured in the "
             "same run, not absolute figures between reports."
             + (" Sections kept from an earlier run by `--merge` say so under their heading."
                if any(b.get("generated") for b in ctx.result.values()) else ""),
             "", "## Goals", "",
             "| goal | measured | target | met |", "|---|---|---|---|"]
    for g in ctx.goals:
        met = {True: "met", False: "**not met**", None: "not measured"}[g["met"]]
        lines.append(f"| {g['goal']} | {fmt(g['measured'])} {g['unit']} | {fmt(g['target'])} | "
                     f"{met}" + (f" ({g['ratio_to_target']:.3g}x of target)"
                                 if g["ratio_to_target"] else "") + " |")
    missing = gaps(ctx)
    lines += ["", ("Not measured yet (issue 10): " + "; ".join(missing) + ".") if missing else
              "Everything issue 10 asks for was measured (see each section for the size it "
              "ran at)."]
    for name, b in ctx.result.items():
        lines += ["", f"## {name}", ""]
        if b.get("size"):
            lines += [f"Size: {b['size']} run" + (f", from the run of {b['generated']} (kept "
                                                 "by --merge)" if b.get("generated") else "")
                      + ".", ""]
        lines += ["| case | unit | min | median | max | baseline median | ratio | extra |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in b["cases"]:
            v, bl = c["value"], c.get("baseline")
            extra = ", ".join(f"{k}={c[k]}" for k in (
                "allocs_per_reading", "allocs_total", "peak_rss_kb", "readings", "rows",
                "fill_s",
                "insert_1_per_tx_rows_per_s", "rss_mb_before_backlog",
                "rss_mb_at_fraction_processed", "rss_mb_at_end", "flat") if k in c)
            lines.append(f"| {c['name']} | {c['unit']} | {fmt(v['min'])} | {fmt(v['median'])} | "
                         f"{fmt(v['max'])} | {fmt(bl['median']) if bl else '-'} | "
                         f"{c.get('ratio', '-')} | {extra} |")
        bases = sorted({c['baseline']['name'] for c in b["cases"] if c.get("baseline")})
        for bn in bases:
            lines.append(f"\nBaseline: {bn}.")
        for n in b.get("notes", []):
            lines += ["", n]
    missed = [g for g in ctx.goals if g["met"] is False]
    if ctx.profiles or ctx.profile or missed:
        lines += ["", "## Where the time goes", "",
                  "Goals missed in this run: " +
                  ("; ".join(f"{g['goal']} ({fmt(g['measured'])} {g['unit']})" for g in missed)
                   if missed else "none") + "."]
        if ctx.profile:
            lines += ["", "<!-- BEGIN bench/profile.md: notes per missed goal, kept by hand "
                      "(the lead updates that file; scripts/bench copies it here as is) -->",
                      "", ctx.profile, "", "<!-- END bench/profile.md -->"]
        if ctx.profiles:
            lines += ["", "### Profiles taken by this run (perf, regenerated every run)"]
        for pr in ctx.profiles:
            lines += ["", pr]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny inputs, for the CI test")
    ap.add_argument("--only", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite report.md from report.json and the profile note, run nothing "
                         "(after editing bench/profile.md)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the sections of the existing report this run does not measure")
    ap.add_argument("--full", default="",
                    help="with --quick: these benchmarks still run at full size")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--bench-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--profile-note", default=os.path.join(HERE, "profile.md"),
                    help="hand-kept notes per missed goal, copied into the report's "
                         "'Where the time goes' section")
    args = ap.parse_args()
    global BENCH_DIR
    BENCH_DIR = args.bench_dir
    # The peer needs npm and a minute of Node-RED start-ups: full runs, or when named.
    only = [x for x in args.only.split(",") if x] or (
        [x for x in ALL if x != "peer"] if args.quick else ALL)
    for x in only:
        if x not in ALL:
            ap.error(f"unknown benchmark {x}; known: {', '.join(ALL)}")
    if args.report_only:
        with open(os.path.join(args.out_dir, "report.json")) as f:
            old = json.load(f)
        for k in ("quick", "smoke", "runs"):
            setattr(args, k, old.get(k, getattr(args, k)))
        args.only, args.full = old.get("only", ""), old.get("full", "")
        ctx = Ctx(args, None)
        ctx.machine, ctx.result = old["machine"], old["benchmarks"]
        ctx.goals, ctx.profiles = old["goals"], old["profiles"]
        ctx.profile = ""
        if os.path.exists(args.profile_note):
            with open(args.profile_note) as f:
                ctx.profile = f.read().strip()
        write_report_now(ctx, args.out_dir, old["generated"])
        log(f"rewrote {args.out_dir}/report.md from report.json")
        return 0
    quick = args.quick
    full = [x for x in args.full.split(",") if x]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tmp = tempfile.mkdtemp(prefix="weir-bench-")
    ctx = Ctx(args, tmp)
    ctx.machine = machine()
    ctx.only = only
    if args.merge:
        merge_previous(ctx, os.path.join(args.out_dir, "report.json"))
    ctx.profile = ""
    if os.path.exists(args.profile_note):
        with open(args.profile_note) as f:
            ctx.profile = f.read().strip()
    funcs = {"core": bench_core, "ingest": bench_ingest, "uplink": bench_uplink,
             "offline": bench_offline, "sink": bench_sink, "peer": bench_peer,
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
            args.quick = quick and name not in full
            try:
                funcs[name](ctx)
            except Exception as e:  # one broken benchmark must not lose the others' figures
                log(f"{name}: failed: {e}")
                failed.append(name)
                ctx.result[name] = {"cases": ctx.result.get(name, {}).get("cases", []),
                                    "notes": [f"Failed: {e}"]}
            size = "smoke" if args.smoke else ("quick" if args.quick else "full")
            for sec in ([name, "recovery"] if name == "uplink" else [name]):
                if sec in ctx.result:
                    ctx.result[sec]["size"] = size
            args.quick = quick
            write_report(ctx, args.out_dir, started)  # a run stopped later keeps these
        log(f"wrote {args.out_dir}/report.md and report.json")
    finally:
        if os.environ.get("WEIR_BENCH_KEEP"):
            log(f"kept {tmp} (WEIR_BENCH_KEEP)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
