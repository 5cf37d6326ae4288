"""The reads the OIDC token and userinfo endpoints make in fewer round trips than the general ones:
they must answer exactly what the general reads answer, for every shape of tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from tenants import queries
from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance


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
        TenantInstance(tenant_id="several", instance_id="i-new", created_at=now - timedelta(days=1))])
    db.session.commit()


def _facts(row) -> dict | None:
    return None if row is None else {k: getattr(row, k) for k in row._fields}


@pytest.mark.parametrize("tenant_id", ["several", "none", "missing"])
def test_the_tenant_with_its_orders_is_what_the_two_separate_reads_answer(tenants, tenant_id):
    tenant, orders = queries.tenant_with_orders(tenant_id)
    assert _facts(tenant) == _facts(queries.tenant(tenant_id))
    expected = queries.orders_of(tenant_id)
    assert [linked for linked, _ in orders] == [linked for linked, _ in expected]
    for (_, instance), (_, wanted) in zip(orders, expected, strict=True):
        assert (instance is None) == (wanted is None)
        if wanted is not None:
            assert {k: getattr(instance, k) for k in instance._fields} == {
                k: getattr(wanted, k) for k in instance._fields}


def test_the_tenant_with_its_orders_in_their_order(tenants):
    tenant, orders = queries.tenant_with_orders("several")
    assert (tenant.tenant_code, tenant.domain_id, tenant.deleted_at) == ("sev", "d-1", None)
    assert [(linked, instance and instance.status) for linked, instance in orders] == [
        ("i-new", InstanceStatus.ACTIVE), ("i-unknown", None), ("i-old", InstanceStatus.FROZEN)]
    assert orders[2][1].seats == 5
    assert queries.tenant_with_orders("none")[1] == [] and queries.tenant_with_orders("missing") == (None, [])
