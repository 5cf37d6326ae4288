"""The servers under test, on 127.0.0.1 only: a throwaway PostgreSQL (devtools/pg.py), the bridge under
gunicorn with the shipped gunicorn.conf.py, and the KooGallery simulator under gunicorn, seeded
through its own `sim sync` (the real signed endpoints). Everything started here is stopped by
`Stack.stop()`; servers also get SIGTERM if this process dies (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from bench.procs import ProcessGroup, wait_for
from devtools.pg import PgBouncer, PostgresCluster, find_pg_bin, free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SIM_GUNICORN_CONF = Path(__file__).resolve().parent / "sim_gunicorn.conf.py"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _die_with_parent():
    """In the child, before exec: SIGTERM when the harness goes away, however it goes."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    """A gunicorn master started as a subprocess, ready when `health` answers 200."""

    def __init__(self, name: str, args: list[str], env: dict, port: int, log_path: Path, health: str = "/healthz"):
        self.name, self.port, self.log_path = name, port, log_path
        self.url = f"http://{HOST}:{port}"
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        try:
            self._wait(health)
        except BaseException:
            self.stop()
            raise

    def _wait(self, health: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if requests.get(self.url + health, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy on {self.url} after {timeout:g} s; log:\n{self.log_tail()}")

    def workers(self) -> ProcessGroup:
        return ProcessGroup(self.name, self.process.pid)

    def wait_workers(self, count: int) -> list[int]:
        return wait_for(lambda: len(self.workers().pids()) >= count and self.workers().pids(), 30,
                        f"{count} {self.name} worker(s)")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # gunicorn: graceful stop of the workers
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Stack:
    """PostgreSQL + bridge + simulator. Build with `Stack(options).start()`; always `stop()`."""

    def __init__(self, *, workers: int, threads: int, sim_workers: int, sim_threads: int, access_log: bool,
                 log_level: str, keep_dir: bool = False, extra_settings: dict | None = None,
                 pgbouncer_pool: int | None = None):
        self.workers, self.threads = workers, threads
        self.sim_workers, self.sim_threads = sim_workers, sim_threads
        self.access_log, self.log_level, self.keep_dir = access_log, log_level, keep_dir
        self.extra_settings = {k.removeprefix("BRIDGE_"): v for k, v in (extra_settings or {}).items()}
        self.dir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
        # The simulator's state (SQLite, one transaction per operation) lives on tmpfs when there is
        # one: the fsyncs of a test tool are not what this benchmark measures.
        shm = Path("/dev/shm")
        self.sim_dir = Path(tempfile.mkdtemp(prefix="bridge-bench-sim-", dir=shm if shm.is_dir() else None))
        self.cluster: PostgresCluster | None = None
        # With a pool size: the bridge reaches PostgreSQL through PgBouncer (transaction pooling).
        self.pgbouncer_pool = pgbouncer_pool
        self.bouncer: PgBouncer | None = None
        if pgbouncer_pool:
            self.extra_settings["DATABASE_PGBOUNCER"] = "true"
        self.bridge: Server | None = None
        self.simulator: Server | None = None
        self.sim_app = None
        self.bridge_port, self.sim_port = free_port(), free_port()
        self.bridge_url, self.sim_url = f"http://{HOST}:{self.bridge_port}", f"http://{HOST}:{self.sim_port}"
        self.login_url = f"{self.bridge_url}/sso/callback"
        self.kit_key = "bench-kit-" + secrets.token_hex(16)
        self.basic_key = "bench-basic-" + secrets.token_hex(16)
        self.workbench_login = "direct"
        self.pg_port: int | None = None

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> Stack:
        self.start_database()
        self.start_bridge("direct")
        self.start_simulator()
        self.sim_cli("sync")
        from simulator import create_app as create_simulator

        self.sim_app = create_simulator(self._sim_settings())
        return self

    def start_database(self) -> None:
        """Secrets, PostgreSQL (behind PgBouncer if asked) and the migrations."""
        from keys.rsa import generate_private_key, public_key_for_koogallery, write_private_key

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
        key = generate_private_key()
        key_path = self.dir / "koogallery_rsa.pem"
        write_private_key(key, str(key_path))
        self.public_key = public_key_for_koogallery(key)
        (self.dir / "instance").mkdir()
        self.config = {"SECRET_KEY": secrets.token_urlsafe(48), "KIT_ACCESS_KEY": self.kit_key,
                       "BASIC_ACCESS_KEY": self.basic_key, "DATA_KEYS": Fernet.generate_key().decode(),
                       "RSA_PRIVATE_KEY_FILE": str(key_path), "INSTANCE_PATH": str(self.dir / "instance")}
        self.cluster = PostgresCluster(bin_dir)
        self.pg_port = self.cluster.port
        self.cluster.start()
        self.database_url = self.cluster.create_database("bridge_bench")
        if self.pgbouncer_pool:
            self.bouncer = PgBouncer(self.cluster, pool_size=self.pgbouncer_pool).start()
            self.database_url = self.bouncer.url("bridge_bench")
        self.flask("db", "upgrade")

    def bridge_env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "FLASK_", "SIM_", "GUNICORN_"))}
        env.update({f"BRIDGE_{k}": v for k, v in self.config.items()})
        env.update(BRIDGE_DATABASE_URL=self.database_url, BRIDGE_LOG_LEVEL=self.log_level,
                   BRIDGE_ALLOW_INSECURE_IDP="true", BRIDGE_COOKIE_SECURE="false", BRIDGE_PUBLIC_URL=self.bridge_url,
                   BRIDGE_LOCAL_DEV="true", BRIDGE_METRICS_PUBLIC="true", BRIDGE_RATE_LIMIT_LOGIN="0",
                   BRIDGE_RATE_LIMIT_CALLBACK="0",
                   BRIDGE_WORKBENCH_LOGIN=self.workbench_login, FLASK_APP="app",
                   BRIDGE_PORTAL_LOGIN_URL=f"{self.sim_url}/unified-login/portal-login",
                   # Every virtual user comes from 127.0.0.1: the per-client caps would measure themselves.
                   BRIDGE_LOGIN_STATES_PER_CLIENT="10000000", BRIDGE_LOGIN_STATES_TOTAL="10000000",
                   # All virtual users are of one tenant: the per-tenant bulkhead is measured elsewhere.
                   BRIDGE_IDP_MAX_CONCURRENT_PER_TENANT="64")
        env.update({f"BRIDGE_{k}": str(v) for k, v in {**self.extra_settings, **extra}.items()})
        return env

    def flask(self, *args: str) -> str:
        """The bridge's CLI, as an operator runs it."""
        result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.bridge_env(),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start_bridge(self, workbench_login: str) -> Server:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        self.workbench_login = workbench_login
        args = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"{HOST}:{self.bridge_port}",
                "--workers", str(self.workers), "--threads", str(self.threads)]
        if not self.access_log:
            args += ["--access-logfile", "/dev/null"]
        self.bridge = Server("bridge", [*args, "app:create_app()"], self.bridge_env(), self.bridge_port,
                             self.dir / "bridge.log")
        self.bridge.wait_workers(self.workers)
        return self.bridge

    def _sim_settings(self) -> dict:
        return {"TESTING": True, "STATE_DB": str(self.sim_dir / "state.sqlite"), "PUBLIC_URL": self.sim_url,
                "BRIDGE_URL": self.bridge_url, "APP_LOGIN_URL": self.login_url, "KIT_ACCESS_KEY": self.kit_key,
                "BASIC_ACCESS_KEY": self.basic_key, "BRIDGE_PUBLIC_KEY": self.public_key, "LOG_LEVEL": "WARNING"}

    def sim_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "FLASK_", "SIM_", "GUNICORN_"))}
        env["SIM_CONFIG_FILE"] = ""
        env.update({f"SIM_{k}": str(v) for k, v in self._sim_settings().items() if k != "TESTING"})
        return env

    def start_simulator(self) -> Server:
        args = [sys.executable, "-m", "gunicorn", "--config", str(SIM_GUNICORN_CONF), "--bind", f"{HOST}:{self.sim_port}",
                "--workers", str(self.sim_workers), "--threads", str(self.sim_threads), "simulator:create_app()"]
        self.simulator = Server("simulator", args, self.sim_env(), self.sim_port, self.dir / "simulator.log")
        self.simulator.wait_workers(self.sim_workers)
        return self.simulator

    def sim_cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "simulator", "sim", *args], cwd=ROOT,
                                env=self.sim_env(), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"sim {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- the simulator's Python API, in-process against its state DB ---------------------------------

    def sim_services(self):
        return self.sim_app.extensions["simulator"]

    def sim_sign_in(self, accounts: list[tuple[str, str]]) -> dict[str, str]:
        """A browser signed in at these tenants' authentication centres (tenant code, userName):
        the simulator's cookies, through its public sign-in page."""
        from simulator.seed import load_seed

        seed = load_seed(None)
        http = requests.Session()
        for tenant_code, user_name in accounts:
            password = seed.tenant(tenant_code).user(user_name).password
            url = f"{self.sim_url}/t/{tenant_code}/login"
            page = http.get(url, timeout=10)
            answer = http.post(url, data={"csrf_token": CSRF.search(page.text).group(1), "username": user_name,
                                          "password": password}, allow_redirects=False, timeout=10)
            if answer.status_code != 302:
                raise RuntimeError(f"simulator sign-in of {user_name}@{tenant_code} failed: HTTP {answer.status_code}")
        return http.cookies.get_dict()

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        for server in (self.bridge, self.simulator):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                    print(f"bench: stopping {server.name}: {exc}", file=sys.stderr)
        self.bridge = self.simulator = None
        if self.bouncer is not None:
            self.bouncer.stop()
            self.bouncer = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.sim_dir, ignore_errors=True)

    def postgres(self) -> ProcessGroup | None:
        if self.cluster is None:
            return None
        try:
            pid = int(Path(self.cluster.data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return ProcessGroup("postgres", pid, include_parent=True)

    def pgbouncer(self) -> ProcessGroup | None:
        if self.bouncer is None or self.bouncer.process is None:
            return None
        return ProcessGroup("pgbouncer", self.bouncer.process.pid, include_parent=True)
