"""`make run` (scripts/run_local.py) stopped by a signal leaves nothing behind: not the three
gunicorn masters, not their workers, not their ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench.procs import process_table

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT from our own requests is not a server
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def three_free_ports() -> int:
    """A base port with it and the next two free (RUN_PORT_BASE)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base <= 65533 and all(_port_free(base + i) for i in range(3)):
            return base
    raise RuntimeError("no three consecutive free ports")


def descendants(pid: int) -> set[int]:
    table = process_table()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, _cpu) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """An instance folder made the way `make run` makes one: local secrets, the key pair, migrations."""
    folder = tmp_path_factory.mktemp("run-local")
    env = {**os.environ, "BRIDGE_INSTANCE_PATH": str(folder)}
    (folder / "config.py").write_text(subprocess.run([sys.executable, "-m", "config.generate", "--local"], cwd=ROOT,
                                                     env=env, check=True, capture_output=True, text=True).stdout)
    for command in (["keys", "generate"], ["db", "upgrade"]):
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    return folder


def start_run_local(instance: Path, port_base: int) -> tuple[subprocess.Popen, Path]:
    out = instance / f"run-local-{port_base}.out"
    env = {**os.environ, "BRIDGE_INSTANCE_PATH": str(instance), "RUN_PORT_BASE": str(port_base)}
    with open(out, "wb") as fh:
        process = subprocess.Popen([sys.executable, "-m", "scripts.run_local"], cwd=ROOT, env=env,
                                   stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    return process, out


def wait_for(condition, what: str, process: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"run_local exited ({process.returncode}) before {what}:\n{out.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout} s:\n{out.read_text()}")


def bridge_answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def servers_running(pid: int) -> set[int]:
    """The masters and their workers (at least two processes a server) once all three are up."""
    tree = descendants(pid)
    return tree if len([p for p in tree if "gunicorn" in _cmdline(p)]) >= 6 else set()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("moment", ["bridge-up", "banner"])
def test_sigterm_stops_every_server_and_worker_and_frees_the_ports(instance, moment):
    port_base = three_free_ports()
    process, out = start_run_local(instance, port_base)
    try:
        wait_for(lambda: bridge_answers(port_base), "answer on /healthz", process, out)
        if moment == "banner":
            wait_for(lambda: "Bridge events:" in out.read_text(), "banner", process, out)
        tree = descendants(process.pid)
        assert any("app:create_app()" in _cmdline(p) for p in tree)

        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)  # `timeout` signals make and its group: a second one while stopping
        status = process.wait(timeout=40)
        tree |= descendants(process.pid)  # nothing new, but cheap to check

        assert status == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
        assert [(p, _cmdline(p)) for p in tree if alive(p)] == []
        assert [port for port in range(port_base, port_base + 3) if not _port_free(port)] == []
        assert "Stopping..." in out.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_killed_outright_its_servers_stop_too(instance):
    """SIGKILL cannot be handled: the masters get SIGTERM from the kernel (PR_SET_PDEATHSIG)."""
    port_base = three_free_ports()
    process, out = start_run_local(instance, port_base)
    try:
        wait_for(lambda: servers_running(process.pid), "three servers with their workers", process, out)
        wait_for(lambda: bridge_answers(port_base), "answer on /healthz", process, out)
        tree = descendants(process.pid)

        process.kill()
        process.wait(timeout=10)

        deadline = time.monotonic() + 30  # each master's graceful stop of its worker
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
        assert [(p, _cmdline(p)) for p in tree if alive(p)] == []
        assert [port for port in range(port_base, port_base + 3) if not _port_free(port)] == []
    finally:
        if process.poll() is None:
            process.kill()
