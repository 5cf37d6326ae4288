"""What the servers' processes use, read from /proc: CPU time and resident memory of the gunicorn
workers (the children of a master), the simulator and PostgreSQL's backends."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 once it has gone)."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set since the process started), in KiB."""
    result = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                result[name] = int(value.split()[0])
    except OSError:
        pass
    return result


class ProcessGroup:
    """A named set of processes: a gunicorn master's workers, or a postmaster's backends."""

    def __init__(self, name: str, parent_pid: int, include_parent: bool = False):
        self.name, self.parent_pid, self.include_parent = name, parent_pid, include_parent

    def pids(self) -> list[int]:
        kids = children(self.parent_pid)
        return ([self.parent_pid] if self.include_parent else []) + kids

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())


class Sampler:
    """Samples the workers' resident memory every `interval` seconds while a phase runs, and
    the CPU of every group between start() and stop()."""

    def __init__(self, workers: ProcessGroup, groups: list[ProcessGroup], interval: float = 0.1):
        self.workers, self.groups, self.interval = workers, groups, interval
        self.peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu0: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def _sample(self) -> None:
        for pid in self.workers.pids():
            rss = memory_kib(pid).get("VmRSS", 0)
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> Sampler:
        self._cpu0 = {g.name: g.cpu() for g in self.groups}
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.cpu = {g.name: g.cpu() - self._cpu0[g.name] for g in self.groups}
        return self


def worker_memory(workers: ProcessGroup) -> list[dict]:
    return [{"pid": pid, **{k: v // 1024 for k, v in memory_kib(pid).items()}} for pid in workers.pids()]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
