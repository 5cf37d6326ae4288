"""OIDC endpoints for the vendor's apps. Thin: Authlib's AuthorizationServer does the protocol;
these views supply the bridge session and turn errors into the caller's format."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import validate_csrf
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from wtforms import ValidationError

from common.clock import aware
from extensions import db
from keys.signing import public_jwks
from sso import sessions
from sso.oidc.models import OidcClient
from sso.oidc.server import (
    SCOPES,
    OidcUser,
    authorization_server,
    claims_for,
    issuer,
    require_oauth,
    session_sid,
    user_for_session_hash,
)
from sso.web import current_session

bp = Blueprint("oidc", __name__)


@bp.get("/.well-known/openid-configuration")
def discovery():
    base = issuer()
    return jsonify({
        "issuer": base,
        "authorization_endpoint": f"{base}{url_for('oidc.authorize')}",
        "token_endpoint": f"{base}{url_for('oidc.token')}",
        "userinfo_endpoint": f"{base}{url_for('oidc.userinfo')}",
        "jwks_uri": f"{base}{url_for('oidc.jwks')}",
        "end_session_endpoint": f"{base}{url_for('oidc.logout')}",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "name",
                             "preferred_username", "email", "phone_number", "tenant", "tenant_code", "tenant_name",
                             "role", "org_code", "org_name", "instance_id"],
        "prompt_values_supported": ["none", "login"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    })


@bp.get("/oidc/jwks")
def jwks():
    response = jsonify(public_jwks(current_app.config["OIDC_ID_TOKEN_LIFETIME"]))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _login_redirect(tenant_hint: str | None, next_path: str):
    params = {"next": next_path}
    if tenant_hint:
        params["tenant"] = tenant_hint
    return redirect(f"{url_for('sso.login')}?{urlencode(params)}")


def _tenant_hint() -> str | None:
    hint = request.args.get("tenant")
    login_hint = request.args.get("login_hint") or ""
    if not hint and "@" in login_hint:  # user@tenantCode
        hint = login_hint.rsplit("@", 1)[1]
    return (hint or "")[:64] or None


# After a forced re-authentication (prompt=login, or max_age elapsed) the request comes back with
# this marker: a session opened at or after that millisecond is fresh enough (a second would let a
# session opened earlier in the same second pass). It only ever asks for a
# newer login than the visitor has, so tampering with it helps nobody (the ID token's auth_time
# tells the app how fresh the login is, as OpenID Connect Core §3.1.2.1 has apps check).
AUTH_AFTER = "auth_after"


@bp.get("/oidc/authorize")
def authorize():
    """A GET changes nothing: the request is validated first (unknown client, unregistered
    redirect: an error page, nothing else happens); a re-authentication leaves the current session
    alone and sends the person through a new login, which replaces it when it completes."""
    user_session = current_session()
    hint = _tenant_hint()
    if user_session is not None and hint and not _same_tenant(user_session.tenant_id, hint):
        user_session = None  # the app asked for another company: sign in there
    fresh_login_needed = user_session is not None and _needs_fresh_login(user_session)
    user = OidcUser(user_session) if user_session is not None and not fresh_login_needed else None
    try:
        grant = authorization_server().get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return _authorize_error(error)
    if fresh_login_needed:
        args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("prompt", AUTH_AFTER)]
        args.append((AUTH_AFTER, str(int(time.time() * 1000))))
        return _login_redirect(hint or user_session.tenant_id, f"{url_for('oidc.authorize')}?{urlencode(args)}")
    if user is None:
        return _login_redirect(hint, request.full_path)
    return authorization_server().create_authorization_response(grant=grant, grant_user=user)


def _needs_fresh_login(user_session) -> bool:
    """prompt=login, or a max_age the session is older than, unless this request is the one coming
    back from the re-authentication (AUTH_AFTER) and the session was opened since."""
    signed_in_at = aware(user_session.created_at).timestamp()
    after = request.args.get(AUTH_AFTER, "")
    if after.isascii() and after.isdigit() and len(after) <= 15:
        return signed_in_at * 1000 < min(int(after), time.time() * 1000)
    if "login" in request.args.get("prompt", "").split():
        return True
    max_age = request.args.get("max_age", "")
    return max_age.isascii() and max_age.isdigit() and len(max_age) <= 9 and time.time() - signed_in_at > int(max_age)


def _same_tenant(tenant_id: str, hint: str) -> bool:
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, tenant_id)
    return hint == tenant_id or (tenant is not None and tenant.tenant_code.lower() == hint.lower())


def _authorize_error(error: OAuth2Error):
    if error.redirect_uri:
        return authorization_server().handle_error_response(request, error)
    # No trustworthy redirect URI (unknown client, unregistered redirect): tell the person.
    return render_template("sso/oidc_error.html", error=error.error, description=error.description), 400


@bp.post("/oidc/token")
def token():
    response = authorization_server().create_token_response()
    # The grants spend the code or refresh token and save the new tokens without committing; one
    # commit after the ID token is built, so building it reads no expired rows again. A refusal
    # keeps nothing of its request (the replay revocations commit on their own).
    if response.status_code == 200:
        db.session.commit()
    else:
        db.session.rollback()
    return response


@bp.route("/oidc/userinfo", methods=["GET", "POST"])
@require_oauth("openid")
def userinfo():
    from authlib.integrations.flask_oauth2 import current_token

    user = _token_user(current_token)
    if user is None:
        return jsonify(error="invalid_token", error_description="The session behind this token has ended."), 401
    return jsonify(claims_for(user, current_token.scope))


def _token_user(token):
    return user_for_session_hash(token.session_hash)


@bp.route("/oidc/logout", methods=["GET", "POST"])
def logout():
    values = request.values
    client, hint_claims = None, None
    if values.get("id_token_hint"):
        hint_claims = _verify_id_token_hint(values["id_token_hint"])
        if hint_claims is None:
            return render_template("sso/oidc_error.html", error="invalid_request",
                                   description="id_token_hint is not an ID token issued by this bridge."), 400
        client = _client(hint_claims.get("aud"))
    if values.get("client_id"):
        named = _client(values["client_id"])
        if named is None or (client is not None and named.client_id != client.client_id):
            return render_template("sso/oidc_error.html", error="invalid_request",
                                   description="client_id does not match the ID token."), 400
        client = named
    target = values.get("post_logout_redirect_uri")
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return render_template("sso/oidc_error.html", error="invalid_request",
                               description="post_logout_redirect_uri is not registered for this app."), 400
    user_session = current_session()
    confirmed = hint_claims is not None or (request.method == "POST" and values.get("confirm") == "1"
                                            and _csrf_ok())
    if user_session is not None and not confirmed:
        # Without a valid hint anyone could link here: ask the person (CSRF-protected form).
        return render_template("sso/oidc_logout.html", params=values)
    ended = False
    if user_session is not None and (hint_claims is None or hint_claims.get("sid") == session_sid(user_session.id_hash)):
        sessions.sign_out(user_session, reason="rp_logout", request_id=g.request_id, remote_addr=request.remote_addr,
                          detail=f"rp:{client.client_id if client else '-'}")
        ended = True
    if target:
        if values.get("state"):
            target += ("&" if "?" in target else "?") + urlencode({"state": values["state"]})
        response = redirect(target)
    else:
        response = redirect(url_for("sso.signed_out"))
    if ended or user_session is None:
        # Only the cookie of the session that just ended (or of none at all): a hint for somebody
        # else's session must not sign this visitor out.
        response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response


def _csrf_ok() -> bool:
    try:
        validate_csrf(request.form.get("csrf_token"))
        return True
    except ValidationError:
        return False


def _client(aud) -> OidcClient | None:
    client_id = aud[0] if isinstance(aud, list) and aud else aud
    if not isinstance(client_id, str):
        return None
    return db.session.execute(db.select(OidcClient).filter_by(client_id=client_id)).scalar_one_or_none()


def _verify_id_token_hint(token: str) -> dict | None:
    """Our own ID token, signature and issuer checked; an expired one is still a valid hint."""
    try:
        keys = KeySet.import_key_set(public_jwks(current_app.config["OIDC_ID_TOKEN_LIFETIME"] * 24))
        claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    except (JoseError, ValueError):
        return None
    if claims.get("iss") != issuer() or claims.get("iat", 0) > time.time() + 60:
        return None
    return claims
