"""A centre whose userinfo `tenant` is the enterprise's domainId (the simulator's domain_id_tenant
behaviour), against a live bridge deployed with BRIDGE_USERINFO_TENANT_MATCH=domain_id: refused
until the operator records that domainId, then admitted; other tenants keep signing in by tenantId."""

from __future__ import annotations

import re

import pytest

from extensions import db
from sso.models import LoginEvent
from tests.e2e import HUASHAN, Browser, launch_from_workbench, refused_reason, stack_fixture

pytestmark = pytest.mark.live

stack = stack_fixture("domain-id", USERINFO_TENANT_MATCH="domain_id")


def test_a_domain_id_tenant_signs_in_once_the_operator_records_it(fresh):
    fresh.fault("huashan", "domain_id_tenant")
    landed = launch_from_workbench(fresh, Browser())
    assert landed.status_code == 403 and refused_reason(landed) == "tenant_mismatch"
    with fresh.bridge_app.app_context():
        detail = db.session.execute(db.select(LoginEvent.detail).where(
            LoginEvent.reason == "tenant_mismatch")).scalar_one()
    assert f"callback tenant '{HUASHAN}'" in detail and "no domainId recorded" in detail
    domain_id = re.search(r"userinfo tenant '([^']+)'", detail).group(1)
    assert domain_id != HUASHAN

    assert domain_id in fresh.bridge_cli("tenants", "set-domain-id", "huashan", domain_id)
    browser = Browser()
    launch_from_workbench(fresh, browser)
    assert browser.me(fresh).json()["user_name"] == "zhangsan"

    other = Browser()  # xihu's centre reports its tenantId, which is always admitted
    launch_from_workbench(fresh, other, tenant="xihu", user="chenjing")
    assert other.me(fresh).json()["user_name"] == "chenjing"
