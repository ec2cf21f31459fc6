"""Pieces shared by the reload tests (DESIGN 6.5): configs, readings, replay
of what was published, and checks of the results weir sent upstream.

Every pipeline here keys by device, has no lateness and an idle timeout of an
hour, and the readings of a device arrive in timestamp order: results depend
on event time only, so `weir replay` over the same readings with any
increasing arrival times is what an uninterrupted `weir run` computes."""
import copy
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402

GATEWAY = "rl"
BASE_TS = 1_700_000_000_000
DEVICES = ["d1", "d2"]
# The recorder's own topic: a message there shows it has subscribed.
PROBE = "probe/capture"


def reading(device_index, i):
    return {"ts": BASE_TS + i * 1000, "seq": i + 1,
            "t": round(20 + (i % 7) * 0.5 + device_index * 0.25 + (i % 3) * 0.125, 3)}


def pipeline(name, size, aggregates=None):
    return {
        "name": name,
        "key": ["device"],
        "window": {"type": "tumbling", "size": size},
        "aggregates": aggregates or {"n": {"count": "*"}, "t_sum": {"sum": "temp"},
                                     "t_max": {"max": "temp"}},
        # Wall-clock idleness must not fire anything: results are event-time only.
        "event_time": {"idle_timeout": "1h"},
    }


def config(broker_uri, db_path, pipelines, batch_max=1):
    return {
        "gateway": GATEWAY,
        "source": {
            "broker": broker_uri,
            "topics": [{"topic": "sensors/{device}/telemetry"}],
            "seq": "/seq",
            "fields": {"temp": "/t"},
        },
        "pipelines": pipelines,
        "storage": {"path": db_path},
        "uplink": {"broker": broker_uri, "topic": "weir/{gateway}/{pipeline}",
                   "batch_max": batch_max},
    }


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


class Feed:
    """Publishes readings and remembers every message, in order, for replay."""

    def __init__(self, broker_uri):
        self.broker_uri = broker_uri
        self.messages = []  # (index of the message, device, payload)

    def publish(self, lo, hi, as_array=True):
        for d, device in enumerate(DEVICES):
            rs = [reading(d, i) for i in range(lo, hi)]
            topic = f"sensors/{device}/telemetry"
            if as_array:
                self.messages.append((device, rs))
                harness.publish_lines(self.broker_uri, topic, [json.dumps(rs)])
            else:
                for r in rs:
                    self.messages.append((device, r))
                harness.publish_lines(self.broker_uri, topic, [json.dumps(r) for r in rs])

    def mark(self):
        return len(self.messages)


def replay(weir, work, name, cfg, messages, drain):
    """Runs `weir replay` over `messages` under `cfg`; returns its results."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("uplink", None)
    cfg["storage"] = {"path": os.path.join(work, name + ".replay.db")}
    cfg_path = os.path.join(work, name + ".replay.json")
    in_path = os.path.join(work, name + ".in.jsonl")
    out_path = os.path.join(work, name + ".out.jsonl")
    write_json(cfg_path, cfg)
    with open(in_path, "w") as f:
        # Arrival times only have to increase (see the module comment).
        for n, (device, payload) in enumerate(messages):
            f.write(json.dumps({"t": BASE_TS + n, "topic": f"sensors/{device}/telemetry",
                                "payload": payload}) + "\n")
    args = [weir, "replay", cfg_path, "--input", in_path, "--output", out_path]
    if drain:
        args.append("--drain")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise harness.Failure(f"weir replay exited {proc.returncode}: {proc.stderr}")
    with open(out_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def final_results(results, rename=None):
    """{id: last revision} from a list of results; `rename` = (old, new)
    replaces the pipeline part of ids (replay cannot know the generation)."""
    out = {}
    for r in results:
        rid = r["id"]
        if rename:
            old, new = rename
            prefix = f"{GATEWAY}/{old}/"
            assert rid.startswith(prefix), rid
            rid = f"{GATEWAY}/{new}/" + rid[len(prefix):]
            r = dict(r, id=rid)
        if rid not in out or out[rid]["rev"] <= r["rev"]:
            out[rid] = r
    return out


def compare(what, expected, rows, id_prefix):
    """Problems between expected {id: result} and the sink's rows whose id
    starts with id_prefix (the sink keeps the highest revision per id)."""
    problems = []
    for rid, want in expected.items():
        if rid not in rows:
            problems.append(f"{what}: missing {rid}")
            continue
        rev, retracted, got = rows[rid]
        if rev != want["rev"] or retracted or got is None:
            problems.append(f"{what}: {rid}: rev {rev} retracted {retracted}, want {want['rev']}")
            continue
        for field in ("pipeline", "key", "start", "end", "count"):
            if got.get(field) != want.get(field):
                problems.append(f"{what}: {rid}: {field} {got.get(field)!r}, "
                                f"want {want.get(field)!r}")
        for name, value in want["values"].items():
            if not harness.close_enough(got["values"].get(name), value):
                problems.append(f"{what}: {rid}: {name} {got['values'].get(name)!r}, "
                                f"want {value!r}")
    for rid in rows:
        if rid.startswith(id_prefix) and rid not in expected:
            problems.append(f"{what}: unexpected result {rid}: {rows[rid]}")
    return problems


def wait_results(what, sink_db, checks, timeout_s=30):
    """Waits until every check (a function of the sink rows returning a list
    of problems) passes; prints the problems when the deadline passes."""
    def ok():
        rows = harness.sink_rows(sink_db)
        return all(not c(rows) for c in checks)
    try:
        harness.wait_for(what, ok, timeout_s)
    except harness.Failure:
        rows = harness.sink_rows(sink_db)
        for c in checks:
            for p in c(rows)[:20]:
                print(p)
        raise


def count_in_log(proc, fragment):
    return proc.log_text().count(fragment)


def wait_log_count(proc, fragment, n, timeout_s=20):
    def ok():
        if not proc.alive():
            raise harness.Failure(f"weir exited ({proc.proc.returncode}):\n"
                                  f"{proc.log_text()[-3000:]}")
        return count_in_log(proc, fragment) >= n
    harness.wait_for(f"{n} x {fragment!r} in {proc.log_path}", ok, timeout_s)


def processed(db_path, n_messages):
    """True when weir has journaled at least n_messages and processed and
    committed every one of them (the checkpoint covers the whole journal)."""
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            checkpoint = con.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
            newest = con.execute("SELECT max(seq) FROM journal").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return False
    checkpoint = checkpoint[0] if checkpoint else 0
    newest = newest[0] or 0
    return checkpoint >= n_messages and checkpoint >= newest


def wait_processed(db_path, n_messages, timeout_s=20):
    harness.wait_for(f"weir to process and commit {n_messages} messages",
                     lambda: processed(db_path, n_messages), timeout_s)


def stored_generations(db_path):
    """{name: (generation, fingerprint)} from weir's pipelines table."""
    import sqlite3
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return {n: (g, f) for n, g, f in
                con.execute("SELECT name, generation, fingerprint FROM pipelines")}
    finally:
        con.close()


def captured_messages(path, skip_topic=None):
    """Every uplink message mosquitto_sub -v printed: [(topic, [result, ...], is_array)]."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        for line in f.read().decode(errors="replace").splitlines():
            if not line.strip():
                continue
            topic, _, payload = line.partition(" ")
            if topic == skip_topic:
                continue
            body = json.loads(payload)
            out.append((topic, body if isinstance(body, list) else [body], isinstance(body, list)))
    return out


def check_capture(messages):
    """No id ever arrives with two different results at one rev; every
    result goes to its bare pipeline's topic and names the bare pipeline."""
    problems = []
    seen = {}
    for topic, results, _ in messages:
        for r in results:
            key = (r["id"], r["rev"])
            text = json.dumps(r, sort_keys=True)
            if key in seen and seen[key] != text:
                problems.append(f"{r['id']} rev {r['rev']} arrived twice with different results:"
                                f"\n  {seen[key]}\n  {text}")
            seen[key] = text
            if "pipeline" in r:
                if "~" in r["pipeline"]:
                    problems.append(f"{r['id']}: pipeline field {r['pipeline']!r} has a generation")
                if topic != f"weir/{GATEWAY}/{r['pipeline']}":
                    problems.append(f"{r['id']}: on topic {topic}")
    return problems


def free_port():
    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def metrics(port):
    """{sample name with labels: value} from weir's /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric(port, name):
    m = metrics(port)
    if name not in m:
        raise harness.Failure(f"no {name} in /metrics: {sorted(m)[:50]}")
    return m[name]


def journal_newest(db_path):
    """The newest journal seq in weir's database; 0 while there is none."""
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT max(seq) FROM journal").fetchone()[0] or 0
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def start_sink(bin_dir, broker, work, client_id, procs):
    """weir-sink on weir/# into work/sink.db, subscribed before it returns:
    results the uplink sends earlier would be lost. Returns (process, db path)."""
    sink_db = os.path.join(work, "sink.db")
    sink = harness.Process([os.path.join(bin_dir, "weir-sink"), "--broker", broker.uri,
                            "--topic", "weir/#", "--db", sink_db, "--client-id", client_id],
                           os.path.join(work, "sink.log"))
    procs.append(sink)
    sink.wait_log("subscribed")
    return sink, sink_db


def start_capture(broker, path, client_id, procs, persistent=False):
    """A mosquitto_sub -v recording every uplink message into `path`; returns
    once a probe message it subscribed to has come back, so nothing the uplink
    sends afterwards is missed. Read it with captured_messages(path, PROBE)."""
    args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-v",
            "-i", client_id, "-t", "weir/#", "-t", PROBE]
    if persistent:
        args.append("-c")
    capture = harness.Process(args, path)
    procs.append(capture)
    harness.wait_for("the recorder subscribed", lambda: (
        harness.publish_lines(broker.uri, PROBE, ["x"]),
        PROBE in open(path).read())[1], 10, 0.3)
    return capture



def start_weir(bin_dir, cfg_path, work, procs, log_name="weir.log", after=0):
    """`weir run cfg_path` logging to work/log_name, connected to the source
    (its log after the first `after` characters says so)."""
    weir = harness.Process([os.path.join(bin_dir, "weir"), "run", cfg_path],
                           os.path.join(work, log_name))
    procs.append(weir)
    weir.wait_log("subscribed to", after=after)
    return weir


def stop_weir(weir):
    """SIGTERM, and weir must exit 0 (a clean stop)."""
    code = weir.stop(signal.SIGTERM)
    if code != 0:
        raise harness.Failure(f"weir run exited {code} on SIGTERM")
