"""KooGallery's signed POSTs. Every answer is HTTP 200 JSON with a six-digit resultCode; 000000
only after the commit (spec §2, DESIGN invariants 2–3)."""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from extensions import db
from keys import keyring
from ops.metrics import SYNC_CALLS
from tenants import services
from tenants.audit import body_for_audit, record_sync_call
from tenants.errors import ResultCode, SyncError, invalid
from tenants.models import SyncCall, utcnow
from tenants.parsing import parse_json_object
from tenants.signing import body_sign_header, check_signature_headers, verify_basic_signature, verify_kit_signature

log = logging.getLogger(__name__)

bp = Blueprint("tenants", __name__)

KIT_INTERFACES = ("tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync")


def _kit_apply(interface: str, body: dict):
    cfg = current_app.config
    if interface == "tenantSync":
        return services.apply_tenant_sync(body, allow_insecure_idp=cfg["ALLOW_INSECURE_IDP"])
    if interface == "applicationSync":
        keys = keyring()
        return services.apply_application_sync(body, private_key=keys.private_key, secret_box=keys.data)
    if interface == "authSync":
        return services.apply_auth_sync(body, max_users=cfg["MAX_AUTH_SYNC_USERS"])
    if interface == "singleOrgSync":
        return services.apply_single_org_sync(body)
    return services.apply_all_org_sync(body)


def _basic_apply(body: dict):
    activity = body.get("activity")
    handler = services.BASIC_ACTIVITIES.get(activity) if isinstance(activity, str) else None
    if handler is None:
        raise invalid(f"activity must be one of {', '.join(services.BASIC_ACTIVITIES)}")
    if handler is services.query_instance:
        return handler(body, login_url_for=_login_url_for)
    return handler(body)


def _login_url_for(instance_id: str) -> str:
    base = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
    return f"{base}/sso/login?instance={instance_id}"


@bp.route("/produceAPI/v2/<interface>", methods=["POST", "GET", "PUT", "DELETE", "PATCH"])
def kit_call(interface):
    if interface not in KIT_INTERFACES:
        return _answer_refusal(f"kit:{interface[:40]}", invalid(f"unknown interface; expected one of {', '.join(KIT_INTERFACES)}"),
                               key=current_app.config["KIT_ACCESS_KEY"])
    return _handle(
        f"kit:{interface}",
        keys=[current_app.config["KIT_ACCESS_KEY"], *current_app.config["KIT_ACCESS_KEY_FALLBACKS"]],
        headers=(request.headers.get("x-sign"), request.headers.get("x-timestamp"), request.headers.get("x-nonce")),
        verify=verify_kit_signature,
        apply=lambda body: _kit_apply(interface, body),
    )


@bp.route("", methods=["POST", "GET", "PUT", "DELETE", "PATCH"], strict_slashes=False)
def basic_call():
    return _handle(
        "basic",
        keys=[current_app.config["BASIC_ACCESS_KEY"], *current_app.config["BASIC_ACCESS_KEY_FALLBACKS"]],
        headers=(request.args.get("signature"), request.args.get("timestamp"), request.args.get("nonce")),
        verify=verify_basic_signature,
        apply=_basic_apply,
    )


def _handle(interface, *, keys, headers, verify, apply):
    cfg = current_app.config
    started = time.monotonic()
    body, raw, verified, outcome, audited = None, b"", None, None, False
    signature, timestamp, nonce = headers
    try:
        if request.method != "POST":
            raise invalid(f"{request.method} is not accepted; KooGallery calls use POST")
        if request.mimetype != "application/json":
            raise invalid("Content-Type must be application/json")
        try:
            raw = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise invalid(f"body is larger than {cfg['MAX_BODY_BYTES']} bytes") from None
        sig_headers = check_signature_headers(signature, timestamp, nonce, int(time.time() * 1000),
                                              cfg["SIGNATURE_WINDOW_SECONDS"] * 1000)
        body = parse_json_object(raw, cfg["MAX_JSON_DEPTH"])
        verified = verify(keys, sig_headers, timestamp, raw, body)
        if interface == "basic":
            activity = body.get("activity")
            interface = f"basic:{activity if activity in services.BASIC_ACTIVITIES else 'unknown'}"
        services.record_nonce(nonce, cfg["NONCE_TTL_SECONDS"])
        outcome = apply(body)
        code, message, extra = ResultCode.SUCCESS, outcome.message, outcome.extra
        # The audit row commits with the change: one transaction, and no success without its record.
        db.session.connection().execute(db.insert(SyncCall.__table__), _audit_fields(
            interface, code, message, started, body, raw, nonce, verified, outcome) | {"created_at": utcnow()})
        db.session.commit()
        audited = True
    except SyncError as exc:
        db.session.rollback()
        code, message, extra = exc.code, exc.message, {}
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("sync_database_error interface=%s", interface)
        code, message, extra = ResultCode.INTERNAL_ERROR, "internal error (database); please retry", {}
    except Exception:  # the caller must get KooGallery JSON, never an HTML 500
        db.session.rollback()
        log.exception("sync_unexpected_error interface=%s", interface)
        code, message, extra = ResultCode.INTERNAL_ERROR, "internal error; please retry", {}

    SYNC_CALLS.labels(interface, code).inc()
    if not audited:  # refusals and failures: their own transaction, after the rollback
        fields = _audit_fields(interface, code, message, started, body, raw, nonce, verified, None)
        record_sync_call(**fields)
    log.info("sync_call interface=%s result=%s tenant=%s duration_ms=%d reason=%r", interface, code,
             outcome.tenant_id if outcome else _field(body, "tenantId"), (time.monotonic() - started) * 1000,
             message if code != ResultCode.SUCCESS else "")
    return _answer(code, message, extra, key=keys[0])


def _audit_fields(interface, code, message, started, body, raw, nonce, verified, outcome) -> dict:
    return dict(
        request_id=g.request_id, interface=interface,
        tenant_id=outcome.tenant_id if outcome else _field(body, "tenantId"),
        instance_id=outcome.instance_id if outcome else _field(body, "instanceId"),
        nonce=(nonce or "")[:128] or None, result_code=code, result_msg=message[:255],
        duration_ms=int((time.monotonic() - started) * 1000), remote_addr=(request.remote_addr or "")[:64],
        signature_form=str(verified) if verified else None,
        body=body_for_audit(body, raw, current_app.config["AUDIT_BODY_MAX_CHARS"]),
    )


def _field(body, name):
    value = body.get(name) if isinstance(body, dict) else None
    return str(value)[:64] if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def _answer_refusal(interface, error: SyncError, *, key):
    SYNC_CALLS.labels("kit:unknown", error.code).inc()
    record_sync_call(request_id=g.request_id, interface=interface, tenant_id=None, instance_id=None, nonce=None,
                     result_code=error.code, result_msg=error.message[:255], duration_ms=0,
                     remote_addr=(request.remote_addr or "")[:64], signature_form=None, body=None)
    return _answer(error.code, error.message, {}, key=key)


def _answer(code: str, message: str, extra: dict, *, key: str) -> Response:
    payload = json.dumps({"resultCode": code, "resultMsg": message[:255], **extra},
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = Response(payload, status=200, mimetype="application/json")
    if current_app.config["BODY_SIGN"]:
        response.headers["Body-Sign"] = body_sign_header(key, payload)
    return response
