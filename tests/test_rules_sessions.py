"""The session lifecycle (sso/sessions.py) as the browser, the operator's audit and the OIDC provider
see it: what ending, holding and refreshing a session leave in the database and announce. The centre
is replaced here by a stand-in object (the live tests refresh against the simulator)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from keys import keyring
from sso import services, sessions
from sso.auth_centre import AuthCentreError, Tokens
from sso.errors import LoginError
from sso.identity import Identity
from sso.models import HeldSignIn, LoginEvent, LoginState, UserSession
from tenants.models import Tenant, TenantUser

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


def test_a_held_sign_in_lapses_at_its_expiry(ctx):
    ctx.config["HELD_SIGN_IN_SECONDS"] = 0
    sessions.hold_sign_in(IDENTITY, Tokens("a", None, 60), browser_token="b1", kind="workbench", next_url=None)
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
    assert "token_refresh_failed tenant=t1 reason=unavailable" in caplog.text


def test_a_tenant_without_credentials_ends_its_sessions_at_refresh(ctx, monkeypatch, ended):
    def missing(tenant_id):
        raise LoginError("app_missing", "no app", tenant_id=tenant_id)

    monkeypatch.setattr(services, "client_for_tenant_id", missing)
    s = open_one(expires_in=1)
    sessions._refresh(s)
    assert db.session.get(UserSession, s.id_hash).end_reason == "app_missing"
    assert ended[-1][1] == {"id_hashes": [s.id_hash], "reason": "app_missing"}
