"""Real servers on loopback ports for end-to-end tests: started as subprocesses, ready when their
health URL answers, stopped at teardown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.pg import free_port

ROOT = Path(__file__).resolve().parent.parent


class LiveServer:
    stop_signal = signal.SIGTERM

    def __init__(self, args: list[str], env: dict | None, port: int, health_path: str = "/healthz", log_path=None,
                 *, timeout: float = 60):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait(health_path, timeout)
        except Exception:
            self.stop()
            raise

    def _wait(self, health_path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; log: {self.log_text()}")
            try:
                if requests.get(self.url + health_path, timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still booting
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.url} not healthy after {timeout}s; log: {self.log_text()}")

    def log_text(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


class ServerInTempDir(LiveServer):
    """A third-party server (nginx, Apache) whose configuration, pid and logs live in a directory of
    its own, removed at stop. Not under pytest's tmp_path: as root, their workers drop to an
    unprivileged user and must reach these files (pytest's base directory is 0700)."""

    def __init__(self, prefix: str):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.chmod(0o755)

    def start(self, args: list[str], env: dict | None, port: int, health_path: str, timeout: float) -> None:
        super().__init__(args, env, port, health_path, self.dir / "stdout.log", timeout=timeout)

    def log_text(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
                         for path in (self.dir / "stdout.log", self.dir / "error.log") if path.exists())

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def bridge_env(config: dict, database_url: str, **extra) -> dict:
    """The environment an operator would set, derived from a test config mapping."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "FLASK_"))}
    for name in ("SECRET_KEY", "KIT_ACCESS_KEY", "BASIC_ACCESS_KEY", "RSA_PRIVATE_KEY_FILE", "INSTANCE_PATH"):
        env[f"BRIDGE_{name}"] = str(config[name])
    env["BRIDGE_DATA_KEYS"] = ",".join(config["DATA_KEYS"])
    env["BRIDGE_DATABASE_URL"] = database_url
    env["BRIDGE_LOG_LEVEL"] = "WARNING"
    # Live test servers are local development on 127.0.0.1: no https PUBLIC_URL, /metrics scraped
    # without a token, and every test's browser shares one address (its own limits are tested in-process).
    env.update(BRIDGE_LOCAL_DEV="true", BRIDGE_METRICS_PUBLIC="true", BRIDGE_RATE_LIMIT_LOGIN="0",
               BRIDGE_RATE_LIMIT_CALLBACK="0")
    if config.get("DATABASE_PGBOUNCER"):
        env["BRIDGE_DATABASE_PGBOUNCER"] = "true"
    env.update({f"BRIDGE_{k}": str(v) for k, v in extra.items()})
    return env


def start_bridge(config: dict, database_url: str, log_path, *, workers: int = 2, threads: int = 8,
                 port: int | None = None, **extra) -> LiveServer:
    port = port or free_port()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--threads", str(threads), "--timeout", "30", "app:create_app()"]
    return LiveServer(args, bridge_env(config, database_url, **extra), port, log_path=log_path)


def simulator_env(state_db, *, public_url: str, bridge_url: str, app_login_url: str | None = None, **extra) -> dict:
    """The environment the KooGallery simulator runs with: its own state file, no instance config
    file, nothing from the developer's SIM_*/FLASK_* settings. Extra names become SIM_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "FLASK_", "BRIDGE_"))}
    env.update(SIM_CONFIG_FILE="", SIM_STATE_DB=str(state_db), SIM_PUBLIC_URL=public_url, SIM_BRIDGE_URL=bridge_url,
               SIM_APP_LOGIN_URL=app_login_url or f"{bridge_url.rstrip('/')}/sso/callback", SIM_LOG_LEVEL="WARNING")
    env.update({f"SIM_{k}": str(v) for k, v in extra.items()})
    return env


def start_simulator(state_db, log_path, *, bridge_url: str = "http://127.0.0.1:9", app_login_url: str | None = None,
                    threads: int = 4, port: int | None = None, **extra) -> LiveServer:
    """The simulator (KooGallery + the tenants' authentication centres) under gunicorn on a free
    loopback port; each tenant's domainName is {server.url}/t/<tenantCode>. Pass the bridge's URL
    so its redirect_uris and logout targets are accepted, and extra SIM_* settings as keywords
    (KIT_ACCESS_KEY=..., BRIDGE_PUBLIC_KEY=...)."""
    port = port or free_port()
    env = simulator_env(state_db, public_url=f"http://127.0.0.1:{port}", bridge_url=bridge_url,
                        app_login_url=app_login_url, **extra)
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads",
            str(threads), "--timeout", "60", "simulator:create_app()"]
    return LiveServer(args, env, port, log_path=log_path)
