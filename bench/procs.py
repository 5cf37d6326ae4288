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


def process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds)} of every process, from one pass over /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def children(pid: int, table: dict | None = None) -> list[int]:
    table = process_table() if table is None else table
    return sorted(p for p, (ppid, _cpu) in table.items() if ppid == pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 once it has gone)."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


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

    def pids(self, table: dict | None = None) -> list[int]:
        kids = children(self.parent_pid, table)
        return ([self.parent_pid] if self.include_parent else []) + kids

    def cpu_by_pid(self, table: dict) -> dict[int, float]:
        return {p: table[p][1] for p in self.pids(table) if p in table}


class Sampler:
    """Samples the workers' resident memory every `interval` seconds while a phase runs, and
    the CPU of every group between start() and stop()."""

    def __init__(self, workers: ProcessGroup, groups: list[ProcessGroup], interval: float = 0.2):
        self.workers, self.groups, self.interval = workers, groups, interval
        self.peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # CPU per process, first and last seen: a process that starts or ends during the phase (a
        # PostgreSQL backend of a short-lived connection) counts with what it used while seen.
        self._cpu_first: dict[str, dict[int, float]] = {}
        self._cpu_last: dict[str, dict[int, float]] = {}
        self.cpu: dict[str, float] = {}

    def _sample(self, first: bool = False) -> None:
        table = process_table()
        for pid in self.workers.pids(table):
            rss = memory_kib(pid).get("VmRSS", 0)
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)
        for group in self.groups:
            seen = group.cpu_by_pid(table)
            start = self._cpu_first.setdefault(group.name, {})
            last = self._cpu_last.setdefault(group.name, {})
            for pid, value in seen.items():
                start.setdefault(pid, value if first else 0.0)
                last[pid] = value

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> Sampler:
        self._machine0 = machine_cpu()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.cpu = {g.name: sum(last - self._cpu_first[g.name][pid] for pid, last in self._cpu_last[g.name].items())
                    for g in self.groups}
        busy, total = machine_cpu()
        self.machine_busy = busy - self._machine0[0]  # CPU seconds used by every process on the machine
        self.machine_total = total - self._machine0[1]
        return self


def worker_memory(workers: ProcessGroup) -> list[dict]:
    return [{"pid": pid, **{k: v // 1024 for k, v in memory_kib(pid).items()}} for pid in workers.pids()]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
