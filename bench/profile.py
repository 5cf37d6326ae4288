"""Optional sampling profiles of the bridge's workers during a timed phase (`--profile DIR`), with
py-spy (`pip install py-spy`; needs ptrace rights, e.g. root). Writes py-spy's collapsed stacks per
worker and a summary of where the time went: the hottest frames by own time, and the project's
own functions by inclusive time."""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path

PROJECT_DIRS = ("tenants/", "sso/", "keys/", "app.py", "extensions.py", "config/")


class Profiler:
    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.py_spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
        self._running: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, pids: list[int], seconds: float) -> None:
        for pid in pids:
            out = self.out_dir / f"{name}-{pid}.txt"
            proc = subprocess.Popen([self.py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                                     "--rate", "100", "--format", "raw", "--nolineno", "--gil", "--nonblocking", "--output", str(out)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._running.append((proc, out))

    def stop(self, name: str, top: int = 25) -> str:
        stacks: collections.Counter = collections.Counter()
        for proc, out in self._running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                for line in out.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if count.isdigit():
                        stacks[stack] += int(count)
        self._running = []
        summary = summarise(stacks, top)
        (self.out_dir / f"{name}-summary.txt").write_text(summary, encoding="utf-8")
        return summary


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def summarise(stacks: collections.Counter, top: int) -> str:
    total = sum(stacks.values()) or 1
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    for stack, count in stacks.items():
        frames = _frames(stack)
        if not frames:
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            if any(d in frame for d in PROJECT_DIRS):
                inclusive[frame] += count
    lines = [f"{total} samples of the thread holding the GIL (CPU in Python), all workers", "", "own time (leaf frames):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "project functions, inclusive:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
