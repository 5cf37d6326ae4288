"""Each tenant's authentication centre, at its domainName {SIM_PUBLIC_URL}/t/<tenantCode>
(spec §6): authorize (with its sign-in page), token, userinfo, logout, and the centre's own
sign-in page. Views are thin: oauth.py holds the rules."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, g, redirect, request, url_for

from simulator.faults import injected_failure
from simulator.oauth import AuthorizePageError, AuthorizeRedirectError, OAuthError
from simulator.services import services
from simulator.state import WORKBENCH, idp_scope
from simulator.web import _, browser_id, check_csrf, error_page, render_page, sign_in_ttl, with_query

log = logging.getLogger(__name__)

bp = Blueprint("idp", __name__, url_prefix="/t/<tenant_code>")


@bp.url_value_preprocessor
def load_tenant(_endpoint, values):
    code = (values or {}).pop("tenant_code", None)
    g.tenant = services().directory.tenant(code) if code else None
    if g.tenant is None:
        abort(404, description=_("error.unknown_tenant"))


@bp.url_defaults
def keep_tenant_code(_endpoint, values):
    if "tenant_code" not in values and g.get("tenant") is not None:
        values["tenant_code"] = g.tenant.tenant_code


def oauth_json(payload: dict, status: int = 200) -> Response:
    # Serialised by hand to keep the documented key order (Flask's JSON provider sorts keys).
    response = Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _signed_in_user():
    """The user this browser is signed in as at this tenant's centre (None if deleted since)."""
    signed = services().store.signed_in(browser_id(), idp_scope(g.tenant.tenant_code))
    return services().directory.user(g.tenant, signed[1]) if signed else None


def _sign_in_page(*, oauth_request=None, error: str | None = None, username: str = "", signed_in_user=None):
    directory = services().directory
    users = directory.users(g.tenant)
    return render_page("idp_login.html", tenant=g.tenant, oauth_request=oauth_request, error=error,
                       username=username, signed_in_user=signed_in_user, form_action=request.full_path.rstrip("?"),
                       user_names=[u.user_name for u in users], demo_rows=[(g.tenant, u) for u in users],
                       app_name=services().seed.app_name(g.lang))


def _sign_in_from_form():
    """Check the posted credentials; on success the browser is signed in at this centre."""
    check_csrf()
    user = services().directory.authenticate(g.tenant, request.form.get("username", ""),
                                             request.form.get("password", ""))
    if user is not None:
        services().store.sign_in(browser_id(create=True), idp_scope(g.tenant.tenant_code), g.tenant.tenant_code,
                                 user.user_name, sign_in_ttl())
    return user


@bp.route("/api/v1/oauth2/authorize", methods=["GET", "POST"])
def authorize():
    s = services()
    try:
        oauth_request = s.oauth.check_authorize_request(g.tenant, request.args)
    except AuthorizePageError as exc:
        return error_page(_("error.authorize_refused"), _(exc.message, value=exc.detail), 400)
    except AuthorizeRedirectError as exc:
        return redirect(with_query(exc.request.redirect_uri, error=exc.error, error_description=exc.description,
                                   state=exc.request.state))
    faults, prompt = _faults(), request.args.get("prompt")
    if prompt and "refuses_prompt" in faults:
        return redirect(with_query(oauth_request.redirect_uri, error="invalid_request",
                                   error_description="unsupported parameter: prompt", state=oauth_request.state))
    if request.method == "POST":
        user = _sign_in_from_form()
        if user is None:
            return _sign_in_page(oauth_request=oauth_request, error=_("signin.failed"),
                                 username=request.form.get("username", ""))
    else:
        user = None if "forgets_sign_in" in faults else _signed_in_user()
        if user is None and prompt == "none" and "honours_prompt" in faults:
            return redirect(with_query(oauth_request.redirect_uri, error="login_required",
                                       error_description="the user is not signed in", state=oauth_request.state))
        if user is None:
            return _sign_in_page(oauth_request=oauth_request)
    code = s.oauth.issue_code(g.tenant, user, client_id=oauth_request.client_id,
                              redirect_uri=oauth_request.redirect_uri, scope=oauth_request.scope,
                              code_challenge=oauth_request.code_challenge)
    log.info("code_issued tenant=%s user=%s via=authorize", g.tenant.tenant_code, user.user_name)
    return redirect(with_query(oauth_request.redirect_uri, code=code, state=oauth_request.state))


def _faults() -> dict[str, float]:
    return services().store.faults().get(g.tenant.tenant_code, {})


@bp.post("/api/v1/oauth2/token")
def token():
    faults = _faults()
    failure = injected_failure(faults, "token", services().sleep)
    if failure is not None:
        return failure
    auth = request.authorization
    basic = (auth.username or "", auth.password or "") if auth is not None and auth.type == "basic" else None
    try:
        answer = services().oauth.token(g.tenant, request.form, basic, codes_expired="expired_codes" in faults)
    except OAuthError as exc:
        log.info("token_refused tenant=%s error=%s reason=%s", g.tenant.tenant_code, exc.error, exc.reason)
        response = oauth_json(exc.as_json(), exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="oauth2/client"'
        return response
    return oauth_json(answer)


@bp.get("/api/v1/oauth2/userinfo")
def userinfo():
    faults = _faults()
    failure = injected_failure(faults, "userinfo", services().sleep)
    if failure is not None:
        return failure
    try:
        info = services().oauth.userinfo(g.tenant, request.headers.get("Authorization"),
                                         wrong_tenant="wrong_tenant" in faults,
                                         domain_id_tenant="domain_id_tenant" in faults)
    except OAuthError as exc:
        log.info("userinfo_refused tenant=%s reason=%s", g.tenant.tenant_code, exc.reason)
        response = oauth_json(exc.as_json(), exc.status)
        response.headers["WWW-Authenticate"] = 'Bearer realm="oauth2-resource", error="unauthorized"'
        return response
    return oauth_json(info)


def _logout_target_allowed(url: str) -> bool:
    """Back to a registered app (bridge or login address) or to the simulator itself; never to a
    stranger's site (an open redirect on an identity provider is a phishing tool)."""
    cfg = current_app.config
    try:
        target = urlsplit(url)
        if target.scheme not in ("http", "https") or not target.hostname:
            return False
        origins = {(u.scheme, u.hostname, u.port) for u in map(urlsplit, (cfg["BRIDGE_URL"], cfg["APP_LOGIN_URL"],
                                                                           cfg["PUBLIC_URL"]))}
        return (target.scheme, target.hostname, target.port) in origins
    except ValueError:
        return False


@bp.get("/api/v1/logout")
def logout():
    s, code, sid = services(), g.tenant.tenant_code, browser_id()
    scopes = [idp_scope(code)]
    # The workbench session rides on this centre's sign-in (OneAccess is the workbench's IdP).
    workbench = s.store.signed_in(sid, WORKBENCH)
    if workbench and workbench[0] == code:
        scopes.append(WORKBENCH)
    s.store.sign_out(sid, *scopes)
    target = request.args.get("redirect_url")
    if not target:
        return redirect(url_for(".centre_login"))
    if not _logout_target_allowed(target):
        return error_page(_("error.logout_target"), _("error.logout_target_detail", value=target[:300]), 400)
    return redirect(target)


@bp.route("/login", methods=["GET", "POST"])
def centre_login():
    """The centre's own sign-in page: where logout lands without a redirect_url."""
    if request.method == "POST":
        user = _sign_in_from_form()
        if user is None:
            return _sign_in_page(error=_("signin.failed"), username=request.form.get("username", ""))
        return redirect(url_for(".centre_login"))
    return _sign_in_page(signed_in_user=_signed_in_user())


@bp.get("/")
def centre_home():
    return redirect(url_for(".centre_login"))
