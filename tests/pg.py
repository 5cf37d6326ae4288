"""A throwaway PostgreSQL cluster for the test session (initdb + pg_ctl on a loopback port)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def find_pg_bin() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    path = shutil.which("initdb")
    return os.path.dirname(path) if path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, bin_dir: str):
        self.bin_dir = bin_dir
        self.root = tempfile.mkdtemp(prefix="bridge-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        # initdb refuses to run as root: run the server as the `postgres` system user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresCluster:
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(os.path.join(self.bin_dir, "initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-o", opts, "-w", "-t", "60",
                  "-l", os.path.join(self.root, "log"), "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                     autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run([*self.as_user, os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-m", "immediate",
                        "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)
