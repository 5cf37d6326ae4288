"""The OIDC provider (sso/oidc/server.py) as an app (relying party) sees it: the claims it releases
scope by scope, who it still recognises behind a session, and the authorize, token, userinfo and
JWKS endpoints answered in-process (the OAuth error codes, every token field, the ID token checked
against the published keys, PKCE, the code's single use, refresh rotation, nonces, lifetimes)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import event

from common.clock import aware
from config import ConfigError
from extensions import db
from keys import keyring
from keys.models import SigningKey
from sso import sessions
from sso.identity import Identity
from sso.models import UserSession
from sso.oidc import server
from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance, TenantUser
from tests.oidc_fixtures import ISSUER, REDIRECT, authorize, code_from, exchange, pkce, register, verify_id_token


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    """Made once: the bridge's own 3072-bit keys take a second to make and a quarter of one to load
    in each app; RS256 is the same with RFC 7518's 2048 bits."""
    return RSAKey.generate_key(2048, private=True)


def _add_signing_key(key: RSAKey) -> None:
    db.session.add(SigningKey(kid=key.thumbprint(), private_pem_enc=keyring().data.encrypt(
        key.as_pem(private=True).decode()), created_at=datetime.now(UTC)))


def _seed_tenant() -> None:
    """A tenant, its authorised users and its live order."""
    now = datetime.now(UTC)
    db.session.add_all([
        Tenant(tenant_id="t1", tenant_code="acme", name="Acme", domain_name="https://idp.example.com",
               last_sync_ts="1"),
        TenantUser(tenant_id="t1", user_name="alice", last_sync_ts="1"),
        TenantUser(tenant_id="t1", user_name="bob", last_sync_ts="1"),
        Instance(instance_id="i-live", order_id="o1", order_line_id="l1", status=InstanceStatus.ACTIVE,
                 expire_time=now + timedelta(days=30)),
        TenantInstance(tenant_id="t1", instance_id="i-live", created_at=now - timedelta(days=1))])


@pytest.fixture
def ctx(make_app):
    app = make_app()
    with app.test_request_context("/"):
        now = datetime.now(UTC)
        _seed_tenant()
        db.session.add_all([
            UserSession(id_hash="h" * 64, tenant_id="t1", user_name="alice", name="Alice", role="admin",
                        org_code="d1", org_name="Finance", email="a@example.com", mobile="+8613800000000",
                        created_at=now, last_seen_at=now, expires_at=now + timedelta(hours=8))])
        db.session.commit()
        yield app
        db.session.rollback()


def test_the_subject_is_stable_per_tenant_and_user_and_reveals_neither():
    sub = server.subject("t1", "alice")
    assert sub == hashlib.sha256(b"koogallery\x1ft1\x1falice").hexdigest()[:40] and len(sub) == 40
    assert sub != server.subject("t2", "alice") and sub != server.subject("t1", "bob")
    assert "alice" not in sub and "t1" not in sub
    assert server.session_sid("h" * 64) == hashlib.sha256(f"sid\x1f{'h' * 64}".encode()).hexdigest()[:32]


def test_a_live_session_is_a_user_with_its_tenant_and_orders(ctx):
    user = server.user_for_session_hash("h" * 64)
    assert user.session.user_name == "alice" and user.tenant.tenant_id == "t1"
    assert [iid for iid, _ in user.orders] == ["i-live"]
    assert server.user_for_session_hash("x" * 64) is None


def test_a_session_and_every_fact_it_is_judged_on_are_one_read(ctx):
    sent = []

    def count(_conn, _cursor, statement, *_args):
        # Not the transaction's own: SQLite's BEGIN IMMEDIATE, PgBouncer mode's SET LOCAL timeouts.
        if not statement.startswith(("BEGIN", "SET LOCAL")):
            sent.append(statement[:60])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert server.user_for_session_hash("h" * 64) is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(sent) == 1, sent  # the session, its tenant, the tenant's orders and the user, in one statement


@pytest.mark.parametrize("revoke", [
    lambda: setattr(db.session.get(Instance, "i-live"), "status", InstanceStatus.FROZEN),
    lambda: db.session.delete(db.session.get(TenantUser, ("t1", "alice"))),
    lambda: setattr(db.session.get(Tenant, "t1"), "deleted_at", datetime.now(UTC)),
], ids=["order frozen", "user no longer authorised", "tenant deleted"])
def test_a_refused_session_is_nobody(ctx, revoke):
    revoke()
    db.session.commit()
    assert server.user_for_session_hash("h" * 64) is None


@pytest.mark.parametrize("scope, claims", [
    ("openid", {}),
    ("", {}),
    (None, {}),
    ("openid profile", {"name": "Alice", "preferred_username": "alice"}),
    ("openid email", {"email": "a@example.com"}),
    ("openid phone", {"phone_number": "+8613800000000"}),
    ("openid koogallery", {"tenant": "t1", "tenant_code": "acme", "tenant_name": "Acme", "role": "admin",
                           "org_code": "d1", "org_name": "Finance", "instance_id": "i-live"}),
])
def test_each_scope_releases_its_claims_and_no_others(ctx, scope, claims):
    user = server.user_for_session_hash("h" * 64)
    assert server.claims_for(user, scope) == {"sub": server.subject("t1", "alice"), **claims}


def test_claims_without_a_value_are_left_out(ctx):
    s = db.session.get(UserSession, "h" * 64)
    s.email, s.mobile, s.name, s.org_code, s.org_name = None, None, None, None, None
    db.session.commit()
    claims = server.claims_for(server.user_for_session_hash("h" * 64), "openid profile email phone koogallery")
    assert claims == {"sub": server.subject("t1", "alice"), "name": "alice", "preferred_username": "alice",
                      "tenant": "t1", "tenant_code": "acme", "tenant_name": "Acme", "role": "admin",
                      "instance_id": "i-live"}


# --- the provider as a relying party sees it ------------------------------------------------------
# A signed-in browser and two registered apps (one confidential, one public), against the real
# endpoints through the Flask test client. Lifetimes differ from every Authlib default, so a token
# that falls back to one of them shows; the clock is frozen, so lifetimes are checked to the second.

ACCESS_LIFETIME, ID_LIFETIME, REFRESH_LIFETIME = 900, 600, 7200
SCOPE = "openid profile email koogallery"
ALICE = Identity(tenant_id="t1", tenant_code="acme", tenant_name="Acme", user_name="alice", name="Alice",
                 role="admin", org_code="d1", org_name="Finance", email="a@example.com", mobile="+8613800000000")


class Clock:
    """time.time, frozen at a whole second and moved by the test."""

    def __init__(self, monkeypatch):
        self.now = float(int(time.time()))
        monkeypatch.setattr(time, "time", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RP:
    """One registered app, speaking to the provider as its OIDC library would."""

    browser: FlaskClient
    client_id: str
    secret: str | None

    def authorize(self, **extra):
        return authorize(self.browser, self.client_id, **extra)

    def code(self, *, pkce_pair=None, **extra) -> str:
        if pkce_pair is not None:
            extra.update(code_challenge=pkce_pair[1], code_challenge_method="S256")
        return code_from(self.authorize(**extra))

    def exchange(self, code, *, verifier=None, method="basic", **changes):
        if changes:  # a hand-made token request (another redirect_uri, none at all)
            data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                    "client_id": self.client_id, "client_secret": self.secret, "code_verifier": verifier, **changes}
            return self.browser.post("/oidc/token", data={k: v for k, v in data.items() if v is not None})
        return exchange(self.browser, self.client_id, self.secret, code, verifier=verifier, method=method)

    def tokens(self, **extra) -> dict:
        pair = pkce()
        extra.setdefault("nonce", secrets.token_hex(8))
        response = self.exchange(self.code(pkce_pair=pair, **extra), verifier=pair[0],
                                 method="basic" if self.secret else "none")
        assert response.status_code == 200, response.get_json()
        return {**response.get_json(), "nonce": extra["nonce"]}

    def refresh(self, refresh_token, *, method="post"):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        headers = {}
        if method == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        else:
            data["client_id"] = self.client_id
            if self.secret:
                data["client_secret"] = self.secret
        return self.browser.post("/oidc/token", data=data, headers=headers)

    def userinfo(self, access_token):
        return self.browser.get("/oidc/userinfo", headers={"Authorization": f"Bearer {access_token}"})


@dataclass
class Provider:
    app: Flask
    browser: FlaskClient
    app_rp: RP
    spa: RP
    session_hash: str
    clock: Clock

    def db(self):
        return self.app.app_context()

    def end_session(self):
        with self.db():
            sessions.end_session(db.session.get(UserSession, self.session_hash), "test")
            db.session.commit()


def signed_in_browser(app, identity=ALICE) -> tuple[FlaskClient, str]:
    """A browser holding a bridge session cookie (no centre tokens to refresh), and its id hash."""
    browser = app.test_client()
    with app.app_context():
        raw = sessions.open_session(identity, "centre-access-token", None, 7200)
        db.session.commit()
        browser.set_cookie(sessions.SESSION_COOKIE, sessions.sign_session_id(raw))
        return browser, sessions.find_session(raw).id_hash


@pytest.fixture
def provider(make_app, monkeypatch, signing_key):
    clock = Clock(monkeypatch)
    app = make_app(OIDC_ACCESS_TOKEN_LIFETIME=ACCESS_LIFETIME, OIDC_ID_TOKEN_LIFETIME=ID_LIFETIME,
                   OIDC_REFRESH_TOKEN_LIFETIME=REFRESH_LIFETIME)
    with app.app_context():
        _seed_tenant()
        _add_signing_key(signing_key)
        db.session.commit()
    browser, session_hash = signed_in_browser(app)
    runner = app.test_cli_runner()
    confidential, public = register(runner), register(runner, "--public")
    return Provider(app, browser, RP(browser, *confidential), RP(browser, *public), session_hash, clock)


ENGLISH = {"Accept-Language": "en"}


def redirect_error(response) -> dict:
    """The error an app receives at its redirect URI."""
    assert response.status_code == 302, response.data[:300]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def oauth_error(response, status=400) -> str:
    assert response.status_code == status, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["error"]


def id_token_of(provider: Provider, tokens: dict, client_id: str):
    """The ID token, its signature checked against the published JWKS as an app checks it."""
    keys = KeySet.import_key_set(provider.browser.get("/oidc/jwks").get_json())
    verify_id_token(provider.browser, tokens, client_id)
    return jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])


def at_hash(access_token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()[:16]).rstrip(b"=").decode()


def issued(app, grant_type: str) -> float:
    """bridge_oidc_tokens_issued_total for a grant type, as the operator's scrape shows it."""
    body = app.test_client().get("/metrics").get_data(as_text=True)
    match = re.search(rf'^bridge_oidc_tokens_issued_total{{grant_type="{grant_type}"}} (\S+)$', body, re.M)
    return float(match.group(1)) if match else 0.0


def _session_created_at(provider) -> int:
    with provider.db():
        return int(aware(db.session.get(UserSession, provider.session_hash).created_at).timestamp())


def test_a_code_exchange_answers_every_token_field_and_a_signed_id_token(provider):
    rp = provider.app_rp
    before = issued(provider.app, "authorization_code")
    provider.clock.advance(120)  # the person signed in two minutes before the app asked
    tokens = rp.tokens(scope=SCOPE)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token", "nonce"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == ACCESS_LIFETIME and tokens["scope"] == SCOPE
    # 43 and 48 characters of [A-Za-z0-9]: 256 and 285 bits that an app stores and sends back as they are.
    assert re.fullmatch(r"[A-Za-z0-9]{43}", tokens["access_token"])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", tokens["refresh_token"])
    decoded = id_token_of(provider, tokens, rp.client_id)
    [key] = provider.browser.get("/oidc/jwks").get_json()["keys"]
    assert decoded.header == {"alg": "RS256", "kid": key["kid"], "typ": "JWT"}
    now = int(provider.clock.now)
    assert decoded.claims == {
        "iss": ISSUER, "aud": [rp.client_id], "iat": now, "exp": now + ID_LIFETIME,
        "auth_time": _session_created_at(provider), "nonce": tokens["nonce"],
        "sid": server.session_sid(provider.session_hash), "at_hash": at_hash(tokens["access_token"]),
        "sub": server.subject("t1", "alice"), "name": "Alice", "preferred_username": "alice",
        "email": "a@example.com", "tenant": "t1", "tenant_code": "acme", "tenant_name": "Acme", "role": "admin",
        "org_code": "d1", "org_name": "Finance", "instance_id": "i-live"}
    assert rp.userinfo(tokens["access_token"]).get_json() == {
        "sub": server.subject("t1", "alice"), "name": "Alice", "preferred_username": "alice",
        "email": "a@example.com", "tenant": "t1", "tenant_code": "acme", "tenant_name": "Acme", "role": "admin",
        "org_code": "d1", "org_name": "Finance", "instance_id": "i-live"}
    assert issued(provider.app, "authorization_code") == before + 1


def test_the_id_token_has_no_nonce_when_the_app_sent_none(provider):
    rp = provider.app_rp
    response = rp.exchange(rp.code(nonce=None))
    claims = jwt.decode(response.get_json()["id_token"],
                        KeySet.import_key_set(provider.browser.get("/oidc/jwks").get_json())).claims
    assert response.status_code == 200 and "nonce" not in claims and claims["sub"] == server.subject("t1", "alice")


def test_the_scope_granted_is_the_scope_the_app_asked_for(provider):
    rp = provider.app_rp
    tokens = rp.tokens(scope="openid phone")
    assert tokens["scope"] == "openid phone"
    claims = id_token_of(provider, tokens, rp.client_id).claims
    assert claims["phone_number"] == "+8613800000000" and "email" not in claims and "tenant" not in claims
    assert rp.userinfo(tokens["access_token"]).get_json() == {"sub": server.subject("t1", "alice"),
                                                               "phone_number": "+8613800000000"}


def test_a_token_without_the_openid_scope_gets_no_id_token_and_no_userinfo(provider):
    rp = provider.app_rp
    response = rp.exchange(rp.code(scope="profile"))
    tokens = response.get_json()
    assert response.status_code == 200 and tokens["scope"] == "profile" and "id_token" not in tokens
    refused = rp.userinfo(tokens["access_token"])
    assert refused.status_code == 403 and refused.get_json()["error"] == "insufficient_scope"


def test_auth_time_is_when_the_person_signed_in_whatever_the_servers_time_zone(provider):
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"  # SQLite's naive datetimes must still be read as UTC
    time.tzset()
    try:
        tokens = provider.app_rp.tokens()
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert id_token_of(provider, tokens, provider.app_rp.client_id).claims["auth_time"] == _session_created_at(provider)


def test_the_issuer_is_the_public_url_when_one_is_set(make_app, signing_key):
    app = make_app(PUBLIC_URL="https://sso.example.com/")
    with app.app_context():
        _seed_tenant()
        _add_signing_key(signing_key)
        db.session.commit()
    browser, _ = signed_in_browser(app)
    client_id, secret = register(app.test_cli_runner())
    assert browser.get("/.well-known/openid-configuration").get_json()["issuer"] == "https://sso.example.com"
    tokens = RP(browser, client_id, secret).tokens()
    keys = KeySet.import_key_set(browser.get("/oidc/jwks").get_json())
    assert jwt.decode(tokens["id_token"], keys).claims["iss"] == "https://sso.example.com"


def test_outside_a_request_there_is_no_issuer_without_the_public_url(app_ctx):
    with pytest.raises(RuntimeError, match=r"^BRIDGE_PUBLIC_URL must be set to issue tokens outside a request$"):
        server.issuer()


# --- requests no app sends: an OAuth error, never a 500 (PostgreSQL cannot hold a NUL) --------------


def error_page(response) -> tuple[str, str]:
    """The page a person gets when the request names no trustworthy redirect URI: the OAuth error,
    and the page's text (on English pages, Authlib's description too)."""
    assert response.status_code == 400 and "Location" not in response.headers, response.data[:300]
    error = re.search(rb'data-error="([a-z_]+)"', response.data).group(1).decode()
    return error, response.get_data(as_text=True)


@pytest.mark.parametrize("param", ["nonce", "scope", "state", "redirect_uri", "client_id", "login_hint"])
def test_an_authorization_request_with_a_nul_is_refused(provider, param):
    rp = provider.app_rp
    value = {"nonce": "n", "scope": "openid", "state": "st-1", "redirect_uri": REDIRECT, "client_id": rp.client_id,
             "login_hint": "alice@acme"}[param]
    query = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT, "scope": "openid",
             "state": "st-1", param: value + "\x00"}
    error, page = error_page(rp.browser.get("/oidc/authorize", query_string=query, headers=ENGLISH))
    assert error == "invalid_request" and "</code>: A parameter contains a NUL character.</p>" in page
    assert rp.exchange(rp.code()).status_code == 200  # and nothing else is the worse for it


def test_an_overlong_nonce_is_refused_and_one_of_the_limit_is_kept(provider):
    rp = provider.app_rp
    query = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT, "scope": "openid",
             "state": "st-1", "nonce": "n" * (server.MAX_NONCE_LENGTH + 1)}
    error, page = error_page(rp.browser.get("/oidc/authorize", query_string=query, headers=ENGLISH))
    assert error == "invalid_request" and f"nonce is longer than {server.MAX_NONCE_LENGTH} characters." in page
    longest = secrets.token_urlsafe(server.MAX_NONCE_LENGTH)[:server.MAX_NONCE_LENGTH]
    tokens = rp.exchange(rp.code(nonce=longest)).get_json()
    assert verify_id_token(rp.browser, {**tokens, "nonce": longest}, rp.client_id)["nonce"] == longest


@pytest.mark.parametrize("uri", ['https://evil.example.com/"', "https://evil.example.com/caf\u00e9",
                                 "https://app.example.com/callback\\"])
def test_an_unregistered_redirect_uri_of_any_characters_gets_the_error_page(provider, uri):
    rp = provider.app_rp
    query = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": uri, "scope": "openid"}
    error, page = error_page(rp.browser.get("/oidc/authorize", query_string=query, headers=ENGLISH))
    assert error == "invalid_request" and "</code>: redirect_uri is not registered for this app.</p>" in page


@pytest.mark.parametrize("method, status", [("basic", 401), ("post", 400)])
def test_a_client_id_with_a_nul_is_an_unknown_app_at_the_token_endpoint(provider, method, status):
    rp = provider.app_rp
    forged = RP(rp.browser, rp.client_id + "\x00", rp.secret)
    assert oauth_error(forged.exchange(rp.code(), method=method), status) == "invalid_client"


# --- PKCE ------------------------------------------------------------------------------------------


def test_a_public_app_must_send_an_s256_challenge(provider):
    error = redirect_error(provider.spa.authorize())
    assert error == {"error": "invalid_request", "state": "st-1",
                     "error_description": "PKCE with code_challenge_method=S256 is required for public clients"}


@pytest.mark.parametrize("method", [None, "plain", "s256"])
def test_a_challenge_must_name_s256(provider, method):
    for rp in (provider.app_rp, provider.spa):
        error = redirect_error(rp.authorize(code_challenge="a" * 43, code_challenge_method=method))
        assert error == {"error": "invalid_request", "state": "st-1",
                         "error_description": "code_challenge_method must be S256"}


def test_a_confidential_app_may_do_without_pkce(provider):
    rp = provider.app_rp
    response = rp.exchange(rp.code())
    assert response.status_code == 200 and response.get_json()["id_token"]


def test_a_public_app_exchanges_and_refreshes_with_its_verifier_alone(provider):
    spa = provider.spa
    pair = pkce()
    code = spa.code(pkce_pair=pair)
    assert oauth_error(spa.exchange(code, verifier=pkce()[0], method="none")) == "invalid_grant"
    code = spa.code(pkce_pair=pair)
    assert oauth_error(spa.exchange(code, method="none")) == "invalid_request"  # no verifier
    code = spa.code(pkce_pair=pair)
    tokens = spa.exchange(code, verifier=pair[0], method="none").get_json()
    assert tokens["id_token"] and tokens["refresh_token"]
    renewed = spa.refresh(tokens["refresh_token"])
    assert renewed.status_code == 200 and renewed.get_json()["refresh_token"] != tokens["refresh_token"]
    # A public app cannot pretend to be confidential, nor a confidential one to be public.
    assert oauth_error(spa.refresh(renewed.get_json()["refresh_token"], method="basic"), 401) == "invalid_client"
    rp = provider.app_rp
    assert oauth_error(RP(rp.browser, rp.client_id, None).exchange(rp.code(), method="none"), 401) == "invalid_client"


@pytest.mark.parametrize("method", ["basic", "post"])
def test_a_confidential_app_authenticates_by_basic_or_post_on_both_grants(provider, method):
    rp = provider.app_rp
    response = rp.exchange(rp.code(), method=method)
    assert response.status_code == 200, response.get_json()
    renewed = rp.refresh(response.get_json()["refresh_token"], method=method)
    assert renewed.status_code == 200, renewed.get_json()


# --- the code --------------------------------------------------------------------------------------


def test_a_code_works_only_for_the_app_it_was_issued_to(provider):
    rp = provider.app_rp
    other = RP(rp.browser, *register(provider.app.test_cli_runner()))
    code = rp.code()
    assert oauth_error(other.exchange(code)) == "invalid_grant"
    assert rp.exchange(code).status_code == 200  # the refusal did not spend it


def test_a_code_works_only_with_the_redirect_uri_it_was_issued_for(provider):
    rp = provider.app_rp
    code = rp.code()
    assert oauth_error(rp.exchange(code, redirect_uri="https://app.example.com/other")) == "invalid_grant"
    assert rp.exchange(code).status_code == 200


def test_a_code_asked_for_without_a_redirect_uri_is_exchanged_without_one(provider):
    rp = provider.app_rp
    code = code_from(authorize(rp.browser, rp.client_id, redirect_uri=None))
    assert rp.exchange(code, redirect_uri=None).status_code == 200


def test_a_code_lives_five_minutes(provider):
    rp = provider.app_rp
    fresh, stale = rp.code(), rp.code()
    provider.clock.advance(300)
    assert rp.exchange(fresh).status_code == 200
    provider.clock.advance(1)
    assert oauth_error(rp.exchange(stale)) == "invalid_grant"


def test_a_code_used_twice_revokes_everything_its_first_use_gave(provider):
    rp = provider.app_rp
    code = rp.code()
    first = rp.exchange(code).get_json()
    renewed = rp.refresh(first["refresh_token"]).get_json()  # the refreshed tokens descend from the code too
    other = rp.tokens()  # another login of the same person: untouched
    assert oauth_error(rp.exchange(code)) == "invalid_grant"
    assert rp.userinfo(renewed["access_token"]).status_code == 401
    assert rp.userinfo(other["access_token"]).status_code == 200
    assert oauth_error(rp.refresh(renewed["refresh_token"])) == "invalid_grant"


def test_a_code_of_a_session_that_ended_is_refused(provider):
    rp = provider.app_rp
    code = rp.code()
    provider.end_session()
    assert oauth_error(rp.exchange(code)) == "invalid_grant"


def test_a_code_of_a_session_admission_now_refuses_is_refused(provider):
    rp = provider.app_rp
    code = rp.code()
    with provider.db():
        db.session.get(Instance, "i-live").status = InstanceStatus.FROZEN
        db.session.commit()
    assert oauth_error(rp.exchange(code)) == "invalid_grant"


def test_a_nonce_is_single_use_per_app(provider):
    rp, spa = provider.app_rp, provider.spa
    rp.tokens(nonce="n-1")
    error = redirect_error(rp.authorize(nonce="n-1"))
    assert error["error"] == "invalid_request" and error["state"] == "st-1"
    tokens = spa.tokens(nonce="n-1")  # another app's nonces are its own
    assert id_token_of(provider, tokens, spa.client_id).claims["nonce"] == "n-1"


# --- refresh ---------------------------------------------------------------------------------------


def test_a_refresh_answers_fresh_tokens_for_the_same_grant(provider):
    rp = provider.app_rp
    tokens = rp.tokens(scope="openid email")
    before = issued(provider.app, "refresh_token")
    provider.clock.advance(60)
    response = rp.refresh(tokens["refresh_token"])
    renewed = response.get_json()
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert set(renewed) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert renewed["token_type"] == "Bearer" and renewed["expires_in"] == ACCESS_LIFETIME
    assert renewed["scope"] == "openid email"
    assert re.fullmatch(r"[A-Za-z0-9]{43}", renewed["access_token"])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", renewed["refresh_token"])
    assert renewed["access_token"] != tokens["access_token"] and renewed["refresh_token"] != tokens["refresh_token"]
    assert rp.userinfo(renewed["access_token"]).get_json() == {"sub": server.subject("t1", "alice"),
                                                                "email": "a@example.com"}
    assert issued(provider.app, "refresh_token") == before + 1


def test_a_refresh_spends_the_old_tokens_and_a_reused_one_revokes_the_family(provider):
    rp = provider.app_rp
    tokens = rp.tokens()
    renewed = rp.refresh(tokens["refresh_token"]).get_json()
    assert rp.userinfo(tokens["access_token"]).status_code == 401  # the old access token went with it
    assert rp.userinfo(renewed["access_token"]).status_code == 200
    assert oauth_error(rp.refresh(tokens["refresh_token"])) == "invalid_grant"
    assert rp.userinfo(renewed["access_token"]).status_code == 401
    assert oauth_error(rp.refresh(renewed["refresh_token"])) == "invalid_grant"
    shown = provider.app.test_cli_runner().invoke(args=["apps", "show", rp.client_id]).output
    assert re.search(r"^Unrevoked tokens +0$", shown, re.M)  # what the operator sees


def test_a_reused_refresh_token_revokes_only_its_apps_tokens_of_its_session(provider):
    rp, spa = provider.app_rp, provider.spa
    bob, _ = signed_in_browser(provider.app, replace(ALICE, user_name="bob", name="Bob"))
    tokens, other_app = rp.tokens(), spa.tokens()
    other_session = RP(bob, rp.client_id, rp.secret).tokens()
    rp.refresh(tokens["refresh_token"])
    assert oauth_error(rp.refresh(tokens["refresh_token"])) == "invalid_grant"
    assert spa.userinfo(other_app["access_token"]).status_code == 200
    assert rp.userinfo(other_session["access_token"]).get_json()["preferred_username"] == "bob"


def test_a_refresh_token_lives_its_lifetime_to_the_second(provider):
    rp = provider.app_rp
    first, second = rp.tokens(), rp.tokens()
    provider.clock.advance(REFRESH_LIFETIME - 1)
    assert rp.refresh(first["refresh_token"]).status_code == 200
    provider.clock.advance(1)
    assert oauth_error(rp.refresh(second["refresh_token"])) == "invalid_grant"


def test_an_expired_rotated_out_refresh_token_is_refused_without_revoking(provider):
    rp = provider.app_rp
    tokens = rp.tokens()
    provider.clock.advance(REFRESH_LIFETIME - 60)
    renewed = rp.refresh(tokens["refresh_token"]).get_json()
    provider.clock.advance(60)  # the old one has expired: a late retry, not a theft
    assert oauth_error(rp.refresh(tokens["refresh_token"])) == "invalid_grant"
    assert rp.userinfo(renewed["access_token"]).status_code == 200
    assert rp.refresh(renewed["refresh_token"]).status_code == 200


def test_a_refresh_token_works_only_for_its_own_app_and_session(provider):
    rp = provider.app_rp
    tokens = rp.tokens()
    other = RP(rp.browser, *register(provider.app.test_cli_runner()))
    assert oauth_error(other.refresh(tokens["refresh_token"])) == "invalid_grant"
    assert oauth_error(rp.refresh("no-such-refresh-token")) == "invalid_grant"
    provider.end_session()
    assert oauth_error(rp.refresh(tokens["refresh_token"])) == "invalid_grant"


# --- the access token ------------------------------------------------------------------------------


def test_an_access_token_lives_its_lifetime_to_the_second(provider):
    rp = provider.app_rp
    tokens = rp.tokens()
    provider.clock.advance(ACCESS_LIFETIME)
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    provider.clock.advance(1)
    expired = rp.userinfo(tokens["access_token"])
    assert expired.status_code == 401 and expired.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("token", ["x" * 43, "x" * 4000])
def test_userinfo_refuses_what_is_not_an_access_token(provider, token):
    response = provider.app_rp.userinfo(token)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


def test_userinfo_after_the_session_ended(provider):
    rp = provider.app_rp
    tokens = rp.tokens()
    provider.end_session()
    response = rp.userinfo(tokens["access_token"])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


# --- the apps ------------------------------------------------------------------------------------


def test_a_client_id_of_the_columns_full_length_works_and_a_longer_one_is_refused(provider):
    runner = provider.app.test_cli_runner()
    rp = RP(provider.browser, *register(runner, "--client-id", "c" * 48))
    assert rp.exchange(rp.code()).status_code == 200
    result = runner.invoke(args=["apps", "register", "--name", "x", "--redirect-uri", REDIRECT, "--client-id", "c" * 49])
    assert result.exit_code == 2 and "longer than 48 characters" in result.output
    page = authorize(provider.browser, "c" * 49)
    assert page.status_code == 400 and b'data-error="invalid_client"' in page.data


@pytest.mark.parametrize("name", ["OIDC_ID_TOKEN_LIFETIME", "OIDC_ACCESS_TOKEN_LIFETIME", "OIDC_REFRESH_TOKEN_LIFETIME"])
def test_a_lifetime_of_zero_stops_the_start(make_app, name):
    with pytest.raises(ConfigError, match=f"BRIDGE_{name} must be a positive integer"):
        make_app(**{name: 0})


def test_removing_an_app_revokes_its_tokens_and_says_how_many(provider):
    rp = provider.app_rp
    first, second = rp.tokens(), rp.tokens()
    runner = provider.app.test_cli_runner()
    assert "revoked 2 token(s)" in runner.invoke(args=["apps", "remove", rp.client_id]).output
    assert rp.userinfo(first["access_token"]).status_code == 401
    assert rp.userinfo(second["access_token"]).status_code == 401
    assert "revoked 0 token(s)" in runner.invoke(args=["apps", "remove", provider.spa.client_id]).output
