"""Real servers on loopback ports for end-to-end tests: started as subprocesses, ready when their
health URL answers, stopped at teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.pg import free_port

ROOT = Path(__file__).resolve().parent.parent


class LiveServer:
    def __init__(self, args: list[str], env: dict, port: int, health_path: str = "/healthz", log_path=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(health_path)

    def _wait(self, health_path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; log: {self.log_text()}")
            try:
                if requests.get(self.url + health_path, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server on {self.url} not healthy after {timeout}s; log: {self.log_text()}")

    def log_text(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def bridge_env(config: dict, database_url: str, **extra) -> dict:
    """The environment an operator would set, derived from a test config mapping."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "FLASK_"))}
    for name in ("SECRET_KEY", "KIT_ACCESS_KEY", "BASIC_ACCESS_KEY", "RSA_PRIVATE_KEY_FILE", "INSTANCE_PATH"):
        env[f"BRIDGE_{name}"] = str(config[name])
    env["BRIDGE_DATA_KEYS"] = ",".join(config["DATA_KEYS"])
    env["BRIDGE_DATABASE_URL"] = database_url
    env["BRIDGE_LOG_LEVEL"] = "WARNING"
    env.update({f"BRIDGE_{k}": str(v) for k, v in extra.items()})
    return env


def start_bridge(config: dict, database_url: str, log_path, *, workers: int = 2, threads: int = 8, **extra) -> LiveServer:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--threads", str(threads), "--timeout", "30", "app:create_app()"]
    return LiveServer(args, bridge_env(config, database_url, **extra), port, log_path=log_path)
