"""Browser routes. Thin: read the request, call sso.services / sso.sessions, answer with a page
or a redirect. Every refusal is a LoginError, turned into a page by the handler below."""

from __future__ import annotations

import logging
import secrets
import time

from cryptography.fernet import InvalidToken
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError

from common.redirects import safe_next
from extensions import db
from keys import keyring
from sso import admission, services, sessions
from sso.branding import LOGO_TYPES, logo_path
from sso.errors import REASONS, LoginError
from sso.oidc.landing import landing_url
from sso.web import current_session

log = logging.getLogger(__name__)

bp = Blueprint("sso", __name__, url_prefix="/sso")

BROWSER_KEY = "login_binding"  # in the signed flow cookie: binds each state to this browser
KEPT_CODE_KEY = "kept_code"  # a workbench code kept (encrypted) while its login is re-initiated
KEPT_CODE_SECONDS = 120
REFUSAL_KEY = "refusal"  # the last refusal this browser saw: a language switch shows it again


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


def _external(endpoint: str, **values) -> str:
    base = current_app.config.get("PUBLIC_URL")
    return f"{base.rstrip('/')}{url_for(endpoint, **values)}" if base else url_for(endpoint, _external=True, **values)


def _start(facts, next_url, *, reinitiated: bool = False):
    target = services.start_login(facts, browser_token=_browser_token(), redirect_uri=_callback_url(),
                                  next_url=next_url, client=request.remote_addr, reinitiated=reinitiated)
    return redirect(target, code=302)


def _keep_code(tenant_id: str, code: str) -> None:
    session[KEPT_CODE_KEY] = {"tenant": tenant_id, "code": keyring().data.encrypt(code),
                              "until": int(time.time()) + KEPT_CODE_SECONDS}


def _take_kept_code(tenant_id: str) -> str | None:
    kept = session.pop(KEPT_CODE_KEY, None)
    if not isinstance(kept, dict) or kept.get("tenant") != tenant_id or kept.get("until", 0) < time.time():
        return None
    try:
        return keyring().data.decrypt(kept["code"])
    except InvalidToken:
        return None


def _workbench_redirect_uri() -> str | None:
    """A workbench/portal code was issued for the registered login address, not for an authorize
    request of ours: the token request leaves redirect_uri out unless the deployment says otherwise."""
    return _callback_url() if current_app.config["IDP_WORKBENCH_REDIRECT_URI"] == "send" else None


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
    typed = request.form.get("tenant", "")
    try:
        facts = services.find_tenant(typed)
    except LoginError as exc:
        # A mistyped company code: said on the form, with what was typed kept, not a dead-end page.
        _record_refusal(exc)
        return render_template("sso/login.html", next_url=next_url or "", typed=typed[:64],
                               error=exc.reason), exc.status
    return _start(facts, next_url)


@bp.get("/callback")
def callback():
    args = request.args
    tenant_ref = args.get("tenant") or args.get("tenantId")
    state = args.get("state")
    if args.get("error"):
        denied = LoginError("idp_denied", f"{args.get('error')[:50]}: {args.get('error_description', '')[:150]}",
                            tenant_id=(tenant_ref or "")[:64] or None)
        try:
            pending = services.consume_state(state or "", browser_token=session.get(BROWSER_KEY),
                                             callback_tenant=tenant_ref)
        except LoginError:
            raise denied from None  # the centre's answer is what the person needs to hear
        kept = _take_kept_code(pending.tenant_id)
        if pending.reinitiated and kept:
            # The centre could not answer our re-initiated authorize silently: ask the person.
            return _confirm_workbench_code(pending.tenant_id, kept)
        raise denied
    code = args.get("code")
    if not code:
        raise LoginError("code_missing", "callback without code", tenant_id=(tenant_ref or "")[:64] or None)
    if state:
        pending = services.consume_state(state, browser_token=session.get(BROWSER_KEY), callback_tenant=tenant_ref)
        _take_kept_code(pending.tenant_id)  # the bound login came back: the kept code is not needed
        identity, tokens = services.complete_login(pending.tenant_id, code, redirect_uri=pending.redirect_uri,
                                                   code_verifier=pending.code_verifier)
        return _finish(identity, tokens, pending.next_url)
    # No state: a workbench or unified-portal launch (spec §6.1). DESIGN invariant 8: never open a
    # session someone else planted, never make a person sign in twice.
    if not tenant_ref:
        raise LoginError("bad_request", "callback with neither state nor tenant")
    facts = services.find_tenant(tenant_ref)
    tenant_id = facts.tenant.tenant_id
    policy = current_app.config["WORKBENCH_LOGIN"]
    if policy == "direct":
        identity, tokens = services.complete_login(tenant_id, code, redirect_uri=_workbench_redirect_uri(),
                                                   code_verifier=None, facts=facts)
        return _finish(identity, tokens, None)
    if policy == "confirm" or _take_kept_code(tenant_id) is not None:
        # Asked for, or the centre came back without our state again: the person decides.
        return _confirm_workbench_code(tenant_id, code, facts)
    _keep_code(tenant_id, code)
    return _start(facts, None, reinitiated=True)


def _confirm_workbench_code(tenant_id: str, code: str, facts=None):
    identity, tokens = services.complete_login(tenant_id, code, redirect_uri=_workbench_redirect_uri(),
                                               code_verifier=None, facts=facts)
    current = current_session()
    if current is not None and _same_account(current, identity):
        return _sign_in(identity, tokens, None)
    sessions.hold_sign_in(identity, tokens, browser_token=_browser_token(), kind="workbench", next_url=None)
    return _personal(render_template("sso/confirm.html", new=identity, current=_account_of(current)))


def _finish(identity, tokens, next_url):
    """A login came back for this browser. Replacing another account's session needs the person's
    click (DESIGN invariant 9): no GET alone moves anyone into another account."""
    current = current_session()
    if current is None or _same_account(current, identity):
        return _sign_in(identity, tokens, next_url)
    sessions.hold_sign_in(identity, tokens, browser_token=_browser_token(), kind="switch", next_url=next_url)
    return _personal(render_template("sso/confirm.html", new=identity, current=_account_of(current)))


def _same_account(user_session, identity) -> bool:
    return (user_session.tenant_id, user_session.user_name) == (identity.tenant_id, identity.user_name)


def _account_of(user_session):
    return sessions.identity_of(user_session) if user_session is not None else None


def _personal(body, status: int = 200):
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Cookie")
    return response


def _sign_in(identity, tokens, next_url):
    target = next_url or landing_url() or url_for("sso.home")  # read in the transaction sign_in commits
    raw_id = sessions.sign_in(identity, tokens, previous_cookie=request.cookies.get(sessions.SESSION_COOKIE),
                              request_id=g.request_id, remote_addr=request.remote_addr)
    _clear_flow(keep=(BROWSER_KEY, "lang"))  # nothing else from before the login carries over
    response = redirect(target, code=302)
    response.set_cookie(sessions.SESSION_COOKIE, sessions.sign_session_id(raw_id), httponly=True,
                        secure=current_app.config["COOKIE_SECURE"], samesite="Lax", path="/",
                        max_age=current_app.config["SESSION_ABSOLUTE_HOURS"] * 3600)
    return response


@bp.post("/continue")
def continue_sign_in():
    """The person's click on the confirmation page (CSRF-checked like every form)."""
    browser = session.get(BROWSER_KEY)
    action = request.form.get("action")
    if action in ("keep", "other"):
        held = sessions.held_sign_in(browser)
        sessions.drop_held_sign_in(browser)
        if action == "other" and held is not None:
            # Sign out at the tenant's centre, then start again there with whoever signs in.
            back = _external("sso.login", tenant=held.identity.tenant_id)
            return redirect(services.logout_url(held.identity.tenant_id, back) or back)
        return redirect(url_for("sso.home"))
    held = sessions.held_sign_in(browser, take=True)
    if held is None:
        raise LoginError("confirm_expired", "no held sign-in for this browser")
    admission.recheck(held.identity.tenant_id, held.identity.user_name, jit=held.identity.jit)
    return _sign_in(held.identity, held.tokens, held.next_url)


@bp.get("/continue")
def confirm_page():
    """The confirmation page again (after a language switch); the held sign-in stays held."""
    held = sessions.held_sign_in(session.get(BROWSER_KEY))
    if held is None:
        return redirect(url_for("sso.login"))
    current = current_session()
    return _personal(render_template("sso/confirm.html", new=held.identity,
                                     current=_account_of(current) if held.kind == "switch" else None))


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


@bp.get("/brand/logo")
def brand_logo():
    path = logo_path(current_app.extensions["branding"], current_app.instance_path)
    if path is None:
        abort(404)
    response = send_file(path, mimetype=LOGO_TYPES[path.suffix.lower()], max_age=3600)
    # An SVG opened on its own is a document of the bridge's origin: no script, no loads, no forms.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


@bp.post("/other-account")
def use_another_account():
    """The refusal page's "use another account": the tenant's centre still remembers the person, so
    signing in again would refuse the same account. Sign out there, then start again at that
    tenant. A POST with CSRF although nothing on the bridge changes: a link would let any page
    sign a visitor out of their company's centre. The tenant is the one this browser's refusal
    named (kept in the signed flow cookie), never one from the form."""
    refusal = session.pop(REFUSAL_KEY, None)
    tenant_id = refusal.get("tenant") if isinstance(refusal, dict) else None
    if not tenant_id:
        return redirect(url_for("sso.login"), code=303)
    again = _external("sso.login", tenant=tenant_id)
    return redirect(services.logout_url(tenant_id, again) or again, code=303)


# --- refusals -------------------------------------------------------------------------------------


def _record_refusal(exc: LoginError) -> None:
    db.session.rollback()
    services.record_login_event("refused", request_id=g.request_id, reason=exc.reason, tenant_id=exc.tenant_id,
                                user_name=exc.user_name, detail=exc.detail, remote_addr=request.remote_addr)


def _refusal_page(refusal: dict):
    reason, tenant_id = refusal["reason"], refusal.get("tenant")
    status, retryable = REASONS[reason]
    retry = url_for("sso.login", tenant=tenant_id) if retryable and tenant_id else url_for("sso.login")
    response = make_response(render_template("sso/refused.html", reason=reason, retry_url=retry, retryable=retryable,
                                             shown_request_id=refusal.get("request_id")), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(LoginError)
def login_refused(exc: LoginError):
    _record_refusal(exc)
    session[REFUSAL_KEY] = {"reason": exc.reason, "tenant": exc.tenant_id, "request_id": g.request_id}
    response = _refusal_page(session[REFUSAL_KEY])
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.get("/refused")
def refusal():
    """This browser's last refusal once more (its language switch links here): the callback that
    was refused is not run again, so the reason shown stays the real one."""
    remembered = session.get(REFUSAL_KEY)
    if not isinstance(remembered, dict) or remembered.get("reason") not in REASONS:
        return redirect(url_for("sso.login"))
    return _refusal_page(remembered)


@bp.errorhandler(SQLAlchemyError)
def database_unavailable(exc):
    db.session.rollback()
    log.error("sso_database_error %s", type(exc).__name__)
    return render_template("error.html", status=503, key="unavailable"), 503
