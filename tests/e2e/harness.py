"""Shared pieces of weir's end-to-end tests: private brokers, weir processes,
publishing with mosquitto_pub, reading weir-sink's database. Standard library
only; every wait has a deadline."""
import argparse
import contextlib
import json
import os
import signal as signals
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BROKER_PY = os.path.join(HERE, "..", "broker.py")


class Failure(Exception):
    pass


def setup(work_prefix, ap=None):
    """The start of a test with one broker: parses --bin (and the options
    `ap` already has), makes the work dir and starts a broker in it.
    Returns (args, work, broker, procs); procs is empty, for reported()."""
    ap = ap or argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    work = temp_dir(work_prefix)
    broker = Broker(os.path.join(work, "broker"))
    return args, work, broker, []


@contextlib.contextmanager
def reported(work, procs, brokers, log_name=None, note=""):
    """The end of every test's main(): a Failure raised in the block is
    printed as FAIL with the work dir (kept for a look) and, when log_name is
    given, the tail of that log in it; the Failure is then swallowed, so the
    statement after the block runs (`return 1`). Whatever happens, the
    processes still alive are killed and the brokers stopped. `brokers` is a
    list, or a function returning one for tests that replace a broker midway
    (it is called at the end, so it sees the replacement)."""
    try:
        yield
    except Failure as e:
        print(f"FAIL: {e}\n(work dir kept: {work}{note})")
        if log_name:
            try:
                with open(os.path.join(work, log_name)) as f:
                    print("--- weir log tail\n" + f.read()[-3000:])
            except OSError:
                pass
    finally:
        for p in procs:
            if p.alive():
                p.stop(signals.SIGKILL)
        for b in brokers() if callable(brokers) else brokers:
            b.stop()


def wait_for(what, predicate, timeout_s=30.0, interval_s=0.05):
    """Polls predicate until it returns a truthy value; raises Failure with
    `what` when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class Broker:
    def __init__(self, directory, port=None, persistence=False):
        self.directory = directory
        args = [sys.executable, BROKER_PY, "start", "--dir", directory]
        if port:
            args += ["--port", str(port)]
        if persistence:
            args.append("--persistence")
        out = subprocess.check_output(args, text=True).split()
        self.port, self.pid = int(out[0]), int(out[1])
        self.uri = f"tcp://127.0.0.1:{self.port}"

    def stop(self, kill=False):
        if self.pid:
            args = [sys.executable, BROKER_PY, "stop", str(self.pid)] + (["--kill"] if kill else [])
            subprocess.run(args, check=False)
            self.pid = None


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, fragment, timeout_s=20.0, after=0, count=1):
        """Waits until `fragment` occurs `count` times in the log after the
        first `after` characters (several runs may share one log file)."""
        def found():
            seen = self.log_text()[after:].count(fragment) >= count
            if not seen and self.proc.poll() is not None:
                raise Failure(f"{self.args[0]} exited ({self.proc.returncode}) before logging "
                              f"{fragment!r}:\n{self.log_text()[-3000:]}")
            return seen
        wait_for(f"{fragment!r} in {self.log_path}", found, timeout_s)

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig=signals.SIGTERM, timeout_s=20.0):
        self.signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure(f"{self.args[0]} did not exit within {timeout_s}s of signal {sig}")
        finally:
            self.log.close()

    def alive(self):
        return self.proc.poll() is None


def publish_lines(broker_uri, topic, lines, qos=1):
    """Publishes each line as one message on `topic` (in order, QoS 1)."""
    port = broker_uri.rsplit(":", 1)[1]
    data = "".join(line + "\n" for line in lines)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", str(qos), "-t", topic,
                    "-l"], input=data.encode(), check=True, timeout=60)


def sink_rows(db_path):
    """{id: (rev, retracted, result dict or None)} from weir-sink's SQLite file."""
    if not os.path.exists(db_path):
        return {}
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT id, rev, retracted, result FROM weir_results").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return {}  # table not created yet
    return {i: (rev, bool(ret), json.loads(res) if res else None) for i, rev, ret, res in rows}


def close_enough(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def temp_dir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def port_open(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def sqlite_count(path, sql):
    """A count from a SQLite file opened read-only; 0 while it is not there."""
    if not os.path.exists(path):
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0
