"""The read the OIDC token and userinfo endpoints make in one round trip (a session with its tenant
and the tenant's order links) answers exactly what the general reads answer, for every shape of
tenant: several orders, one of them without an instance, none at all, no tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from sso.models import UserSession
from sso.oidc.server import session_facts
from tenants import queries
from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance, TenantUser


@pytest.fixture
def tenants(app_ctx):
    now = datetime.now(UTC)
    db.session.add_all([
        Tenant(tenant_id="several", tenant_code="sev", name="Several", domain_name="https://idp.example.com",
               last_sync_ts="1", domain_id="d-1"),
        Tenant(tenant_id="none", tenant_code="none", name="No orders", domain_name="https://idp.example.com",
               last_sync_ts="1", test_flag=True, deleted_at=now),
        Instance(instance_id="i-old", order_id="o1", order_line_id="l1", status=InstanceStatus.FROZEN, seats=5),
        Instance(instance_id="i-new", order_id="o2", order_line_id="l2", status=InstanceStatus.ACTIVE,
                 expire_time=now + timedelta(days=3)),
        # Oldest to newest: an instance, a link the bridge has no instance for, the newest instance.
        TenantInstance(tenant_id="several", instance_id="i-old", created_at=now - timedelta(days=3)),
        TenantInstance(tenant_id="several", instance_id="i-unknown", created_at=now - timedelta(days=2)),
        TenantInstance(tenant_id="several", instance_id="i-new", created_at=now - timedelta(days=1)),
        TenantUser(tenant_id="several", user_name="alice", name="Alice S.", last_sync_ts="1"),
        TenantUser(tenant_id="several", user_name="bob", name="Bob", last_sync_ts="1")])
    for tenant_id in ("several", "none", "missing"):
        db.session.add(UserSession(id_hash=tenant_id.ljust(64, "h"), tenant_id=tenant_id, user_name="alice",
                                   name="Alice", email="a@example.com", created_at=now, last_seen_at=now,
                                   expires_at=now + timedelta(hours=8), access_token_enc="secret"))
    db.session.commit()


def _facts(row) -> dict | None:
    return None if row is None else {k: getattr(row, k) for k in row._fields}


@pytest.mark.parametrize("tenant_id", ["several", "none", "missing"])
def test_the_session_with_its_tenant_and_orders_is_what_the_separate_reads_answer(tenants, tenant_id):
    user_session, facts = session_facts(tenant_id.ljust(64, "h"))
    tenant, orders = facts.tenant, facts.orders
    stored = db.session.get(UserSession, tenant_id.ljust(64, "h"))
    assert {k: getattr(user_session, k) for k in user_session._fields} == {
        k: getattr(stored, k) for k in user_session._fields}
    assert "access_token_enc" not in user_session._fields  # the centre's tokens are not read
    assert _facts(tenant) == _facts(queries.tenant(tenant_id))
    alice = db.session.get(TenantUser, (tenant_id, "alice"))
    assert (facts.user is None) == (alice is None)
    if alice is not None:
        assert _facts(facts.user) == {k: getattr(alice, k) for k in facts.user._fields}
    expected = queries.orders_of(tenant_id)
    assert [linked for linked, _ in orders] == [linked for linked, _ in expected]
    for (_, instance), (_, wanted) in zip(orders, expected, strict=True):
        assert (instance is None) == (wanted is None)
        if wanted is not None:
            assert {k: getattr(instance, k) for k in instance._fields} == {
                k: getattr(wanted, k) for k in instance._fields}


def test_the_tenant_with_its_orders_in_their_order(tenants):
    _, facts = session_facts("several".ljust(64, "h"))
    tenant, orders = facts.tenant, facts.orders
    assert (tenant.tenant_code, tenant.domain_id, tenant.deleted_at) == ("sev", "d-1", None)
    assert [(linked, instance and instance.status) for linked, instance in orders] == [
        ("i-new", InstanceStatus.ACTIVE), ("i-unknown", None), ("i-old", InstanceStatus.FROZEN)]
    assert orders[2][1].seats == 5
    assert (facts.user.name, facts.user.enabled) == ("Alice S.", True)
    assert session_facts("none".ljust(64, "h"))[1].orders == []
    assert session_facts("none".ljust(64, "h"))[1].user is None  # another tenant's alice is not this one
    assert session_facts("missing".ljust(64, "h"))[1] == queries.TenantFacts(None, user_read=True)
    assert session_facts("x" * 64) == (None, queries.TenantFacts(None))
