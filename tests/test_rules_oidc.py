"""What the OIDC provider (sso/oidc/server.py) tells an app about a signed-in user, scope by scope,
and who it still recognises behind a session: the claims as an app's userinfo and ID token carry
them. The token endpoint itself is exercised end to end in test_oidc.py."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from sso.models import UserSession
from sso.oidc import server
from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance, TenantUser


@pytest.fixture
def ctx(make_app):
    app = make_app()
    with app.test_request_context("/"):
        now = datetime.now(UTC)
        db.session.add_all([
            Tenant(tenant_id="t1", tenant_code="acme", name="Acme", domain_name="https://idp.example.com",
                   last_sync_ts="1"),
            TenantUser(tenant_id="t1", user_name="alice", last_sync_ts="1"),
            Instance(instance_id="i-live", order_id="o1", order_line_id="l1", status=InstanceStatus.ACTIVE,
                     expire_time=now + timedelta(days=30)),
            TenantInstance(tenant_id="t1", instance_id="i-live", created_at=now - timedelta(days=1)),
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


def test_a_refused_session_is_nobody(ctx):
    db.session.get(Instance, "i-live").status = InstanceStatus.FROZEN
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
    for user in (server.user_for_session_hash("h" * 64), server.OidcUser(db.session.get(UserSession, "h" * 64))):
        assert server.claims_for(user, scope) == {"sub": server.subject("t1", "alice"), **claims}


def test_claims_without_a_value_are_left_out(ctx):
    s = db.session.get(UserSession, "h" * 64)
    s.email, s.mobile, s.name = None, None, None
    claims = server.claims_for(server.OidcUser(s), "openid profile email phone")
    assert claims == {"sub": server.subject("t1", "alice"), "name": "alice", "preferred_username": "alice"}


def test_the_koogallery_claims_of_a_tenant_that_is_gone(ctx):
    user = server.user_for_session_hash("h" * 64)
    db.session.delete(db.session.get(TenantInstance, ("t1", "i-live")))
    db.session.delete(db.session.get(Tenant, "t1"))
    db.session.commit()
    claims = server.claims_for(server.OidcUser(user.session), "koogallery")
    assert claims == {"sub": server.subject("t1", "alice"), "tenant": "t1", "role": "admin", "org_code": "d1",
                      "org_name": "Finance"}
