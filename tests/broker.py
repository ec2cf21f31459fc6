#!/usr/bin/env python3
"""Starts and stops a private Mosquitto for tests and scripts/demo.

  broker.py start --dir DIR [--port PORT] [--persistence] [--tls CA CERT KEY]
                                            prints "PORT PID", broker keeps running
  broker.py stop PID [--kill]               SIGTERM (or SIGKILL) and wait until gone

The broker listens on 127.0.0.1 only, keeps nothing on disk (persistence
false, unless --persistence: then sessions and queued messages are saved in
DIR when the broker is stopped with SIGTERM; --tls: the listener speaks TLS
with that server certificate and requires client certificates signed by CA) and queues up to a million messages per client, because Mosquitto's
default of 1000 silently drops readings for a slow or absent persistent session.
Readiness is a successful TCP connect, waited for with a deadline.
"""
import argparse
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

DEADLINE_S = 10.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def start(directory, port, persistence, tls):
    os.makedirs(directory, exist_ok=True)
    fixed = port is not None
    for _ in range(5):
        p = port if fixed else free_port()
        conf = os.path.join(directory, "mosquitto.conf")
        lines = [
            f"listener {p} 127.0.0.1",
            "allow_anonymous true",
            # Started as root, mosquitto would switch to user "mosquitto" and
            # could not write its log into our directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            f"log_dest file {os.path.join(directory, 'mosquitto.log')}",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {directory}/"]
        else:
            lines += ["persistence false"]
        if tls:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}",
                      "require_certificate true"]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        proc = subprocess.Popen(["mosquitto", "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break  # exited: port taken, or a bad config
            if port_open(p):
                print(p, proc.pid, flush=True)
                return 0
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        if fixed:
            # A port just freed by a stopped broker can take a moment.
            time.sleep(0.2)
    print(f"broker.py: mosquitto did not start (see {directory}/mosquitto.log)", file=sys.stderr)
    return 1


def stop(pid, kill):
    try:
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + DEADLINE_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return 0 if not alive(pid) else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int)
    s.add_argument("--persistence", action="store_true")
    s.add_argument("--tls", nargs=3, metavar=("CA", "CERT", "KEY"))
    t = sub.add_parser("stop")
    t.add_argument("pid", type=int)
    t.add_argument("--kill", action="store_true")
    a = ap.parse_args()
    if a.cmd == "start":
        return start(a.dir, a.port, a.persistence, a.tls)
    return stop(a.pid, a.kill)


if __name__ == "__main__":
    sys.exit(main())
