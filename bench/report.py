"""`python -m bench.report [bench/results.json]`: the results as a Markdown table (for bench/README.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(report: dict) -> str:
    head = ["scenario", "ops/s", "p50 ms", "p99 ms", "floor", "×ops/s", "×p50", "×p99", "bridge CPU ms/op",
            "sim / pg ms/op", "client % core", "other load (cores)", "peak RSS MiB/worker", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        v = r.get("vs_floor") or {}
        cpu = r["cpu_ms_per_op"]
        targets = "; ".join(f"{t['target']}: **{'met' if t['met'] else 'missed'}**" for t in r["targets"])
        if r.get("overhead_vs_floor_percent") is not None:
            targets = f"overhead vs floor {r['overhead_vs_floor_percent']:.0f} %" + (f"; {targets}" if targets else "")
        if r.get("inputs_exhausted"):
            targets += " (inputs ran out early)"
        lines.append("| " + " | ".join([
            f"`{r['scenario']}`", _fmt(r["throughput_per_s"]), _fmt(r["p50_ms"]), _fmt(r["p99_ms"]),
            f"`{r['floor']}`" if r.get("floor") else "–", _fmt(v.get("throughput"), 3), _fmt(v.get("p50"), 1),
            _fmt(v.get("p99"), 1), _fmt(cpu.get("bridge"), 2),
            f"{_fmt(cpu.get('simulator'), 2)} / {_fmt(cpu.get('postgres'), 2)}",
            _fmt(r["client_cpu_percent_of_core"]), _fmt(r.get("other_load_cores"), 2),
            " / ".join(str(m) for m in r["bridge_worker_peak_rss_mib"].values()), targets or "–"]) + " |")
    memory = "; ".join(f"{policy}: " + ", ".join(f"{w.get('VmHWM')} MiB" for w in workers)
                       for policy, workers in report.get("bridge_workers_at_end_mib", {}).items())
    settings = report["settings"]
    lines += ["", f"Run {report['generated_at']}, {report['machine']['cpus']} CPUs, Python "
                  f"{report['machine']['python']}, bridge {settings['bridge_gunicorn']}, simulator "
                  f"{settings['sim_workers']} × {settings['sim_threads']}, {settings['duration']:g} s per phase after "
                  f"{settings['warmup']:g} s warm-up, {report['wall_seconds']:g} s in all. Peak RSS (VmHWM) of each "
                  f"bridge worker at the end — {memory}."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results.json"
    print(markdown(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
