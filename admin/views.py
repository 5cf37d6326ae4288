"""The operator console's routes. Thin: check the operator, parse the request, call admin.services
or admin.accounts, answer with a page or a redirect. Every state change is a POST with a CSRF
token (CSRFProtect is global); every page is `no-store`."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from math import ceil
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError

from admin import accounts, services
from admin import sessions as op_sessions
from admin.chart import stacked_bars
from admin.errors import AdminError
from admin.i18n import label
from admin.models import Operator
from common.clock import utcnow
from common.redirects import safe_next
from extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Reachable without an operator session: the two sign-in steps.
PUBLIC_ENDPOINTS = {"admin.login", "admin.login_form", "admin.code", "admin.code_form"}
# Between the password and the TOTP code, in the signed flow cookie: who, since when, where next.
PENDING_KEY = "admin_pending"
PENDING_SECONDS = 300
CONSOLE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
               "base-uri 'none'")


# --- every request --------------------------------------------------------------------------------


@bp.before_request
def require_operator():
    found = op_sessions.active_operator(request.cookies.get(op_sessions.COOKIE))
    g.operator_session, g.operator = found or (None, None)
    if g.operator is None and request.endpoint not in PUBLIC_ENDPOINTS:
        here = request.path + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
        return redirect(url_for("admin.login", next=here if request.method == "GET" else None), code=303)
    return None


@bp.after_request
def never_cache_or_frame(response):
    response.headers["Cache-Control"] = "no-store"
    # No scripts, no images, forms only to ourselves, never framed (clickjacking of the buttons).
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# Detail pages highlight their list in the navigation.
SECTION_OF = {"admin.index": "admin.index", "admin.tenant": "admin.tenants", "admin.sync_call": "admin.sync_log", "admin.app_detail": "admin.apps"}


@bp.context_processor
def console_helpers():
    return {"brand": _console_name(), "label": label, "operator": g.get("operator"),
            "when": _when, "sync_time": _sync_time, "zone": current_app.config["ADMIN_TIMEZONE"], "page_url": _page_url, "section": SECTION_OF.get(request.endpoint, request.endpoint)}


def _console_name() -> str:
    """The console's title names the vendor's app (BRIDGE_BRAND_*) when one is set."""
    brand = current_app.extensions["branding"]
    owner = brand.app_name or brand.vendor_name
    return f"{owner} · {gettext('admin.app_name')}" if owner else gettext("admin.app_name")


def _when(value) -> str:
    """In the operator's zone (ADMIN_TIMEZONE, named in the column headers); stored values are UTC,
    naive from SQLite."""
    if not value:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(current_app.config["ADMIN_TIMEZONE"])).strftime("%Y-%m-%d %H:%M:%S")


def _sync_time(stamp: str | None) -> str:
    """KooGallery's yyyyMMddHHmmssSSS sync stamp (UTC milliseconds) as a time like the others."""
    try:
        return _when(datetime.strptime(stamp or "", "%Y%m%d%H%M%S%f"))
    except ValueError:
        return stamp or ""


def _page_url(prefix: str = "", direction: str | None = None, cursor: str | None = None) -> str:
    """This page's URL, filters kept, with the list `prefix` names at another position: after or
    before (`direction`) a cursor, or at its top."""
    moved = (f"{prefix}after", f"{prefix}before")
    # url_for reserves _names
    args = {k: v for k, v in request.args.items() if not k.startswith("_") and k not in moved}
    if direction:
        args[f"{prefix}{direction}"] = cursor
    return url_for(request.endpoint, **{**args, **(request.view_args or {})})


@bp.errorhandler(AdminError)
def refused(exc: AdminError):
    db.session.rollback()
    return render_template("admin/error.html", key=exc.key, status=exc.status), exc.status


@bp.errorhandler(CSRFError)
def form_expired(exc: CSRFError):
    return render_template("admin/error.html", key="csrf", status=400), 400


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc):
    db.session.rollback()
    log.error("admin_database_error %s", type(exc).__name__)
    return render_template("admin/error.html", key="unavailable", status=503), 503


# --- request parsing ------------------------------------------------------------------------------


def _position(prefix: str = "") -> services.Position:
    """Where the list `prefix` names starts on this page (the cursors are checked by the service)."""
    return services.Position(after=request.args.get(f"{prefix}after") or None,
                             before=request.args.get(f"{prefix}before") or None)


def _text_arg(name: str, max_chars: int = 64) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > max_chars:
        raise AdminError("bad_filter", 400)
    return value or None


def _choice_arg(name: str, is_allowed) -> str | None:
    value = _text_arg(name)
    if value is not None and not is_allowed(value):
        raise AdminError("bad_filter", 400)
    return value


def _client_address() -> str:
    return (request.remote_addr or "-")[:64]


def _next_target(raw: str | None) -> str | None:
    target = safe_next(raw)
    path = urlsplit(target).path if target else ""
    if path.startswith("/admin/") and path not in ("/admin/login", "/admin/login/code", "/admin/logout"):
        return target
    return None


def _audit_fields() -> dict:
    return {"operator": g.operator.username, "remote_addr": _client_address(), "request_id": g.get("request_id")}


# --- signing in and out ---------------------------------------------------------------------------


def _login_page(status: int = 200, error: str | None = None, username: str = "", next_url: str | None = None,
                retry_after: int | None = None):
    response = make_response(render_template("admin/login.html", error=error, username=username,
                                             next_url=next_url or "", retry_minutes=ceil((retry_after or 0) / 60)),
                             status)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _sign_in_refused(exc: accounts.SignInError, username: str, next_url: str | None, step: str):
    if exc.reason == "locked":
        # Only logged: a flood of attempts refused while locked must not flood the audit.
        log.warning("admin_sign_in_locked user=%s addr=%s", accounts.normalise_username(username), _client_address())
        session.pop(PENDING_KEY, None)
        retry_after = max(60, int((exc.locked_until - utcnow()).total_seconds()))
        return _login_page(429, "locked", username, next_url, retry_after)
    services.record_now("sign_in_refused", operator=accounts.normalise_username(username) or None,
                        detail=f"{step}: {exc.reason}", remote_addr=_client_address(), request_id=g.get("request_id"))
    if exc.reason == "bad_code":
        return make_response(render_template("admin/code.html", error="bad_code"), 401)
    if exc.reason == "code_expired":
        session.pop(PENDING_KEY, None)
        return _login_page(401, "code_expired", username, next_url)
    return _login_page(401, "bad_credentials", username, next_url)


def _signed_in(operator, next_url: str | None):
    previous = op_sessions.find_operator_session(request.cookies.get(op_sessions.COOKIE))
    if previous is not None:
        op_sessions.end_operator_session(previous, "replaced")  # a new id at every sign-in
    raw_id = op_sessions.open_operator_session(operator, _client_address())
    services.record("sign_in", operator=operator.username, detail="password+totp" if operator.has_totp else "password",
                    remote_addr=_client_address(), request_id=g.get("request_id"))
    db.session.commit()
    session.pop(PENDING_KEY, None)
    response = redirect(next_url or url_for("admin.tenants"), code=303)
    response.set_cookie(op_sessions.COOKIE, raw_id, httponly=True, secure=current_app.config["COOKIE_SECURE"],
                        samesite="Strict", path=op_sessions.COOKIE_PATH)
    return response


@bp.get("/login")
def login():
    next_url = _next_target(request.args.get("next"))
    if g.operator is not None:
        return redirect(next_url or url_for("admin.tenants"))
    return _login_page(next_url=next_url)


@bp.post("/login")
def login_form():
    username = request.form.get("username", "")[:256]
    next_url = _next_target(request.form.get("next"))
    try:
        operator = accounts.check_password(username, request.form.get("password", ""), _client_address())
    except accounts.SignInError as exc:
        return _sign_in_refused(exc, username, next_url, "password")
    if operator.has_totp:
        session[PENDING_KEY] = {"operator_id": operator.id, "at": int(time.time()), "next": next_url}
        return redirect(url_for("admin.code"), code=303)
    return _signed_in(operator, next_url)


def _pending() -> dict | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    return pending


@bp.get("/login/code")
def code():
    if _pending() is None:
        return redirect(url_for("admin.login"), code=303)
    return render_template("admin/code.html", error=None)


@bp.post("/login/code")
def code_form():
    pending = _pending()
    if pending is None:
        session.pop(PENDING_KEY, None)
        return _login_page(401, "code_expired")
    try:
        operator = accounts.check_code(pending["operator_id"], request.form.get("code", "")[:32], _client_address())
    except accounts.SignInError as exc:
        operator = db.session.get(Operator, pending["operator_id"])
        return _sign_in_refused(exc, operator.username if operator else "", pending.get("next"), "code")
    return _signed_in(operator, pending.get("next"))


@bp.post("/logout")
def logout():
    op_sessions.end_operator_session(g.operator_session, "logout")
    services.record("sign_out", **_audit_fields())
    db.session.commit()
    flash(gettext("admin.signed_out"))
    response = redirect(url_for("admin.login"), code=303)
    response.delete_cookie(op_sessions.COOKIE, path=op_sessions.COOKIE_PATH)
    return response


# --- pages ----------------------------------------------------------------------------------------


@bp.get("/")
def index():
    """The console's home: sign-ins and sync calls per hour over the last 24 hours, the last failures."""
    day = services.last_day()
    zone = current_app.config["ADMIN_TIMEZONE"]
    return render_template("admin/home.html", day=day, sign_ins=stacked_bars(day.sign_ins, "success", zone),
                           syncs=stacked_bars(day.sync_calls, "000000", zone))


@bp.get("/tenants")
def tenants():
    search = _text_arg("q", 128)
    page, summaries = services.tenant_overview(_position(), search)
    return render_template("admin/tenants.html", page=page, summaries=summaries, search=search or "")


@bp.get("/tenants/<tenant_id>")
def tenant(tenant_id):
    detail = services.tenant_detail(tenant_id, _position(), _position("dept_"))
    return render_template("admin/tenant.html", d=detail)


@bp.post("/tenants/<tenant_id>/end-sessions")
def end_tenant_sessions(tenant_id):
    ended = services.end_tenant_sessions(tenant_id, None, **_audit_fields())
    flash(gettext("admin.ended_tenant", count=ended))
    return redirect(url_for("admin.tenant", tenant_id=tenant_id), code=303)


@bp.post("/tenants/<tenant_id>/end-user-sessions")
def end_user_sessions(tenant_id):
    user_name = request.form.get("user_name", "").strip()
    if not user_name or len(user_name) > 64:
        raise AdminError("bad_filter", 400)
    ended = services.end_tenant_sessions(tenant_id, user_name, **_audit_fields())
    flash(gettext("admin.ended_user", count=ended, user=user_name))
    return redirect(url_for("admin.tenant", tenant_id=tenant_id), code=303)


@bp.get("/sync")
def sync_log():
    tenant_id = _text_arg("tenant")
    result_code = _choice_arg("code", lambda v: v == "failed" or re.fullmatch(r"[0-9]{6}", v))
    page = services.sync_calls(_position(), tenant_id, result_code)
    return render_template("admin/sync_log.html", page=page, codes=services.sync_result_codes(),
                           filters={"tenant": tenant_id or "", "code": result_code or ""})


@bp.get("/sync/<int:call_id>")
def sync_call(call_id):
    call = services.get_sync_call(call_id)
    return render_template("admin/sync_call.html", call=call, body=services.readable_body(call))


@bp.get("/logins")
def login_events():
    filters = {"tenant": _text_arg("tenant"), "user": _text_arg("user"),
               "outcome": _choice_arg("outcome", services.LOGIN_OUTCOMES.__contains__), "reason": _text_arg("reason", 32)}
    page = services.login_events(_position(), filters["tenant"], filters["user"], filters["outcome"], filters["reason"])
    return render_template("admin/logins.html", page=page, outcomes=services.LOGIN_OUTCOMES,
                           filters={k: v or "" for k, v in filters.items()})


@bp.get("/apps")
def apps():
    return render_template("admin/apps.html", page=services.oidc_clients(_position()))


@bp.get("/apps/<client_id>")
def app_detail(client_id):
    return render_template("admin/app.html", d=services.oidc_client_detail(client_id))


@bp.get("/audit")
def audit():
    filters = {"operator": _text_arg("operator"), "action": _text_arg("action", 32)}
    page = services.audit_entries(_position(), filters["operator"], filters["action"])
    return render_template("admin/audit.html", page=page, actions=services.audit_actions(),
                           filters={k: v or "" for k, v in filters.items()})
