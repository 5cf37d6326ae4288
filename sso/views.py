"""Browser routes. Thin: read the request, call sso.services / sso.sessions, answer with a page
or a redirect. Every refusal is a LoginError, turned into a page by the handler below."""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError

from common.redirects import safe_next
from extensions import db
from sso import services, sessions
from sso.errors import LoginError
from sso.oidc.landing import landing_url
from sso.web import current_session

log = logging.getLogger(__name__)

bp = Blueprint("sso", __name__, url_prefix="/sso")

BROWSER_KEY = "login_binding"  # in the signed flow cookie: binds each state to this browser
REINITIATED_KEY = "reinitiated"


# --- helpers --------------------------------------------------------------------------------------


def _browser_token() -> str:
    if BROWSER_KEY not in session:
        session[BROWSER_KEY] = secrets.token_urlsafe(32)
    return session[BROWSER_KEY]


def _callback_url() -> str:
    base = current_app.config.get("PUBLIC_URL")
    return f"{base.rstrip('/')}{url_for('sso.callback')}" if base else url_for("sso.callback", _external=True)


def _clear_flow(keep: tuple[str, ...]) -> None:
    kept = {k: session[k] for k in keep if k in session}
    session.clear()
    session.update(kept)


def _start(tenant, next_url):
    target = services.start_login(tenant, browser_token=_browser_token(), redirect_uri=_callback_url(),
                                  next_url=next_url)
    return redirect(target, code=302)


# --- routes ---------------------------------------------------------------------------------------


@bp.get("/login")
def login():
    next_url = safe_next(request.args.get("next"))
    if request.args.get("tenant"):
        return _start(services.find_tenant(request.args["tenant"]), next_url)
    if request.args.get("instance"):
        return _start(services.find_tenant_by_instance(request.args["instance"]), next_url)
    if current_session() is not None and next_url:
        return redirect(next_url)
    return render_template("sso/login.html", next_url=next_url or "")


@bp.post("/login")
def login_form():
    next_url = safe_next(request.form.get("next"))
    if request.form.get("portal"):
        return redirect(services.portal_login_url(), code=302)
    return _start(services.find_tenant(request.form.get("tenant", "")), next_url)


@bp.get("/callback")
def callback():
    args = request.args
    tenant_ref = args.get("tenant") or args.get("tenantId")
    if args.get("error"):
        raise LoginError("idp_denied", f"{args.get('error')[:50]}: {args.get('error_description', '')[:150]}",
                         tenant_id=(tenant_ref or "")[:64] or None)
    code = args.get("code")
    if not code:
        raise LoginError("code_missing", "callback without code", tenant_id=(tenant_ref or "")[:64] or None)
    if args.get("state"):
        pending = services.consume_state(args["state"], browser_token=session.get(BROWSER_KEY),
                                         callback_tenant=tenant_ref)
        session.pop(REINITIATED_KEY, None)
        identity, tokens = services.complete_login(pending.tenant_id, code, redirect_uri=pending.redirect_uri,
                                                   code_verifier=pending.code_verifier)
        return _sign_in(identity, tokens, pending.next_url)
    # No state: a workbench or unified-portal launch (spec §6.1).
    if not tenant_ref:
        raise LoginError("bad_request", "callback with neither state nor tenant")
    tenant = services.find_tenant(tenant_ref)
    if current_app.config["WORKBENCH_LOGIN"] == "direct":
        identity, tokens = services.complete_login(tenant.tenant_id, code, redirect_uri=_callback_url(),
                                                   code_verifier=None)
        return _sign_in(identity, tokens, None)
    # reinitiate: drop the unsolicited code, restart bound to this browser. An IdP that drops our
    # state would send the browser round in circles; the second time we stop and say why.
    if session.get(REINITIATED_KEY) == tenant.tenant_id:
        session.pop(REINITIATED_KEY, None)
        raise LoginError("idp_no_state", "authentication centre returned without state twice",
                         tenant_id=tenant.tenant_id)
    session[REINITIATED_KEY] = tenant.tenant_id
    return _start(tenant, None)


def _sign_in(identity, tokens, next_url):
    raw_id = sessions.sign_in(identity, tokens, previous_cookie=request.cookies.get(sessions.SESSION_COOKIE),
                              request_id=g.request_id, remote_addr=request.remote_addr)
    _clear_flow(keep=(BROWSER_KEY, "lang"))  # nothing else from before the login carries over
    response = redirect(next_url or landing_url() or url_for("sso.home"), code=302)
    response.set_cookie(sessions.SESSION_COOKIE, sessions.sign_session_id(raw_id), httponly=True,
                        secure=current_app.config["COOKIE_SECURE"], samesite="Lax", path="/",
                        max_age=current_app.config["SESSION_ABSOLUTE_HOURS"] * 3600)
    return response


@bp.get("/")
def home():
    user_session = current_session()
    if user_session is None:
        return redirect(url_for("sso.login"))
    return render_template("sso/home.html", me=sessions.identity_of(user_session))


@bp.get("/me")
def me():
    user_session = current_session()
    if user_session is None:
        return jsonify(error="not_signed_in", message="No active session."), 401
    return jsonify(sessions.identity_of(user_session))


@bp.get("/logout")
def logout_page():
    if current_session() is None:
        return redirect(url_for("sso.signed_out"))
    return render_template("sso/logout.html")


@bp.post("/logout")
def logout():
    user_session = current_session()
    target = url_for("sso.signed_out")
    if user_session is not None:
        sessions.sign_out(user_session, reason="logout", request_id=g.request_id, remote_addr=request.remote_addr)
        base = current_app.config.get("PUBLIC_URL")
        return_to = f"{base.rstrip('/')}{target}" if base else url_for("sso.signed_out", _external=True)
        target = services.logout_url(user_session.tenant_id, return_to) or target
    _clear_flow(keep=("lang",))
    response = redirect(target, code=302)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response


@bp.get("/signed-out")
def signed_out():
    return render_template("sso/signed_out.html")


# --- refusals -------------------------------------------------------------------------------------


@bp.errorhandler(LoginError)
def login_refused(exc: LoginError):
    db.session.rollback()
    services.record_login_event("refused", request_id=g.request_id, reason=exc.reason, tenant_id=exc.tenant_id,
                                user_name=exc.user_name, detail=exc.detail, remote_addr=request.remote_addr)
    retry = url_for("sso.login", tenant=exc.tenant_id) if exc.retryable and exc.tenant_id else url_for("sso.login")
    response = make_response(render_template("sso/refused.html", reason=exc.reason, retry_url=retry,
                                             retryable=exc.retryable), exc.status)
    response.headers["Cache-Control"] = "no-store"
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc):
    db.session.rollback()
    log.error("sso_database_error %s", type(exc).__name__)
    return render_template("error.html", status=503, key="unavailable"), 503
