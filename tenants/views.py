"""KooGallery's signed POSTs. Every answer is HTTP 200 JSON with a six-digit resultCode; 000000
only after the commit (spec §2, DESIGN invariants 2–3)."""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from common.clock import utcnow
from common.metrics import KIT_UNKNOWN_INSTANCE, SYNC_CALLS
from extensions import db
from keys import keyring
from tenants import services
from tenants.audit import body_for_audit, record_sync_call, unverified_summary
from tenants.errors import ResultCode, SyncError, invalid
from tenants.models import SyncCall
from tenants.parsing import check_interface, parse_json_object
from tenants.signing import body_sign_header, check_signature_headers, verify_basic_signature, verify_kit_signature

log = logging.getLogger(__name__)

bp = Blueprint("tenants", __name__)

KIT_INTERFACES = services.KIT_INTERFACES


def _kit_apply(interface: str, body: dict):
    return services.note_unknown_instance(_kit_dispatch(interface, body), body)


def _kit_dispatch(interface: str, body: dict):
    cfg = current_app.config
    if interface == "tenantSync":
        return services.apply_tenant_sync(body, allow_insecure_idp=cfg["ALLOW_INSECURE_IDP"],
                                          allowed_networks=cfg["IDP_ALLOWED_NETWORKS"])
    if interface == "applicationSync":
        keys = keyring()
        return services.apply_application_sync(body, private_key=keys.private_key, secret_box=keys.data)
    if interface == "authSync":
        return services.apply_auth_sync(body, max_users=cfg["MAX_AUTH_SYNC_USERS"])
    if interface == "singleOrgSync":
        return services.apply_single_org_sync(body)
    return services.apply_all_org_sync(body)


def _activity(body: dict) -> str | None:
    activity = body.get("activity")
    return activity if isinstance(activity, str) and activity in services.BASIC_ACTIVITIES else None


def _basic_apply(body: dict):
    activity = _activity(body)
    if activity is None:
        raise invalid(f"activity must be one of {', '.join(services.BASIC_ACTIVITIES)}")
    handler = services.BASIC_ACTIVITIES[activity]
    if handler is services.query_instance:
        return handler(body, login_url_for=_login_url_for)
    if handler is services.change_instance_check:
        return handler(body, seats_count_users=current_app.config["SEATS_FROM_LINEAR_VALUE"])
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
    """The one envelope of every sync call: verify, apply, audit, answer (DESIGN invariants 2, 3, 11)."""
    cfg = current_app.config
    started = time.monotonic()
    call = _Call(interface)
    signature, timestamp, nonce = headers
    try:
        if request.method != "POST":
            raise invalid(f"{request.method} is not accepted; KooGallery calls use POST")
        if request.mimetype != "application/json":
            raise invalid("Content-Type must be application/json")
        try:
            call.raw = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise invalid(f"body is larger than {cfg['MAX_BODY_BYTES']} bytes") from None
        sig_headers = check_signature_headers(signature, timestamp, nonce, int(time.time() * 1000),
                                              cfg["SIGNATURE_WINDOW_SECONDS"] * 1000)
        call.body = parse_json_object(call.raw, cfg["MAX_JSON_DEPTH"])
        call.verified = verify(keys, sig_headers, timestamp, call.raw, call.body)
        if interface == "basic":
            call.interface = f"basic:{_activity(call.body) or 'unknown'}"
        check_interface(interface.removeprefix("kit:"), call.body)
        call.debug = _is_debug(call.body)
        resend = services.claim_nonce(nonce, services.request_hash(call.interface, call.raw), cfg["NONCE_TTL_SECONDS"])
        if resend is not None:
            call.answer, call.resend = resend.answer, True
        else:
            call.outcome = apply(call.body)
            call.answer = {"resultCode": ResultCode.SUCCESS, "resultMsg": call.outcome.message[:255],
                           **call.outcome.extra}
            services.remember_answer(nonce, call.answer)
        # The audit row commits with the change: one transaction, and no success without its record.
        db.session.connection().execute(db.insert(SyncCall.__table__), _audit_fields(call, nonce, started)
                                        | {"created_at": utcnow()})
        db.session.commit()
        call.audited = True
        if call.outcome is not None and call.outcome.unknown_instance:
            KIT_UNKNOWN_INSTANCE.labels(call.interface).inc()
    except SyncError as exc:
        db.session.rollback()
        call.answer = {"resultCode": exc.code, "resultMsg": exc.message[:255]}
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("sync_database_error interface=%s", call.interface)
        call.answer = {"resultCode": ResultCode.INTERNAL_ERROR, "resultMsg": "internal error (database); please retry"}
    except Exception:  # the caller must get KooGallery JSON, never an HTML 500
        db.session.rollback()
        log.exception("sync_unexpected_error interface=%s", call.interface)
        call.answer = {"resultCode": ResultCode.INTERNAL_ERROR, "resultMsg": "internal error; please retry"}

    code = call.answer["resultCode"]
    SYNC_CALLS.labels(call.interface, code).inc()
    if not call.audited:  # refusals and failures: their own transaction, after the rollback
        record_sync_call(**_audit_fields(call, nonce, started))
    log.info("sync_call interface=%s result=%s tenant=%s debug=%s resend=%s duration_ms=%d reason=%r", call.interface,
             code, _tenant_of(call), call.debug, call.resend, (time.monotonic() - started) * 1000,
             call.answer["resultMsg"] if code != ResultCode.SUCCESS else "")
    return _answer(call.answer, key=keys[0])


class _Call:
    """What one sync call has got to, for its audit row and its log line."""

    def __init__(self, interface: str):
        self.interface = interface
        self.raw, self.body, self.verified, self.outcome = b"", None, None, None
        self.answer: dict = {}
        self.debug = self.resend = self.audited = False


def _is_debug(body: dict) -> bool:
    value = body.get("testFlag")
    return value == 1 or (isinstance(value, str) and value.strip() == "1")


def _tenant_of(call: _Call):
    return call.outcome.tenant_id if call.outcome else _field(call.body, "tenantId")


def _audit_fields(call: _Call, nonce, started) -> dict:
    message = call.answer["resultMsg"]
    if call.resend:
        message = f"re-send: first answer repeated ({message})"
    elif call.outcome is not None and call.outcome.audit_note:
        message = f"{message}; {call.outcome.audit_note}"
    return dict(
        request_id=g.request_id, interface=call.interface, tenant_id=_tenant_of(call),
        instance_id=call.outcome.instance_id if call.outcome else _field(call.body, "instanceId"),
        nonce=(nonce or "")[:128] if call.verified else None, result_code=call.answer["resultCode"],
        result_msg=message[:255], duration_ms=int((time.monotonic() - started) * 1000),
        remote_addr=(request.remote_addr or "")[:64], signature_form=str(call.verified) if call.verified else None,
        debug=call.debug,
        # Anyone can post here: before the signature is verified only a fixed-size summary is kept.
        body=(body_for_audit(call.body, call.raw, current_app.config["AUDIT_BODY_MAX_CHARS"]) if call.verified
              else unverified_summary(call.raw)),
    )


def _field(body, name):
    value = body.get(name) if isinstance(body, dict) else None
    return str(value)[:64] if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def _answer_refusal(interface, error: SyncError, *, key):
    SYNC_CALLS.labels("kit:unknown", error.code).inc()
    record_sync_call(request_id=g.request_id, interface=interface, tenant_id=None, instance_id=None, nonce=None,
                     result_code=error.code, result_msg=error.message[:255], duration_ms=0,
                     remote_addr=(request.remote_addr or "")[:64], signature_form=None, debug=False, body=None)
    return _answer({"resultCode": error.code, "resultMsg": error.message[:255]}, key=key)


def _answer(answer: dict, *, key: str) -> Response:
    payload = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = Response(payload, status=200, mimetype="application/json")
    if current_app.config["BODY_SIGN"]:
        response.headers["Body-Sign"] = body_sign_header(key, payload)
    return response


@bp.errorhandler(Exception)
def unexpected_error(exc: Exception):
    """Last resort: whatever escaped the envelope, KooGallery still gets its JSON (never an HTML 500)."""
    db.session.rollback()
    log.error("sync_unhandled_error path=%r error=%s", request.path[:100], type(exc).__name__)
    answer = {"resultCode": ResultCode.INTERNAL_ERROR, "resultMsg": "internal error; please retry"}
    cfg = current_app.config
    key = cfg["KIT_ACCESS_KEY"] if "/produceAPI/" in request.path else cfg["BASIC_ACCESS_KEY"]
    return _answer(answer, key=key)
