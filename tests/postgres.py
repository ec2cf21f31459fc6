#!/usr/bin/env python3
"""Starts and stops a private PostgreSQL cluster for tests.

  postgres.py start --dir DIR   prints a postgresql:// URI; the server keeps running
  postgres.py stop --dir DIR

The server listens only on a Unix socket in DIR (no TCP), trusts local
connections and runs with fsync off: it is a test fixture, not a database.
PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` user.
"""
import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("postgres.py: no PostgreSQL server (install the postgresql package)")
    return os.path.dirname(found[-1])


def as_owner(cmd):
    if os.getuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory):
    os.makedirs(directory, exist_ok=True)
    data, sock = os.path.join(directory, "data"), os.path.join(directory, "sock")
    os.makedirs(sock, exist_ok=True)
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (directory, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    b = bindir()
    subprocess.run(as_owner([f"{b}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                             "--no-sync"]), check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off"
    subprocess.run(as_owner([f"{b}/pg_ctl", "-D", data, "-o", opts, "-l",
                             os.path.join(directory, "server.log"), "-w", "-t", "30", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    print(f"postgresql:///postgres?host={sock}&port={port}&user=postgres", flush=True)


def stop(directory):
    b = bindir()
    subprocess.run(as_owner([f"{b}/pg_ctl", "-D", os.path.join(directory, "data"), "-m", "fast",
                             "-w", "stop"]), stdout=subprocess.DEVNULL)
    shutil.rmtree(directory, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["start", "stop"])
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    if a.cmd == "start":
        start(a.dir)
    else:
        stop(a.dir)


if __name__ == "__main__":
    main()
