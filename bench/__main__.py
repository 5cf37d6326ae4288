"""`python -m bench`: serve the bridge (gunicorn, PostgreSQL) and the simulator on 127.0.0.1, load
them, print a table and write bench/results.json. Everything started is stopped at the end, on
failure and on Ctrl-C. See bench/README.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import worker_memory
from bench.scenarios import Bench, Options
from bench.stack import Stack

SCENARIOS = ("tenantsync", "authsync", "login", "reinitiate", "oidc", "attack")

# Issue #11's targets, per scenario prefix: (what, check(result, floor)). CPU is the bridge
# workers' per operation; ratios are against the floor measured in the same run.


def _cpu_at_most(ms):
    return lambda r, f: (r["cpu_ms_per_op"].get("bridge") or float("inf")) <= ms


def _ratio_at_least(x):
    return lambda r, f: ((r.get("vs_floor") or {}).get("throughput") or 0) >= x


def _p99_below(ms):
    return lambda r, f: r["p99_ms"] is not None and r["p99_ms"] < ms


TARGETS = {
    "tenantSync": [("CPU ≤ 1.2 ms", _cpu_at_most(1.2)), ("≥ 0.45 × floor", _ratio_at_least(0.45)),
                   ("p99 < 50 ms", _p99_below(50))],
    "authSync": [("CPU ≤ 30 ms", _cpu_at_most(30)), ("p99 < 60 ms", _p99_below(60))],
    "login_direct": [("CPU ≤ 3.5 ms", _cpu_at_most(3.5)), ("≥ 0.65 × floor", _ratio_at_least(0.65))],
    "login_reinitiate": [("CPU ≤ 6 ms", _cpu_at_most(6)), ("≥ 0.45 × floor", _ratio_at_least(0.45))],
    "oidc_token": [("CPU ≤ 2.5 ms", _cpu_at_most(2.5)), ("≥ 0.35 × floor", _ratio_at_least(0.35))],
}
RSS_TARGET_MIB = 110  # peak resident memory per bridge worker, every scenario


class Interrupted(Exception):
    pass


def _interrupt(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def parse_args(argv=None) -> argparse.Namespace:
    defaults = Options()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=defaults.duration, help="seconds of each timed phase")
    p.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds of unrecorded warm-up per phase")
    p.add_argument("--workers", type=int, default=2, help="bridge gunicorn workers")
    p.add_argument("--threads", type=int, default=8, help="threads per bridge worker")
    p.add_argument("--sim-workers", type=int, default=2, help="simulator gunicorn workers")
    p.add_argument("--sim-threads", type=int, default=8, help="threads per simulator worker")
    p.add_argument("--sync-concurrency", type=int, default=defaults.sync_concurrency)
    p.add_argument("--auth-concurrency", type=int, default=defaults.auth_concurrency)
    p.add_argument("--login-concurrency", type=int, default=defaults.login_concurrency,
                   help="clients for the logins, their floor and the OIDC exchange")
    p.add_argument("--auth-users", type=int, default=defaults.auth_users, help="users per authSync call (≤ 500)")
    p.add_argument("--tenant-pool", type=int, default=defaults.tenant_pool, help="distinct tenants in tenantSync")
    p.add_argument("--max-inputs", type=int, default=defaults.max_inputs,
                   help="most single-use inputs (signed calls, codes) prepared for one phase")
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    p.add_argument("--set", dest="bridge_settings", action="append", default=[], metavar="NAME=VALUE",
                   help="an extra BRIDGE_<NAME> setting for the bridge under test (repeatable), e.g. "
                        "--set 'SQLALCHEMY_ENGINE_OPTIONS={\"pool_size\": 10}'")
    p.add_argument("--no-access-log", action="store_true", help="bridge without gunicorn's access log")
    p.add_argument("--log-level", default="INFO", help="BRIDGE_LOG_LEVEL of the bridge under test")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "results.json"))
    p.add_argument("--profile", dest="profile_dir", metavar="DIR",
                   help="profile the bridge's workers with py-spy during each timed phase; stacks and summaries in DIR")
    p.add_argument("--pgbouncer", type=int, metavar="POOL", default=None,
                   help="put PgBouncer (transaction pooling, this pool size) between the bridge and PostgreSQL")
    p.add_argument("--scale", type=float, nargs="?", const=1.0, default=None, metavar="F",
                   help="then load the database (10,000 tenants, 500,000 users, 1,000,000 audit rows, 200,000 "
                        "sessions, × F), run the scenarios again and compare (bench/scale.py)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary folder with the servers' logs")
    args = p.parse_args(argv)
    if args.duration + args.warmup > 45:
        p.error("--duration + --warmup must stay under 45 s: signed calls are prepared before the phase and "
                "the bridge accepts a timestamp only 60 s old")
    for item in args.bridge_settings:
        if "=" not in item:
            p.error(f"--set {item!r}: expected NAME=VALUE")
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    return args


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def add_ratios(results: list[dict]) -> None:
    by_name = {r["scenario"]: r for r in results}
    for r in results:
        floor = by_name.get(r.get("floor") or "")
        if floor is None:
            continue
        r["vs_floor"] = {"throughput": _ratio(r["throughput_per_s"], floor["throughput_per_s"]),
                         "p50": _ratio(r["p50_ms"], floor["p50_ms"]), "p99": _ratio(r["p99_ms"], floor["p99_ms"])}
        if r["scenario"].startswith("login_") and r["throughput_per_s"]:
            r["overhead_vs_floor_percent"] = round(100 * (floor["throughput_per_s"] / r["throughput_per_s"] - 1), 1)
        checks = next((v for k, v in TARGETS.items() if r["scenario"].startswith(k)), [])
        r["targets"] = [{"target": text, "met": bool(check(r, floor))} for text, check in checks]
    for r in results:
        r.setdefault("targets", [])
        rss = r.get("bridge_worker_peak_rss_mib") or {}
        if r.get("floor") and rss:
            r["targets"].append({"target": f"RSS ≤ {RSS_TARGET_MIB} MiB",
                                 "met": max(rss.values()) <= RSS_TARGET_MIB})


def table(results: list[dict]) -> str:
    head = ("scenario", "ops", "err", "ops/s", "p50 ms", "p99 ms", "floor", "×ops/s", "×p50", "×p99",
            "bridge ms/op", "client %", "RSS MiB/worker", "targets")
    rows = []
    for r in results:
        v = r.get("vs_floor") or {}
        rss = "/".join(str(m) for m in r["bridge_worker_peak_rss_mib"].values())
        rows.append((r["scenario"], r["ok"], r["errors"], r["throughput_per_s"], r["p50_ms"], r["p99_ms"],
                     r.get("floor") or "-", v.get("throughput", "-"), v.get("p50", "-"), v.get("p99", "-"),
                     r["cpu_ms_per_op"].get("bridge"), r["client_cpu_percent_of_core"], rss,
                     "; ".join(f"{t['target']} {'met' if t['met'] else 'MISSED'}" for t in r["targets"]) or "-"))
    cells = [tuple("-" if c is None else str(c) for c in row) for row in (head, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def run_scenarios(bench: Bench, stack: Stack, selected: list[str], memory_end: dict) -> None:
    if stack.workbench_login != "direct":
        stack.start_bridge("direct")
    if "tenantsync" in selected:
        print("bench: tenantSync", flush=True)
        bench.tenant_sync()
    if "authsync" in selected:
        print("bench: authSync", flush=True)
        bench.auth_sync()
    if "oidc" in selected:
        print("bench: OIDC code exchange", flush=True)
        bench.oidc_token()
    if "login" in selected or "reinitiate" in selected:
        print("bench: workbench login floor (bare Authlib client)", flush=True)
        floor = bench.login_floor()["scenario"]
        if "login" in selected:
            print("bench: workbench login, direct", flush=True)
            bench.login_direct(floor)
        memory_end["direct"] = worker_memory(stack.bridge.workers())
        if "reinitiate" in selected:
            print("bench: workbench login, reinitiate (bridge restarted with that policy)", flush=True)
            stack.start_bridge("reinitiate")
            bench.login_reinitiate(floor)
    memory_end[stack.workbench_login] = worker_memory(stack.bridge.workers())


def main(argv=None) -> int:
    args = parse_args(argv)
    opts = Options(**{f.name: getattr(args, f.name) for f in fields(Options)})
    selected = args.only.split(",")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = time.monotonic()
    stack = Stack(workers=args.workers, threads=args.threads, sim_workers=args.sim_workers,
                  sim_threads=args.sim_threads, access_log=not args.no_access_log, log_level=args.log_level,
                  keep_dir=args.keep_logs, pgbouncer_pool=args.pgbouncer,
                  extra_settings=dict(item.split("=", 1) for item in args.bridge_settings))
    bench = Bench(stack, opts, log=lambda m: print(m, flush=True))
    memory_end: dict[str, list[dict]] = {}
    scaled: dict | None = None
    attack: dict | None = None
    status = 0
    try:
        print(f"bench: starting PostgreSQL, the bridge ({args.workers} workers × {args.threads} threads) and the "
              f"simulator ({args.sim_workers} × {args.sim_threads}) in {stack.dir}", flush=True)
        stack.start()
        run_scenarios(bench, stack, selected, memory_end)
        if "attack" in selected:
            from bench.attack import run_attack

            print("bench: attack (one tenant's centre drips; bench/attack.py)", flush=True)
            attack = run_attack(stack, opts, log=lambda m: print(m, flush=True))
        if args.scale:
            from bench.scale import run_scaled

            scaled = run_scaled(stack, lambda: Bench(stack, opts, log=lambda m: print(m, flush=True)),
                                lambda b: run_scenarios(b, stack, selected, memory_end), args.scale,
                                oidc_registered="oidc" in selected)
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\nbench: interrupted ({exc or 'Ctrl-C'}); stopping the servers", file=sys.stderr, flush=True)
        status = 130
    except Exception as exc:
        print(f"bench: failed: {exc}", file=sys.stderr, flush=True)
        if stack.bridge is not None:
            print(f"--- bridge log (tail) ---\n{stack.bridge.log_tail()}", file=sys.stderr)
        status = 1
    finally:
        stack.stop()
    if not bench.results and not attack:
        return status or 1
    add_ratios(bench.results)
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {**vars(args), "bridge_gunicorn": f"{args.workers} workers × {args.threads} threads (gthread)"},
        "complete": status == 0,
        "ports": {"bridge": stack.bridge_port, "simulator": stack.sim_port, "postgres": stack.pg_port},
        "wall_seconds": round(time.monotonic() - started, 1),
        "bridge_workers_at_end_mib": memory_end,  # per bridge run (policy): VmRSS now, VmHWM = peak
        "results": bench.results,
        "attack": attack,  # the hostile-centre scenario: each row quiet and attacked
        "scaled": scaled,  # --scale: the same scenarios on the loaded database, plans, console, maintenance
    }
    Path(args.output).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if bench.results:
        print()
        print(table(bench.results))
    if attack:
        from bench.attack import attack_table

        print("\nbench: one tenant's centre dripping (with the attack vs without):")
        print(attack_table(attack))
    if scaled:
        from bench.scale import summary

        add_ratios(scaled["results"])
        print(summary(bench.results, scaled, table))
    print(f"\nbench: {report['wall_seconds']} s; results in {args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
