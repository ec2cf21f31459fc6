"""Pieces shared by the cloud-side tests: a private PostgreSQL (tests/postgres.py)
that can also be stopped and started again mid-test, reading weir-sink's tables
with psql, and weir-sink processes. Standard library only."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402
import postgres  # noqa: E402

POSTGRES_PY = os.path.join(HERE, "..", "postgres.py")


class Postgres:
    """A private cluster in `directory`; `uri` is what weir-sink's --db takes."""

    def __init__(self):
        # Its own folder under /tmp: as root the server runs as `postgres`,
        # which cannot enter a test's private (0700) work folder.
        self.directory = harness.temp_dir("weir-pg.")
        directory = self.directory
        self.uri = subprocess.check_output([sys.executable, POSTGRES_PY, "start", "--dir",
                                            directory], text=True).strip()
        self.port = self.uri.rsplit("port=", 1)[1].split("&")[0]
        self.sock = os.path.join(directory, "sock")
        self.data = os.path.join(directory, "data")

    def _ctl(self, *args):
        b = postgres.bindir()
        subprocess.run(postgres.as_owner([f"{b}/pg_ctl", "-D", self.data] + list(args)),
                       check=True, stdout=subprocess.DEVNULL)

    def pause(self):
        """Stops the server, keeping its data (a database that goes away)."""
        self._ctl("-m", "fast", "-w", "stop")

    def resume(self):
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses='' -c fsync=off"
        self._ctl("-o", opts, "-l", os.path.join(self.directory, "server.log"), "-w", "-t", "30",
                  "start")

    def psql(self, sql, uri=None):
        """Rows of `sql` as lists of strings (fields split on \\x1f). Several
        statements run one after another, as from a file (not as one
        transaction, which CREATE DATABASE refuses)."""
        out = subprocess.run(["psql", uri or self.uri, "-X", "-q", "-At", "-F", "\x1f",
                              "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql,
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise harness.Failure(f"psql {sql!r}: {out.stderr.strip()}")
        return [line.split("\x1f") for line in out.stdout.splitlines() if line]

    def rows(self):
        """{id: (rev, retracted, result dict or None)}, like harness.sink_rows."""
        import json
        try:
            got = self.psql("SELECT id, rev, retracted, result::text FROM weir_results")
        except harness.Failure as e:
            if "does not exist" in str(e):
                return {}
            raise
        return {i: (int(rev), ret == "t", json.loads(res) if res else None)
                for i, rev, ret, res in got}

    def losses(self):
        import json
        try:
            got = self.psql("SELECT id, record::text FROM weir_losses")
        except harness.Failure as e:
            if "does not exist" in str(e):
                return {}
            raise
        return {i: json.loads(r) for i, r in got}

    def stop(self):
        subprocess.run([sys.executable, POSTGRES_PY, "stop", "--dir", self.directory],
                       check=False)


def sqlite_losses(db_path):
    import json
    import sqlite3
    if not os.path.exists(db_path):
        return {}
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return {i: json.loads(r) for i, r in con.execute("SELECT id, record FROM weir_losses")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def start_sink(bin_dir, broker_uri, topic, db, client_id, log_path, share=None, extra=()):
    """`topic`: a filter, or a list of them (--topic repeated)."""
    topics = [topic] if isinstance(topic, str) else list(topic)
    args = [os.path.join(bin_dir, "weir-sink"), "--broker", broker_uri]
    for t in topics:
        args += ["--topic", t]
    args += ["--db", db, "--client-id", client_id, "--quiet"] + list(extra)
    if share:
        args += ["--share", share]
    p = harness.Process(args, log_path)
    return p
