"""The OpenID Connect provider, built on Authlib's AuthorizationServer: authorization code (+PKCE,
required for public apps), refresh tokens (rotated), RS256 ID tokens with the bridge's
signing keys, and the claims that carry the KooGallery tenant, user, department and role."""

from __future__ import annotations

import hashlib
import time
from collections import namedtuple
from dataclasses import dataclass

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import current_app, has_request_context, url_for

from common.clock import aware, utcnow
from common.metrics import OIDC_TOKENS
from common.secrets_text import random_text
from extensions import db
from keys.signing import active_signing_key
from sso.admission import live_instance_in, session_refusal
from sso.models import UserSession
from sso.oidc.models import (
    CLIENT_RECORD_COLUMNS,
    ClientRecord,
    CodeRecord,
    OidcAuthorizationCode,
    OidcClient,
    OidcToken,
    secret_hash,
)
from tenants import queries
from tenants.models import Tenant

SCOPES = ("openid", "profile", "email", "phone", "koogallery")
MAX_NONCE_LENGTH = 255


def issuer() -> str:
    """BRIDGE_PUBLIC_URL; without it (local development) the URL this request came in on."""
    base = current_app.config.get("PUBLIC_URL")
    if base:
        return base.removesuffix("/")
    if has_request_context():
        return url_for("index", _external=True).removesuffix("/")
    raise RuntimeError("BRIDGE_PUBLIC_URL must be set to issue tokens outside a request")


def subject(tenant_id: str, user_name: str) -> str:
    """Stable per (tenant, user), different across tenants, reveals neither."""
    return hashlib.sha256(f"koogallery\x1f{tenant_id}\x1f{user_name}".encode()).hexdigest()[:40]


def session_sid(session_hash: str) -> str:
    return hashlib.sha256(f"sid\x1f{session_hash}".encode()).hexdigest()[:32]


@dataclass
class OidcUser:
    """What Authlib calls the user: a live bridge session. For claims, also its tenant and the
    tenant's order links, as user_for_session_hash reads them (once per token request); the
    authorization request needs the session only."""

    session: UserSession
    orders: list | None = None
    tenant: Tenant | None = None

    def get_user_id(self) -> str:
        return subject(self.session.tenant_id, self.session.user_name)


# The token and userinfo endpoints' statements, built once (building and keying a statement costs
# about as much as running it). Rows, not ORM objects: nothing here is changed through the ORM.
_SESSIONS, _CODES, _TOKENS = UserSession.__table__, OidcAuthorizationCode.__table__, OidcToken.__table__
# The session with its tenant, the tenant's order links (one row per link) and the session's user:
# one round trip.
_SESSION_COLUMNS = tuple(c for c in _SESSIONS.c if not c.key.endswith("_enc"))
_SessionRow = namedtuple("SessionRow", [c.key for c in _SESSION_COLUMNS])
_SESSION_FACTS = (db.select(*_SESSION_COLUMNS, *queries.USER_COLUMNS, *queries.TENANT_AND_ORDERS_COLUMNS)
                  .select_from(queries.joined_to_tenant_user_and_orders(_SESSIONS, _SESSIONS.c.tenant_id,
                                                                        _SESSIONS.c.user_name))
                  .where(_SESSIONS.c.id_hash == db.bindparam("id_hash")).order_by(queries.ORDERS_NEWEST_FIRST))
_CLIENT_BY_ID = db.select(*CLIENT_RECORD_COLUMNS).where(OidcClient.__table__.c.client_id == db.bindparam("client_id"))
# Reading the code and spending it are one statement: the row is locked from here to the commit, as
# SELECT … FOR UPDATE did, and a refusal further on rolls the spending back with the rest.
_SPEND_CODE = (db.update(_CODES).where(_CODES.c.code == db.bindparam("code_hash"),
                                       _CODES.c.client_id == db.bindparam("app"), _CODES.c.used_at.is_(None))
               .values(used_at=db.bindparam("now")).returning(*_CODES.c))
_CODE_BY_HASH = db.select(_CODES.c.code, _CODES.c.created_at_ts, _CODES.c.used_at).where(
    _CODES.c.code == db.bindparam("code_hash"), _CODES.c.client_id == db.bindparam("app"))
_INSERT_TOKEN = db.insert(_TOKENS)


def session_facts(session_hash: str) -> tuple[UserSession | None, queries.TenantFacts]:
    """The session (its encrypted tokens left out), with its tenant, the tenant's order links and
    the session's user as tenants.queries.tenant_and_user() answers them."""
    rows = db.session.execute(_SESSION_FACTS, {"id_hash": session_hash}).all()
    if not rows:
        return None, queries.TenantFacts(None)
    return (_SessionRow(*rows[0][:len(_SESSION_COLUMNS)]),
            queries.tenant_user_and_orders_from(rows, len(_SESSION_COLUMNS)))


def user_for_session_hash(session_hash: str) -> OidcUser | None:
    user_session, facts = session_facts(session_hash)
    # The tenant and orders are held: the ID token built later in the request needs them again.
    if user_session is None or session_refusal(user_session, facts=facts) is not None:
        return None
    return OidcUser(user_session, facts.orders, facts.tenant)


def claims_for(user: OidcUser, scope: str | None) -> dict:
    """The claims of these scopes, for a user from user_for_session_hash (admitted, so its tenant
    and orders exist)."""
    s = user.session
    scopes = scope.split() if scope else []
    info = UserInfo(sub=user.get_user_id())
    if "profile" in scopes:
        info.update(name=s.name or s.user_name, preferred_username=s.user_name)
    if "email" in scopes and s.email:
        info["email"] = s.email
    if "phone" in scopes and s.mobile:
        info["phone_number"] = s.mobile
    if "koogallery" in scopes:
        info.update(tenant=s.tenant_id, tenant_code=user.tenant.tenant_code, tenant_name=user.tenant.name,
                    role=s.role, org_code=s.org_code, org_name=s.org_name,
                    instance_id=live_instance_in(user.orders, utcnow()))
    return {k: v for k, v in info.items() if v is not None}


# --- grants ---------------------------------------------------------------------------------------


class S256CodeChallenge(CodeChallenge):
    """PKCE: S256 only (no downgrade to plain), required for public apps, accepted for all."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required for public clients")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        return super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_authorization_request(self):
        # PostgreSQL can neither store nor compare text holding a NUL (the nonce, the scope):
        # refused first, as a request no app sends, rather than a 500 further on.
        if any("\x00" in value for values in self.request.payload.datalist.values() for value in values):
            raise InvalidRequestError("A parameter contains a NUL character.")
        # The nonce is indexed (checked for reuse): an index entry holds at most ~2.7 kB.
        if len(self.request.payload.data.get("nonce") or "") > MAX_NONCE_LENGTH:
            raise InvalidRequestError(f"nonce is longer than {MAX_NONCE_LENGTH} characters.")
        return super().validate_authorization_request()

    @staticmethod
    def validate_authorization_redirect_uri(request, client):
        # Authlib's refusal quotes the URI, and an error description may hold only printable ASCII
        # (RFC 6749 §4.1.2.1): Authlib raises ValueError for anything else, a 500.
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError("redirect_uri is not registered for this app.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def save_authorization_code(self, code, request):
        user: OidcUser = request.user
        payload = request.payload
        db.session.add(OidcAuthorizationCode(
            code=secret_hash(code), client_id=request.client.client_id, redirect_uri=payload.redirect_uri or "",
            scope=payload.scope, nonce=payload.data.get("nonce"),
            auth_time=int(aware(user.session.created_at).timestamp()), session_hash=user.session.id_hash,
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method")))
        db.session.commit()

    def query_authorization_code(self, code, client):
        where = {"code_hash": secret_hash(code), "app": client.client_id}
        spent = db.session.execute(_SPEND_CODE, {**where, "now": utcnow()}).first()
        if spent is not None:
            record = CodeRecord(spent)
            return None if record.is_expired() else record  # an expired code's spending is rolled back
        row = db.session.execute(_CODE_BY_HASH, where).first()
        if row is None or CodeRecord(row).is_expired():
            return None
        # A code used twice: someone else has it. Revoke what the first use issued (RFC 6749 §4.1.2).
        revoke_tokens(code_hash=row.code)
        db.session.commit()
        return None

    def delete_authorization_code(self, authorization_code):
        pass  # spent by query_authorization_code, committed by the token view with the new tokens

    def authenticate_user(self, authorization_code):
        return user_for_session_hash(authorization_code.session_hash)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token works once

    def authenticate_refresh_token(self, refresh_token):
        token = db.session.execute(db.select(OidcToken).filter_by(
            refresh_token=secret_hash(refresh_token)).with_for_update()).scalar_one_or_none()
        if token is None:
            return None
        if not token.is_refresh_token_valid():
            if token.refresh_token_revoked_at and (token.refresh_expires_at or 0) > time.time():
                # A rotated-out refresh token came back: treat the whole session's tokens as stolen.
                revoke_tokens(session_hash=token.session_hash, client_id=token.client_id)
                db.session.commit()
            return None
        return token

    def authenticate_user(self, refresh_token):
        return user_for_session_hash(refresh_token.session_hash)

    def revoke_old_credential(self, refresh_token):
        refresh_token.revoke()  # committed by the token view with the new tokens


def revoke_tokens(**where) -> int:
    now = int(time.time())
    result = db.session.execute(db.update(OidcToken).filter_by(**where)
                                .values(access_token_revoked_at=now, refresh_token_revoked_at=now))
    return result.rowcount or 0


class BridgeOpenIDCode(OpenIDCode):
    def resolve_client_private_key(self, client):
        return active_signing_key(current_app.config["OIDC_ID_TOKEN_LIFETIME"])

    def get_client_algorithm(self, client):
        return "RS256"

    def get_encode_header(self, client):
        return {"alg": "RS256", "kid": self.resolve_client_private_key(client).kid, "typ": "JWT"}

    def get_client_claims(self, client):
        return {"iss": issuer(), "aud": [client.client_id],
                "exp": int(time.time()) + current_app.config["OIDC_ID_TOKEN_LIFETIME"]}

    def get_authorization_code_claims(self, authorization_code):
        claims = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = session_sid(authorization_code.session_hash)
        return claims

    def exists_nonce(self, nonce, request):
        return db.session.execute(db.select(OidcAuthorizationCode.id).filter_by(
            client_id=request.payload.client_id, nonce=nonce)).first() is not None

    def generate_user_info(self, user, scope):
        return claims_for(user, scope)


# --- server wiring --------------------------------------------------------------------------------


def _query_client(client_id):
    if "\x00" in client_id:  # PostgreSQL refuses to compare text holding a NUL: an error, not "no such app"
        return None
    row = db.session.execute(_CLIENT_BY_ID, {"client_id": client_id}).first()
    return ClientRecord(row) if row is not None else None


def _save_token(token, request):
    # One grant or the other: the spent code, or the refresh token being rotated (whose code
    # the new token inherits, so a replayed code still reaches it).
    code, previous = request.authorization_code, request.refresh_token
    user: OidcUser = request.user
    refresh = token.get("refresh_token")  # only an app registered without the refresh_token grant goes without
    db.session.execute(_INSERT_TOKEN, {
        "client_id": request.client.client_id, "access_token": secret_hash(token["access_token"]),
        "scope": token.get("scope"), "expires_in": token["expires_in"],  # lifetimes are > 0; issued_at: now
        "session_hash": user.session.id_hash, "code_hash": code.code if code is not None else previous.code_hash,
        "refresh_token": secret_hash(refresh) if refresh else None,
        "refresh_expires_at": int(time.time()) + current_app.config["OIDC_REFRESH_TOKEN_LIFETIME"] if refresh else None})
    # No commit here: the token view commits once the whole answer (ID token included) is built,
    # with the spent code or refresh token: one transaction, and never a token whose credential is
    # still unspent.
    OIDC_TOKENS.labels("refresh_token" if previous is not None else "authorization_code").inc()


class _BearerValidator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return db.session.execute(db.select(OidcToken).filter_by(
            access_token=secret_hash(token_string))).scalar_one_or_none()


# The resource side holds no per-app state (the validator reads the current app's database), so
# one protector serves every app; it is built once, at import, like the views that use it.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(_BearerValidator())

_SERVER_KEY = "oidc_authorization_server"


def init_server(app) -> None:
    """One AuthorizationServer per app, with its grants registered once."""
    def expires_in(client, grant_type):
        return app.config["OIDC_ACCESS_TOKEN_LIFETIME"]

    # Not AuthorizationServer(app): init_app would only read OAUTH2_* settings the bridge has none
    # of and build a token generator that the bridge's own replaces.
    server = AuthorizationServer(query_client=_query_client, save_token=_save_token)
    server.register_token_generator("default", _token_generator(expires_in))
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), BridgeOpenIDCode()])
    server.register_grant(RefreshTokenGrant)
    app.extensions[_SERVER_KEY] = server


def authorization_server() -> AuthorizationServer:
    return current_app.extensions[_SERVER_KEY]


def _token_generator(expires_in):
    from authlib.oauth2.rfc6750 import BearerTokenGenerator

    return BearerTokenGenerator(access_token_generator=lambda *a, **k: random_text(43),
                                refresh_token_generator=lambda *a, **k: random_text(48),
                                expires_generator=expires_in)
