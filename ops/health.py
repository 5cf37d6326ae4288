"""/healthz: the process answers. /readyz: it can do its job (database reachable, schema at the
newest migration, keys loaded) — what a load balancer or orchestrator should route on."""

from __future__ import annotations

import functools

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify

from extensions import db
from keys import keyring

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@functools.cache
def _code_heads(directory: str) -> frozenset[str]:
    """The newest migrations this code ships: read once per process (reading the scripts costs
    thirty times a /healthz, and they do not change under a running process)."""
    return frozenset(ScriptDirectory(directory).get_heads())


def _schema_check() -> tuple[bool, str]:
    heads = _code_heads(current_app.extensions["migrate"].directory)
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
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
