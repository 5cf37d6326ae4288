"""The simulator's own controls: health, and fault switches for tests and demos (loopback only)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request

from simulator.faults import DESCRIPTIONS, FaultError, set_fault
from simulator.services import services
from simulator.web import is_loopback

bp = Blueprint("control", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok", tenants=len(services().directory.tenants))


@bp.before_request
def loopback_only():
    if request.path.startswith("/_sim/") and not is_loopback():
        abort(403, description="the control endpoints answer loopback callers only")


@bp.get("/_sim/faults")
def list_faults():
    return jsonify(faults=services().store.faults(), kinds=DESCRIPTIONS)


@bp.post("/_sim/faults/<tenant_code>")
def change_fault(tenant_code):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error='send a JSON object: {"kind": "...", "on": true, "seconds": N}'), 400
    on = body.get("on", True)
    if not isinstance(on, bool):
        return jsonify(error="on must be true or false"), 400
    s = services()
    try:
        seconds = set_fault(s.store, s.directory, tenant_code, str(body.get("kind", "")), on, body.get("seconds"))
    except FaultError as exc:
        status = 404 if s.directory.tenant(tenant_code) is None else 400
        return jsonify(error=str(exc)), status
    return jsonify(tenant=tenant_code, kind=body["kind"], on=on, seconds=seconds,
                   faults=s.store.faults().get(tenant_code, {}))
