"""/healthz: the process answers. /readyz: it can do its job (database reachable, schema at the
newest migration, keys loaded) — what a load balancer or orchestrator should route on."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from flask import Blueprint, jsonify
from sqlalchemy import inspect, text

from extensions import MIGRATIONS, db
from keys import keyring

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@functools.cache
def code_heads(directory: str = MIGRATIONS) -> frozenset[str]:
    """The newest migrations this code ships: the revisions no script names as its down_revision.

    Read from the scripts' assignments rather than through Alembic, which a serving worker would
    otherwise import for this alone (6-10 MiB of memory each); tests/test_migrations.py holds it to
    Alembic's own heads. Once per process: the scripts do not change under a running process."""
    revisions, parents = set(), set()
    for script in Path(directory, "versions").glob("*.py"):
        assigned = {}
        for node in ast.parse(script.read_text("utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target = node.target
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                assigned[target.id] = ast.literal_eval(node.value)
        if "revision" in assigned:
            revisions.add(assigned["revision"])
            down = assigned.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def _database_heads(conn) -> set[str]:
    """What `flask db upgrade` last recorded: Alembic's version table, empty before the first."""
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _schema_check() -> tuple[bool, str]:
    heads = code_heads()
    with db.engine.connect() as conn:
        current = _database_heads(conn)
    if current == heads:
        return True, "at " + ",".join(sorted(heads))
    return False, f"database at {','.join(sorted(current)) or 'nothing'}, code expects {','.join(sorted(heads))}: run flask db upgrade"


@bp.get("/readyz")
def readyz():
    checks = {}
    try:
        ok, detail = _schema_check()
        checks["database"] = {"ok": True}
        checks["migrations"] = {"ok": ok, "detail": detail}
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = {"ok": False, "detail": type(exc).__name__}
        checks["migrations"] = {"ok": False, "detail": "unknown (database unreachable)"}
    keys = keyring()
    checks["keys"] = {"ok": keys.private_key is not None,
                      "detail": "RSA private key loaded" if keys.private_key is not None
                      else "no RSA private key: run flask keys generate"}
    ready = all(c["ok"] for c in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
