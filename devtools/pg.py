"""Throwaway database servers on loopback ports, for the tests and the benchmarks: a PostgreSQL
cluster (initdb + pg_ctl) and PgBouncer in transaction-pooling mode in front of it. Both live in a
temporary directory that `stop()` removes."""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import signal
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


def find_pgbouncer() -> str | None:
    for candidate in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("pgbouncer")


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
        attempts_left = 3
        while True:
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-o", opts, "-w", "-t", "60",
                          "-l", os.path.join(self.root, "log"), "start")
                return self
            except subprocess.CalledProcessError:
                attempts_left -= 1
                # Only a port another process (a parallel test worker) took first is tried again: after
                # a timeout the server may still come up, and a second start would orphan it.
                with open(os.path.join(self.root, "log"), encoding="utf-8", errors="replace") as log:
                    taken = "Address already in use" in log.read()
                if not (taken and attempts_left):
                    raise
                self.port = free_port()

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


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it goes away."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class PgBouncer:
    """Debian's pgbouncer in front of a PostgresCluster, in transaction-pooling mode: every database
    of the cluster is reachable as the same name on `port`; `pool_size` server connections at most
    per database (clients beyond that wait their turn). Build with `PgBouncer(cluster).start()`."""

    def __init__(self, cluster: PostgresCluster, *, pool_size: int = 20, max_client_conn: int = 500,
                 binary: str | None = None):
        self.cluster, self.pool_size, self.max_client_conn = cluster, pool_size, max_client_conn
        self.binary = binary or find_pgbouncer()
        if self.binary is None:
            raise RuntimeError("pgbouncer not found: apt-get install pgbouncer")
        self.root = tempfile.mkdtemp(prefix="bridge-pgbouncer-")
        self.port = free_port()
        self.ini = os.path.join(self.root, "pgbouncer.ini")
        self.log_path = os.path.join(self.root, "pgbouncer.log")
        self.process: subprocess.Popen | None = None
        # pgbouncer refuses to run as root: it runs as the `postgres` system user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _write_config(self) -> None:
        users = os.path.join(self.root, "userlist.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')  # auth_type trust still wants the user listed
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={self.cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
admin_users = postgres
pool_mode = transaction
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {self.max_client_conn}
query_wait_timeout = 60
ignore_startup_parameters = extra_float_digits,options
logfile = {self.log_path}
log_connections = 0
log_disconnections = 0
""")
        if self.user:
            for path in (self.root, users, self.ini):
                shutil.chown(path, self.user, self.user)

    def start(self, timeout: float = 30) -> PgBouncer:
        import psycopg

        self._write_config()
        stderr = open(os.path.join(self.root, "stderr.log"), "wb")
        self.process = subprocess.Popen([self.binary, self.ini], stdout=subprocess.DEVNULL, stderr=stderr,
                                        user=self.user, preexec_fn=_die_with_parent)
        stderr.close()
        # Ready when a client gets through it to PostgreSQL: polled, never a fixed sleep.
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=2",
                                     autocommit=True, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer not accepting on port {self.port} after {timeout:g} s") from None
                time.sleep(0.05)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log_tail(self, chars: int = 3000) -> str:
        text = ""
        for name in ("stderr.log", "pgbouncer.log"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    text += f.read()[-chars:]
            except OSError:
                pass
        return text

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # pgbouncer: SIGTERM is an immediate shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
