"""The session lifecycle (sso/sessions.py) as the browser, the operator's audit and the OIDC provider
see it: the cookie, what signing in, ending, holding and refreshing a session leave in the database
and announce, and what a request gets. The centre is replaced here by a stand-in object (the live
tests refresh against the simulator); the row locks are shown against a concurrent transaction on
PostgreSQL."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import Signer
from sqlalchemy.exc import OperationalError

from common.clock import aware
from common.hashing import hash_token
from extensions import db
from keys import keyring
from sso import services, sessions
from sso.auth_centre import AuthCentreError, Tokens
from sso.errors import LoginError
from sso.identity import Identity
from sso.models import HeldSignIn, LoginEvent, LoginState, UserSession
from tenants.models import Tenant, TenantUser
from tests.helpers import postgresql_only, wait_until_a_query_waits_on_a_lock

IDENTITY = Identity(tenant_id="t1", tenant_code="acme", tenant_name="Acme", user_name="alice", name="Alice",
                    role="admin", org_code="d1", org_name="Finance", email="a@example.com", mobile="+8613800000000")


@pytest.fixture
def ctx(app_ctx):
    db.session.add_all([
        Tenant(tenant_id="t1", tenant_code="acme", name="Acme", domain_name="https://idp.example.com",
               last_sync_ts="1"),
        TenantUser(tenant_id="t1", user_name="alice", last_sync_ts="1")])
    db.session.commit()
    return app_ctx


@pytest.fixture
def ended(ctx):
    """What sessions_ended announced."""
    seen = []

    def receiver(sender, **kw):
        seen.append((sender, kw))

    sessions.sessions_ended.connect(receiver)
    yield seen
    sessions.sessions_ended.disconnect(receiver)


def open_one(refresh_token: str | None = "rt-1", expires_in: int = 3600) -> UserSession:
    raw = sessions.open_session(IDENTITY, "at-1", refresh_token, expires_in)
    db.session.commit()
    return sessions.find_session(raw)


def test_ending_a_session_records_why_and_announces_it_once(ctx, ended):
    s = open_one()
    sessions.end_session(s, "a_reason_longer_than_thirty_two_characters")
    db.session.commit()
    assert s.end_reason == "a_reason_longer_than_thirty_two_"  # the column's 32
    assert ended == [("sso", {"id_hashes": [s.id_hash], "reason": "a_reason_longer_than_thirty_two_characters"})]
    sessions.end_session(s, "again")
    assert len(ended) == 1 and s.end_reason.startswith("a_reason")


def test_signing_out_ends_the_session_and_audits_the_logout(ctx, ended):
    s = open_one()
    sessions.sign_out(s, reason="signed_out", request_id="req-1", remote_addr="203.0.113.9", detail="from the app")
    event = db.session.execute(db.select(LoginEvent).filter_by(outcome="logout")).scalar_one()
    assert (event.request_id, event.tenant_id, event.user_name, event.detail, event.remote_addr) == (
        "req-1", "t1", "alice", "from the app", "203.0.113.9")
    assert db.session.get(UserSession, s.id_hash).end_reason == "signed_out"
    assert ended[0][1]["reason"] == "signed_out"


def state(tenant_id: str, n: int) -> LoginState:
    return LoginState(state_hash=f"{tenant_id}-{n}".ljust(64, "0"), browser_hash="b" * 64, tenant_id=tenant_id,
                      redirect_uri="https://bridge.example.com/sso/callback",
                      expires_at=datetime.now(UTC) + timedelta(minutes=5))


def test_a_moved_centre_spends_only_that_tenants_pending_logins(ctx):
    used = state("t1", 0)
    used.used_at = datetime(2026, 1, 1, tzinfo=UTC)
    db.session.add_all([state("t1", 1), state("t1", 2), used, state("t2", 1)])
    db.session.commit()
    assert sessions.end_pending_logins("t1") == 2
    db.session.commit()
    db.session.expire_all()
    rows = {r.state_hash[:4]: r.used_at for r in db.session.execute(db.select(LoginState)).scalars()}
    assert rows["t1-1"] is not None and rows["t1-2"] is not None
    assert rows["t2-1"] is None
    assert rows["t1-0"].replace(tzinfo=None) == datetime(2026, 1, 1)  # a spent state keeps its time
    assert sessions.end_pending_logins("t1") == 0
    assert sessions.end_pending_logins("nobody") == 0


def test_a_held_sign_in_comes_back_whole_and_once(ctx):
    sessions.hold_sign_in(IDENTITY, Tokens("at-9", "rt-9", 1800), browser_token="browser-1", kind="workbench",
                          next_url="/sso/me")
    sessions.hold_sign_in(IDENTITY, Tokens("at-x", None, 60), browser_token="browser-2", kind="switch", next_url=None)
    peek = sessions.held_sign_in("browser-1")
    assert peek == sessions.Held(IDENTITY, Tokens("at-9", "rt-9", 1800), "workbench", "/sso/me")
    assert sessions.held_sign_in("browser-1") is not None  # looking does not take it
    taken = sessions.held_sign_in("browser-1", take=True)
    db.session.commit()
    assert taken == peek and sessions.held_sign_in("browser-1") is None
    assert sessions.held_sign_in("browser-2").tokens == Tokens("at-x", None, 60)
    assert sessions.held_sign_in(None) is None and sessions.held_sign_in("") is None
    # the tokens are stored encrypted, never as sent
    row = db.session.get(HeldSignIn, sessions.hash_token("browser-2"))
    assert "at-x" not in row.access_token_enc and row.refresh_token_enc is None


def test_a_newer_hold_replaces_the_browsers_older_one_only(ctx):
    sessions.hold_sign_in(IDENTITY, Tokens("old", "r", 60), browser_token="b1", kind="workbench", next_url=None)
    sessions.hold_sign_in(IDENTITY, Tokens("other", "r", 60), browser_token="b2", kind="workbench", next_url=None)
    sessions.hold_sign_in(IDENTITY, Tokens("new", "r", 60), browser_token="b1", kind="switch", next_url="/x")
    assert sessions.held_sign_in("b1").tokens.access_token == "new"
    assert sessions.held_sign_in("b2").tokens.access_token == "other"
    sessions.drop_held_sign_in("b1")
    assert sessions.held_sign_in("b1") is None and sessions.held_sign_in("b2") is not None
    sessions.drop_held_sign_in(None)
    assert db.session.scalar(db.select(db.func.count()).select_from(HeldSignIn)) == 1


def frozen_clock(monkeypatch, at: datetime) -> list[datetime]:
    """The module's clock, stopped at `at`; set `clock[0]` to move it."""
    clock = [at]
    monkeypatch.setattr(sessions, "utcnow", lambda: clock[0])
    return clock


def test_a_held_sign_in_lapses_at_its_expiry(ctx, monkeypatch):
    ctx.config["HELD_SIGN_IN_SECONDS"] = 300
    held_at = datetime.now(UTC).replace(microsecond=0)
    clock = frozen_clock(monkeypatch, held_at)
    sessions.hold_sign_in(IDENTITY, Tokens("a", None, 60), browser_token="b1", kind="workbench", next_url=None)
    clock[0] = held_at + timedelta(seconds=299)
    assert sessions.held_sign_in("b1") is not None
    clock[0] = held_at + timedelta(seconds=300)
    assert sessions.held_sign_in("b1") is None


def test_identity_of_is_what_the_app_is_told(ctx):
    s = open_one()
    info = sessions.identity_of(s)
    assert info == {"tenant": "t1", "tenant_code": "acme", "tenant_name": "Acme", "user_name": "alice",
                    "name": "Alice", "role": "admin", "org_code": "d1", "org_name": "Finance",
                    "email": "a@example.com", "mobile": "+8613800000000",
                    "signed_in_at": s.created_at.replace(tzinfo=UTC).isoformat() if s.created_at.tzinfo is None
                    else s.created_at.isoformat(), "expires_at": info["expires_at"]}
    db.session.delete(db.session.get(Tenant, "t1"))
    db.session.commit()
    gone = sessions.identity_of(s)
    assert (gone["tenant_code"], gone["tenant_name"]) == (None, None)


# --- refreshing the centre's tokens -------------------------------------------------------------


class Centre:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def refresh(self, client, refresh_token):
        self.calls.append((client, refresh_token))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def centre(ctx, monkeypatch):
    def install(answer):
        c = Centre(answer)
        monkeypatch.setattr(services, "auth_centre", lambda: c)
        monkeypatch.setattr(services, "client_for_tenant_id", lambda tenant_id: f"client-of-{tenant_id}")
        return c
    return install


def test_a_refresh_stores_the_new_tokens_and_releases_the_claim(ctx, centre):
    c = centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    sessions._refresh(s)
    db.session.commit()
    db.session.expire_all()
    s = db.session.get(UserSession, s.id_hash)
    box = keyring().data
    assert c.calls == [("client-of-t1", "rt-1")]
    assert (box.decrypt(s.access_token_enc), box.decrypt(s.refresh_token_enc)) == ("at-2", "rt-2")
    assert s.refresh_claimed_until is None and s.ended_at is None


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(ctx, centre):
    centre(Tokens("at-2", None, 600))
    s = open_one(expires_in=1)
    sessions._refresh(s)
    db.session.commit()
    assert keyring().data.decrypt(db.session.get(UserSession, s.id_hash).refresh_token_enc) == "rt-1"


def test_a_session_already_claimed_by_another_request_is_not_refreshed_again(ctx, centre):
    c = centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    other = open_one(expires_in=1)
    s.refresh_claimed_until = datetime.now(UTC) + timedelta(seconds=20)
    db.session.commit()
    sessions._refresh(s)
    assert c.calls == []
    sessions._refresh(other)  # the claim is per session
    assert len(c.calls) == 1


def test_a_lapsed_claim_is_taken_over(ctx, centre):
    c = centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    s.refresh_claimed_until = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    sessions._refresh(s)
    assert len(c.calls) == 1


def test_a_claim_holds_until_its_instant(ctx, centre, monkeypatch):
    c = centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
    s.refresh_claimed_until = until
    db.session.commit()
    clock = frozen_clock(monkeypatch, until)
    sessions._refresh(s)
    assert c.calls == []
    clock[0] = until + timedelta(seconds=1)
    sessions._refresh(s)
    assert len(c.calls) == 1


def test_the_claim_holds_while_the_centre_answers(ctx, monkeypatch):
    seen = {}

    class Watching(Centre):
        def refresh(self, client, refresh_token):
            with db.engine.connect() as conn:  # what another process sees meanwhile
                seen["until"] = conn.execute(db.select(UserSession.refresh_claimed_until)).scalar_one()
            return Tokens("at-2", "rt-2", 600)

    monkeypatch.setattr(services, "auth_centre", lambda: Watching(None))
    monkeypatch.setattr(services, "client_for_tenant_id", lambda tenant_id: "client")
    s = open_one(expires_in=1)
    before = datetime.now(UTC)
    sessions._refresh(s)
    until = seen["until"] if seen["until"].tzinfo else seen["until"].replace(tzinfo=UTC)
    assert before + sessions.REFRESH_CLAIM - timedelta(seconds=2) <= until <= before + sessions.REFRESH_CLAIM + \
        timedelta(seconds=2)


def test_an_ended_session_is_not_refreshed(ctx, centre):
    c = centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    sessions.end_session(s, "signed_out")
    db.session.commit()
    sessions._refresh(s)
    assert c.calls == []


@pytest.mark.parametrize("reason", ["invalid_grant", "invalid_client"])
def test_a_refresh_the_centre_rejects_ends_the_session(ctx, centre, ended, reason):
    centre(AuthCentreError(reason, "refused"))
    s = open_one(expires_in=1)
    sessions._refresh(s)
    s = db.session.get(UserSession, s.id_hash)
    assert s.end_reason == "refresh_rejected" and s.refresh_claimed_until is None
    assert ended[-1][1]["reason"] == "refresh_rejected"


def test_a_centre_outage_keeps_the_session_and_says_so(ctx, centre, caplog):
    centre(AuthCentreError("unavailable", "502"))
    s = open_one(expires_in=1)
    with caplog.at_level(logging.WARNING, logger="sso.sessions"):
        sessions._refresh(s)
    s = db.session.get(UserSession, s.id_hash)
    assert s.ended_at is None and s.refresh_claimed_until is None
    assert "token_refresh_failed tenant=t1 reason=unavailable" in caplog.messages


def test_a_tenant_without_credentials_ends_its_sessions_at_refresh(ctx, monkeypatch, ended):
    def missing(tenant_id):
        raise LoginError("app_missing", "no app", tenant_id=tenant_id)

    monkeypatch.setattr(services, "client_for_tenant_id", missing)
    s = open_one(expires_in=1)
    sessions._refresh(s)
    assert db.session.get(UserSession, s.id_hash).end_reason == "app_missing"
    assert ended[-1][1] == {"id_hashes": [s.id_hash], "reason": "app_missing"}


def test_a_refresh_restarts_the_access_tokens_lifetime(ctx, centre):
    centre(Tokens("at-2", "rt-2", 600))
    s = open_one(expires_in=1)
    before = datetime.now(UTC)
    sessions._refresh(s)
    db.session.commit()
    after = datetime.now(UTC)
    expires = aware(db.session.get(UserSession, s.id_hash).access_expires_at)
    assert before + timedelta(seconds=600) <= expires <= after + timedelta(seconds=600)


# --- the cookie -----------------------------------------------------------------------------------


def bridge_signed(value: str | bytes, key: str) -> str:
    """A cookie as an earlier start of the bridge signed it: the salt is part of the cookie's format,
    so sessions survive a restart or an upgrade."""
    return Signer(key, salt="bridge-session-id").sign(value).decode()


def test_the_cookie_is_host_only_with_secure_cookies(app_ctx):
    app_ctx.config["COOKIE_SECURE"] = True
    assert sessions.session_cookie_name() == sessions.SESSION_COOKIE == "__Host-bridge_sid"
    app_ctx.config["COOKIE_SECURE"] = False
    assert sessions.session_cookie_name() == sessions.SESSION_COOKIE == "bridge_sid"


def test_outside_an_app_the_cookie_has_its_plain_name():
    assert sessions.session_cookie_name() == "bridge_sid"


def test_a_misspelt_module_attribute_is_the_usual_attribute_error():
    misspelt = "SESSION_COOKIES"
    with pytest.raises(AttributeError, match="^module 'sso.sessions' has no attribute 'SESSION_COOKIES'$"):
        getattr(sessions, misspelt)
    assert not hasattr(sessions, misspelt)


def test_a_signed_id_comes_back_and_a_forged_one_does_not(app_ctx):
    key = app_ctx.config["SECRET_KEY"]
    cookie = sessions.sign_session_id("raw-id")
    assert cookie == bridge_signed("raw-id", key)
    assert sessions.unsign_session_id(cookie) == "raw-id"
    assert sessions.unsign_session_id(bridge_signed("issued-earlier", key)) == "issued-earlier"
    assert sessions.unsign_session_id(cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")) is None
    assert sessions.unsign_session_id("raw-id") is None  # the id alone, unsigned
    assert sessions.unsign_session_id(Signer(key).sign("raw-id").decode()) is None  # same key, other purpose
    assert sessions.unsign_session_id(bridge_signed("raw-id", "another-key-" + "y" * 40)) is None
    assert sessions.unsign_session_id(None) is None and sessions.unsign_session_id("") is None


def test_a_validly_signed_cookie_that_is_not_ascii_is_refused_not_an_error(app_ctx):
    assert sessions.unsign_session_id(bridge_signed("ïd".encode(), app_ctx.config["SECRET_KEY"])) is None


def test_a_cookie_longer_than_256_characters_is_refused_unread(app_ctx):
    raw = "x" * (256 - len(sessions.sign_session_id("")))
    assert len(sessions.sign_session_id(raw)) == 256
    assert sessions.unsign_session_id(sessions.sign_session_id(raw)) == raw
    assert sessions.unsign_session_id(sessions.sign_session_id(raw + "x")) is None


def test_cookies_signed_with_a_retired_key_still_count_until_it_is_dropped(app_ctx):
    old_key = app_ctx.config["SECRET_KEY"]
    old_cookie = sessions.sign_session_id("before-rotation")
    app_ctx.config.update(SECRET_KEY="rotated-key-" + "z" * 40, SECRET_KEY_FALLBACKS=["unrelated-" + "u" * 40, old_key])
    new_cookie = sessions.sign_session_id("after-rotation")
    assert new_cookie != bridge_signed("after-rotation", old_key)  # new cookies use the new key
    assert sessions.unsign_session_id(old_cookie) == "before-rotation"
    assert sessions.unsign_session_id(new_cookie) == "after-rotation"
    app_ctx.config["SECRET_KEY_FALLBACKS"] = []
    assert sessions.unsign_session_id(old_cookie) is None
    assert sessions.unsign_session_id(new_cookie) == "after-rotation"


# --- opening and finding sessions -----------------------------------------------------------------


def test_a_new_session_keeps_who_signed_in_its_tokens_encrypted_and_its_lifetimes(ctx):
    ctx.config["SESSION_ABSOLUTE_HOURS"] = 5
    before = datetime.now(UTC)
    raw = sessions.open_session(replace(IDENTITY, jit=True), "at-1", "rt-1", 900)
    db.session.commit()
    after = datetime.now(UTC)
    db.session.expire_all()
    s = sessions.find_session(raw)
    assert (s.tenant_id, s.user_name, s.name, s.role, s.org_code, s.org_name, s.email, s.mobile, s.jit) == (
        "t1", "alice", "Alice", "admin", "d1", "Finance", "a@example.com", "+8613800000000", True)
    created = aware(s.created_at)
    assert before <= created <= after
    assert aware(s.last_seen_at) == created
    assert aware(s.expires_at) - created == timedelta(hours=5)
    assert aware(s.access_expires_at) - created == timedelta(seconds=900)
    assert s.ended_at is None and s.end_reason is None and s.refresh_claimed_until is None
    box = keyring().data
    assert "at-1" not in s.access_token_enc and "rt-1" not in s.refresh_token_enc
    assert (box.decrypt(s.access_token_enc), box.decrypt(s.refresh_token_enc)) == ("at-1", "rt-1")
    # the database keeps only the id's hash; the id is 256 random bits, URL-safe
    assert s.id_hash == hash_token(raw) != raw
    assert len(raw) == 43 and raw.replace("-", "").replace("_", "").isalnum()


def test_a_session_without_a_refresh_token_stores_none(ctx):
    raw = sessions.open_session(IDENTITY, "at-1", None, 900)
    db.session.commit()
    s = sessions.find_session(raw)
    assert s.refresh_token_enc is None and s.jit is False
    assert sessions.needs_refresh(s, aware(s.access_expires_at)) is False


def test_each_login_gets_its_own_id(ctx):
    assert sessions.open_session(IDENTITY, "a", None, 60) != sessions.open_session(IDENTITY, "a", None, 60)


def test_no_id_or_an_unknown_id_finds_no_session(ctx):
    open_one()
    assert sessions.find_session(None) is None and sessions.find_session("") is None
    assert sessions.find_session("unknown") is None


# --- ending many sessions at once -----------------------------------------------------------------


def open_for(user_name: str, tenant_id: str = "t1") -> UserSession:
    raw = sessions.open_session(replace(IDENTITY, tenant_id=tenant_id, user_name=user_name), "at", "rt", 3600)
    db.session.commit()
    return sessions.find_session(raw)


@pytest.fixture
def many(ctx):
    """Open sessions of alice, bob and carol in t1 and of alice in t2, and one of alice already ended."""
    db.session.add_all([TenantUser(tenant_id="t1", user_name="bob", last_sync_ts="1", enabled=False),
                        TenantUser(tenant_id="t1", user_name="carol", last_sync_ts="1")])
    db.session.commit()
    rows = {name: open_for(name) for name in ("alice", "bob", "carol")}
    rows["t2-alice"] = open_for("alice", "t2")
    rows["ended"] = open_for("alice")
    sessions.sign_out(rows["ended"], reason="signed_out", request_id="r", remote_addr=None)
    return {name: s.id_hash for name, s in rows.items()}


def end_reasons() -> dict[str, str | None]:
    db.session.expire_all()
    rows = db.session.execute(db.select(UserSession)).scalars()
    return {s.id_hash: (s.end_reason if s.ended_at is not None else None) for s in rows}


def test_ending_named_users_ends_only_their_open_sessions(many, ended, caplog):
    ended.clear()
    with caplog.at_level(logging.INFO, logger="sso.sessions"):
        count = sessions.end_sessions("t1", ["alice", "bob"], "authsync_revoked_a_reason_past_32_chars")
    db.session.commit()
    assert count == 2
    assert end_reasons() == {many["alice"]: "authsync_revoked_a_reason_past_3", many["bob"]: "authsync_revoked_a_reason_past_3",
                             many["carol"]: None, many["t2-alice"]: None, many["ended"]: "signed_out"}
    assert len(ended) == 1 and ended[0][0] == "sso"
    assert sorted(ended[0][1]["id_hashes"]) == sorted([many["alice"], many["bob"]])
    assert ended[0][1]["reason"] == "authsync_revoked_a_reason_past_32_chars"
    assert ("sessions_ended tenant=t1 users=2 reason=authsync_revoked_a_reason_past_32_chars count=2"
            in caplog.messages)


def test_ending_the_whole_tenant_leaves_other_tenants_alone(many, ended, caplog):
    ended.clear()
    before = datetime.now(UTC)
    with caplog.at_level(logging.INFO, logger="sso.sessions"):
        assert sessions.end_sessions("t1", None, "tenant_deleted") == 3
    db.session.commit()
    assert end_reasons() == {many["alice"]: "tenant_deleted", many["bob"]: "tenant_deleted",
                             many["carol"]: "tenant_deleted", many["t2-alice"]: None, many["ended"]: "signed_out"}
    assert before <= aware(db.session.get(UserSession, many["carol"]).ended_at) <= datetime.now(UTC)
    assert sorted(ended[0][1]["id_hashes"]) == sorted([many["alice"], many["bob"], many["carol"]])
    assert "sessions_ended tenant=t1 users=all reason=tenant_deleted count=3" in caplog.messages


def test_ending_nobody_ends_nothing_and_announces_nothing(many, ended, caplog):
    ended.clear()
    with caplog.at_level(logging.INFO, logger="sso.sessions"):
        assert sessions.end_sessions("t1", [], "x") == 0
        assert sessions.end_sessions("t1", ["dave"], "x") == 0
        assert sessions.end_sessions("t3", None, "x") == 0
    db.session.commit()
    assert set(end_reasons().values()) == {None, "signed_out"}
    assert ended == [] and not [m for m in caplog.messages if m.startswith("sessions_ended")]


def test_only_refused_ends_just_the_sessions_admission_now_refuses(many, ended):
    ended.clear()
    assert sessions.end_sessions("t1", None, "user_sync", only_refused=True) == 1
    db.session.commit()
    assert end_reasons()[many["bob"]] == "user_sync"  # bob is disabled
    assert end_reasons()[many["alice"]] is None and end_reasons()[many["carol"]] is None
    assert ended[0][1]["id_hashes"] == [many["bob"]]


# --- a completed login ----------------------------------------------------------------------------


def login_events() -> list[tuple]:
    return [(e.outcome, e.request_id, e.tenant_id, e.user_name, e.detail, e.remote_addr)
            for e in db.session.execute(db.select(LoginEvent).order_by(LoginEvent.id)).scalars()]


def test_signing_in_replaces_the_browsers_session_and_audits_the_login(ctx, ended):
    first = sessions.sign_in(IDENTITY, Tokens("at-1", "rt-1", 3600), previous_cookie=None, request_id="req-1",
                             remote_addr="203.0.113.9")
    second = sessions.sign_in(replace(IDENTITY, jit=True), Tokens("at-2", None, 60),
                              previous_cookie=sessions.sign_session_id(first), request_id="req-2", remote_addr=None)
    db.session.rollback()  # both logins are committed already
    db.session.expire_all()
    old, new = sessions.find_session(first), sessions.find_session(second)
    assert old.end_reason == "replaced" and new.ended_at is None and first != second
    assert keyring().data.decrypt(old.refresh_token_enc) == "rt-1"
    assert keyring().data.decrypt(new.access_token_enc) == "at-2" and new.refresh_token_enc is None
    assert aware(new.access_expires_at) - aware(new.created_at) == timedelta(seconds=60)
    assert new.jit is True
    assert login_events() == [("success", "req-1", "t1", "alice", None, "203.0.113.9"),
                              ("success", "req-2", "t1", "alice", "jit", None)]
    assert ended == [("sso", {"id_hashes": [old.id_hash], "reason": "replaced"})]


def test_an_unsigned_previous_cookie_ends_nothing(ctx, ended):
    first = sessions.sign_in(IDENTITY, Tokens("at-1", "rt-1", 3600), previous_cookie=None, request_id="req-1",
                             remote_addr=None)
    sessions.sign_in(IDENTITY, Tokens("at-2", "rt-2", 3600), previous_cookie=first, request_id="req-2",
                     remote_addr=None)
    assert sessions.find_session(first).ended_at is None and ended == []


# --- every signed-in request ----------------------------------------------------------------------


def open_cookie(**changes) -> tuple[str, str]:
    """A signed cookie for a new session of alice, and the session's id hash."""
    raw = sessions.open_session(IDENTITY, "at-1", "rt-1", 3600)
    db.session.commit()
    s = sessions.find_session(raw)
    for name, value in changes.items():
        setattr(s, name, value)
    db.session.commit()
    return sessions.sign_session_id(raw), s.id_hash


def test_a_live_cookie_gives_its_session_and_records_the_activity(ctx):
    cookie, id_hash = open_cookie(last_seen_at=datetime.now(UTC) - timedelta(minutes=2))
    before = datetime.now(UTC)
    s = sessions.current_session(cookie)
    assert s.id_hash == id_hash and s.ended_at is None
    db.session.rollback()  # the activity is committed
    db.session.expire_all()
    assert aware(db.session.get(UserSession, id_hash).last_seen_at) >= before


def test_a_missing_forged_or_unknown_cookie_gives_no_session(ctx):
    cookie, _ = open_cookie()
    assert sessions.current_session(None) is None
    assert sessions.current_session(cookie + "x") is None
    assert sessions.current_session(sessions.sign_session_id("no-such-session")) is None


@pytest.mark.parametrize(("changes", "reason"), [
    ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "expired"),
    ({"last_seen_at": datetime.now(UTC) - timedelta(minutes=61)}, "idle"),
])
def test_a_refused_session_is_ended_at_its_next_request(ctx, ended, changes, reason):
    cookie, id_hash = open_cookie(**changes)
    assert sessions.current_session(cookie) is None
    db.session.rollback()
    assert db.session.get(UserSession, id_hash).end_reason == reason  # committed
    assert ended == [("sso", {"id_hashes": [id_hash], "reason": reason})]
    assert sessions.current_session(cookie) is None
    assert len(ended) == 1  # already ended: not announced again


def test_an_ended_session_keeps_its_reason(ctx, ended):
    cookie, id_hash = open_cookie()
    sessions.end_session(db.session.get(UserSession, id_hash), "signed_out")
    db.session.commit()
    assert sessions.current_session(cookie) is None
    assert db.session.get(UserSession, id_hash).end_reason == "signed_out" and len(ended) == 1


def test_a_request_near_the_access_tokens_expiry_refreshes_it(ctx, centre):
    c = centre(Tokens("at-2", "rt-2", 3600))
    cookie, id_hash = open_cookie(access_expires_at=datetime.now(UTC) + timedelta(seconds=10))
    s = sessions.current_session(cookie)
    assert s.id_hash == id_hash and c.calls == [("client-of-t1", "rt-1")]
    db.session.rollback()
    db.session.expire_all()
    assert keyring().data.decrypt(db.session.get(UserSession, id_hash).access_token_enc) == "at-2"
    assert sessions.current_session(cookie).id_hash == id_hash and len(c.calls) == 1  # fresh now


def test_a_request_whose_refresh_is_rejected_is_signed_out(ctx, centre):
    centre(AuthCentreError("invalid_grant", "refused"))
    cookie, id_hash = open_cookie(access_expires_at=datetime.now(UTC) + timedelta(seconds=10))
    assert sessions.current_session(cookie) is None
    assert db.session.get(UserSession, id_hash).end_reason == "refresh_rejected"


def test_a_centre_outage_at_refresh_keeps_the_user_signed_in(ctx, centre):
    centre(AuthCentreError("unavailable", "502"))
    cookie, id_hash = open_cookie(access_expires_at=datetime.now(UTC) + timedelta(seconds=10))
    assert sessions.current_session(cookie).id_hash == id_hash


def test_activity_is_recorded_at_most_once_a_minute(ctx):
    s = open_one()
    seen = aware(s.last_seen_at)
    sessions.touch(s, seen + timedelta(seconds=59))
    assert aware(s.last_seen_at) == seen
    sessions.touch(s, seen + timedelta(seconds=60))
    assert aware(s.last_seen_at) == seen + timedelta(seconds=60)
    s.last_seen_at = datetime.now(UTC) - timedelta(minutes=5)
    before = datetime.now(UTC)
    sessions.touch(s)
    assert aware(s.last_seen_at) >= before


def test_a_refresh_is_due_within_the_margin_before_the_access_token_expires(ctx):
    ctx.config["ACCESS_TOKEN_REFRESH_MARGIN_SECONDS"] = 120
    s = open_one(expires_in=3600)
    expiry = aware(s.access_expires_at)
    assert sessions.needs_refresh(s, expiry - timedelta(seconds=121)) is False
    assert sessions.needs_refresh(s, expiry - timedelta(seconds=120)) is True
    assert sessions.needs_refresh(s) is False
    assert sessions.needs_refresh(open_one(expires_in=60)) is True
    s.access_expires_at = None  # a centre that gave no lifetime
    assert sessions.needs_refresh(s, expiry) is False


# --- the row locks, against a concurrent transaction (PostgreSQL: SQLite has no row locks) ---------



class EndedMeanwhile:
    """Another process signs the session out while the centre answers, and commits only once this
    transaction waits for the row: what this one then reads is what a real race would leave."""

    def __init__(self, id_hash: str):
        self.engine = db.engine
        self.other = self.engine.connect()
        self.other.execute(db.update(UserSession).where(UserSession.id_hash == id_hash)
                           .values(ended_at=datetime.now(UTC), end_reason="signed_out"))
        self.thread = threading.Thread(target=self._commit_once_someone_waits)
        self.thread.start()

    def _commit_once_someone_waits(self):
        wait_until_a_query_waits_on_a_lock(self.engine)
        self.other.commit()
        self.other.close()

    def join(self):
        self.thread.join(timeout=15)


@pytest.fixture
def racing_centre(ctx, monkeypatch):
    races = []

    def install(answer, id_hash):
        class Racing(Centre):
            def refresh(self, client, refresh_token):
                races.append(EndedMeanwhile(id_hash))
                return super().refresh(client, refresh_token)

        monkeypatch.setattr(services, "auth_centre", lambda: Racing(answer))
        monkeypatch.setattr(services, "client_for_tenant_id", lambda tenant_id: "client")

    yield install
    for race in races:
        race.join()


@postgresql_only
def test_a_sign_out_during_a_refresh_wins(ctx, racing_centre):
    cookie, id_hash = open_cookie(access_expires_at=datetime.now(UTC) + timedelta(seconds=10))
    racing_centre(Tokens("at-2", "rt-2", 600), id_hash)
    assert sessions.current_session(cookie) is None  # not served after the sign-out
    db.session.expire_all()
    assert db.session.get(UserSession, id_hash).end_reason == "signed_out"


@postgresql_only
def test_a_sign_out_during_a_rejected_refresh_keeps_its_reason_and_is_not_announced_again(ctx, racing_centre, ended):
    cookie, id_hash = open_cookie(access_expires_at=datetime.now(UTC) + timedelta(seconds=10))
    racing_centre(AuthCentreError("invalid_grant", "refused"), id_hash)
    assert sessions.current_session(cookie) is None
    db.session.expire_all()
    assert db.session.get(UserSession, id_hash).end_reason == "signed_out" and ended == []


@postgresql_only
def test_a_held_sign_in_being_taken_cannot_be_taken_twice(ctx):
    sessions.hold_sign_in(IDENTITY, Tokens("a", None, 60), browser_token="b1", kind="workbench", next_url=None)
    assert sessions.held_sign_in("b1", take=True) is not None  # not committed yet: another click waits
    with db.engine.connect() as other:
        with pytest.raises(OperationalError, match="could not obtain lock"):
            other.execute(db.select(HeldSignIn).with_for_update(nowait=True))
    db.session.commit()
    assert sessions.held_sign_in("b1", take=True) is None
