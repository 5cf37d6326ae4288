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
from tenants.models import InstanceStatus, TenantUser
from tests.helpers import assert_same, assert_same_orders, fields, tenant_with_several_orders


@pytest.fixture
def tenants(app_ctx):
    now = datetime.now(UTC)
    db.session.add_all([
        *tenant_with_several_orders(now, without_orders="none"),
        TenantUser(tenant_id="several", user_name="alice", name="Alice S.", last_sync_ts="1"),
        TenantUser(tenant_id="several", user_name="bob", name="Bob", last_sync_ts="1")])
    for tenant_id in ("several", "none", "missing"):
        db.session.add(UserSession(id_hash=tenant_id.ljust(64, "h"), tenant_id=tenant_id, user_name="alice",
                                   name="Alice", email="a@example.com", created_at=now, last_seen_at=now,
                                   expires_at=now + timedelta(hours=8), access_token_enc="secret"))
    db.session.commit()


@pytest.mark.parametrize("tenant_id", ["several", "none", "missing"])
def test_the_session_with_its_tenant_and_orders_is_what_the_separate_reads_answer(tenants, tenant_id):
    user_session, facts = session_facts(tenant_id.ljust(64, "h"))
    tenant, orders = facts.tenant, facts.orders
    stored = db.session.get(UserSession, tenant_id.ljust(64, "h"))
    assert {k: getattr(user_session, k) for k in user_session._fields} == {
        k: getattr(stored, k) for k in user_session._fields}
    assert "access_token_enc" not in user_session._fields  # the centre's tokens are not read
    assert fields(tenant) == fields(queries.tenant(tenant_id))
    assert_same(facts.user, db.session.get(TenantUser, (tenant_id, "alice")))
    assert_same_orders(orders, queries.orders_of(tenant_id))


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
