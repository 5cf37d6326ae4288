"""A small SaaS app that signs users in through the SSO Bridge with Authlib's OIDC client: what a
vendor's app needs, and nothing else. Run: `flask --app examples.saas_app run -p 5002`.

Settings (environment, prefix SAAS_): SAAS_ISSUER (the bridge, e.g. http://127.0.0.1:5000),
SAAS_CLIENT_ID, SAAS_CLIENT_SECRET (from `flask apps register`), SAAS_APP_URL (this app's own
base URL), SAAS_SECRET_KEY."""

from __future__ import annotations

import secrets
import threading
from urllib.parse import urlencode

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# What a person is told when the bridge answers the callback with an OAuth error instead of a code.
CALLBACK_ERRORS = {
    "access_denied": ("Sign-in was not allowed · 未获准登录",
                      "Your company has not given you access to this app, or you cancelled. "
                      "您的企业尚未为您开通此应用，或您取消了登录。"),
    "login_required": ("Please sign in · 请先登录",
                       "You are not signed in at the SSO Bridge. 您尚未在企业账号登录页登录。"),
    "interaction_required": ("Please sign in · 请先登录",
                             "The sign-in needs you to take a step on the bridge's page. 登录需要您在登录页完成一步操作。"),
    "consent_required": ("Please sign in · 请先登录", "The sign-in needs your consent. 登录需要您的同意。"),
    "temporarily_unavailable": ("Try again shortly · 请稍后重试",
                                "The sign-in service is busy. 登录服务繁忙，请稍后重试。"),
}


class LocalSessions:
    """This app's own sessions, server-side, so the bridge's back-channel logout can end them."""

    def __init__(self):
        self._by_id: dict[str, dict] = {}
        self._lock = threading.Lock()

    def create(self, claims: dict, id_token: str) -> str:
        local_id = secrets.token_urlsafe(24)
        with self._lock:
            self._by_id[local_id] = {"claims": claims, "id_token": id_token}
        return local_id

    def get(self, local_id: str | None) -> dict | None:
        with self._lock:
            return self._by_id.get(local_id or "")

    def drop(self, local_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(local_id or "", None)

    def drop_bridge_session(self, sid: str | None, sub: str | None) -> int:
        with self._lock:
            doomed = [k for k, v in self._by_id.items()
                      if (sid and v["claims"].get("sid") == sid) or (not sid and v["claims"].get("sub") == sub)]
            for key in doomed:
                del self._by_id[key]
        return len(doomed)


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(ISSUER="http://127.0.0.1:5000", APP_URL="http://127.0.0.1:5002", CLIENT_ID=None,
                      CLIENT_SECRET=None, SECRET_KEY=secrets.token_urlsafe(32), SESSION_COOKIE_NAME="saas_session")
    app.config.from_prefixed_env("SAAS")
    if test_config:
        app.config.update(test_config)
    issuer = app.config["ISSUER"].rstrip("/")
    oauth = OAuth(app)
    oauth.register("bridge", client_id=app.config["CLIENT_ID"], client_secret=app.config["CLIENT_SECRET"],
                   server_metadata_url=f"{issuer}/.well-known/openid-configuration",
                   client_kwargs={"scope": "openid profile email phone koogallery", "code_challenge_method": "S256"})
    local = LocalSessions()
    app.extensions["saas_sessions"] = local

    def me():
        return local.get(session.get("local_id"))

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/")
    def home():
        current = me()
        return render_template("home.html", claims=current["claims"] if current else None)

    @app.get("/login")
    def login():
        redirect_uri = f"{app.config['APP_URL'].rstrip('/')}{url_for('callback')}"
        extra = {"tenant": request.args["tenant"]} if request.args.get("tenant") else {}
        return oauth.bridge.authorize_redirect(redirect_uri, **extra)

    @app.get("/initiate-login")
    def initiate_login():
        # OIDC third-party-initiated login: the bridge (a workbench launch) asks us to start ours.
        if request.args.get("iss", "").rstrip("/") != issuer:
            abort(400, "unknown issuer")
        return redirect(url_for("login"))

    def sign_in_failed(error: str, description: str = ""):
        title, text = CALLBACK_ERRORS.get(error, ("Sign-in did not complete · 登录未完成",
                                                  "Please try again. 请重新登录。"))
        return render_template("error.html", title=title, text=text, error=error[:64],
                               description=description[:200]), 400 if error not in CALLBACK_ERRORS else 403

    @app.get("/callback")
    def callback():
        if request.args.get("error"):  # the bridge said no (RFC 6749 §4.1.2.1): tell the person why
            return sign_in_failed(request.args["error"], request.args.get("error_description", ""))
        try:
            token = oauth.bridge.authorize_access_token()  # checks state, PKCE, ID token (sig, iss, aud, exp, nonce)
        except OAuthError as exc:  # a stale or replayed callback, a refused code
            return sign_in_failed(exc.error or "invalid_request", exc.description or "")
        session.clear()
        session["local_id"] = local.create(dict(token["userinfo"]), token["id_token"])
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout():
        current = me()
        local.drop(session.pop("local_id", None))
        if current is None:
            return redirect(url_for("home"))
        end_session = oauth.bridge.load_server_metadata()["end_session_endpoint"]
        return redirect(end_session + "?" + urlencode({  # RP-initiated logout at the bridge
            "id_token_hint": current["id_token"], "post_logout_redirect_uri": app.config["APP_URL"].rstrip("/") + "/"}))

    @app.post("/backchannel-logout")
    def backchannel_logout():
        token = request.form.get("logout_token", "")
        try:
            keys = KeySet.import_key_set(oauth.bridge.fetch_jwk_set(force=True))
            claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
            JWTClaimsRegistry(iss={"essential": True, "value": issuer},
                              aud={"essential": True, "value": app.config["CLIENT_ID"]},
                              iat={"essential": True}).validate(claims)
        except (JoseError, ValueError):
            return {"error": "invalid_request"}, 400
        if LOGOUT_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
            return {"error": "invalid_request"}, 400
        ended = local.drop_bridge_session(claims.get("sid"), claims.get("sub"))
        app.logger.info("backchannel logout: ended %d local session(s)", ended)
        return "", 200, {"Cache-Control": "no-store"}

    return app
