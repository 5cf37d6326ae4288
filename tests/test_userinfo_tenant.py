"""userinfo `tenant` against what the bridge knows of the tenant: the callback's tenantId always,
plus the alternative the operator chose (BRIDGE_USERINFO_TENANT_MATCH): the tenantCode, or the
enterprise's domainId recorded with `flask tenants set-domain-id`. A refusal names both values."""

from __future__ import annotations

import pytest

from app import create_app
from config import ConfigError
from extensions import db
from sso.models import LoginEvent
from tenants.models import Tenant
from tests import factories as f
from tests.helpers import ok
from tests.sso_fixtures import refused, sign_in


@pytest.fixture
def match():
    return "tenant_id"


@pytest.fixture
def app(make_app, match):
    return make_app(USERINFO_TENANT_MATCH=match)


def record(runner, *args):
    return runner.invoke(args=["tenants", "set-domain-id", *args])


def refusal_detail(app) -> str:
    with app.app_context():
        return db.session.execute(db.select(LoginEvent.detail).where(LoginEvent.outcome == "refused")).scalar_one()


@pytest.mark.parametrize(("match", "recorded", "centre_tenant", "admitted"), [
    ("tenant_id", None, f.TENANT, True),
    ("tenant_id", "dom-acme", "dom-acme", False),  # recorded, but this deployment does not accept it
    ("tenant_id", None, "acme", False),
    ("tenant_code", None, "acme", True),
    ("tenant_code", None, f.TENANT, True),
    ("tenant_code", "dom-acme", "dom-acme", False),
    ("domain_id", "dom-acme", "dom-acme", True),
    ("domain_id", "dom-acme", f.TENANT, True),
    ("domain_id", "dom-acme", "dom-other", False),
    ("domain_id", "dom-acme", "acme", False),
    ("domain_id", None, "dom-acme", False),
])
def test_userinfo_tenant_is_admitted_only_as_the_deployment_says(synced, app, runner, client, idp, match,
                                                                 recorded, centre_tenant, admitted):
    if recorded:
        assert record(runner, "acme", recorded).exit_code == 0
    response = sign_in(client, idp, tenant=centre_tenant)
    if admitted:
        assert response.status_code == 302 and client.get("/sso/me").json["user_name"] == "alice"
        return
    refused(response, "tenant_mismatch", 403)
    detail = refusal_detail(app)
    assert repr(centre_tenant) in detail and repr(f.TENANT) in detail


@pytest.mark.parametrize("match", ["domain_id"])
def test_the_refusal_shows_the_operator_the_recorded_domain_id_or_that_none_is(synced, app, runner, client, idp, match):
    refused(sign_in(client, idp, tenant="dom-acme"), "tenant_mismatch", 403)
    assert "no domainId recorded (flask tenants set-domain-id)" in refusal_detail(app)
    assert record(runner, "acme", "dom-elsewhere").exit_code == 0
    with app.app_context():
        db.session.execute(db.delete(LoginEvent))
        db.session.commit()
    refused(sign_in(client, idp, tenant="dom-acme"), "tenant_mismatch", 403)
    assert refusal_detail(app) == (f"userinfo tenant 'dom-acme', callback tenant {f.TENANT!r}, "
                                   "recorded domainId 'dom-elsewhere'")


def stored_domain_id(app, tenant_id=f.TENANT):
    with app.app_context():
        return db.session.get(Tenant, tenant_id).domain_id


def test_set_domain_id_records_shows_and_clears(synced, app, runner):
    result = record(runner, "ACME-not-a-code", "dom-1")
    assert result.exit_code == 1 and "no tenant with id or code" in result.output
    result = record(runner, "acme", " dom-1 ")
    assert result.exit_code == 0 and "domainId 'dom-1'" in result.output and stored_domain_id(app) == "dom-1"
    assert "domainId     dom-1" in runner.invoke(args=["tenants", "show", f.TENANT]).output
    result = record(runner, f.TENANT, "--clear")
    assert result.exit_code == 0 and "cleared" in result.output and stored_domain_id(app) is None
    assert "domainId     -" in runner.invoke(args=["tenants", "show", "acme"]).output


@pytest.mark.parametrize(("args", "message"), [
    (("acme",), "give a DOMAIN_ID, or --clear"),
    (("acme", "dom-1", "--clear"), "give a DOMAIN_ID, or --clear"),
    (("acme", "has space"), "without spaces"),
    (("acme", "x" * 65), "1 to 64"),
])
def test_set_domain_id_refuses_unclear_or_malformed_values(synced, app, runner, args, message):
    result = record(runner, *args)
    assert result.exit_code != 0 and message in result.output and stored_domain_id(app) is None


def test_two_live_tenants_never_share_a_domain_id(synced, app, runner, kg):
    other = "0" * 31 + "2"
    ok(kg.kit("tenantSync", f.tenant_sync(tenantId=other, tenantCode="other", name="Other", instanceId="",
                                          domainName="https://idp.example.com/t/other")))
    assert record(runner, "acme", "dom-1").exit_code == 0
    result = record(runner, "other", "dom-1")
    assert result.exit_code == 1 and f"already recorded for tenant {f.TENANT}" in result.output
    assert stored_domain_id(app, other) is None
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="", timeStamp="20230501000000000")))
    assert record(runner, "other", "dom-1").exit_code == 0  # the first tenant is gone


def test_syncs_never_touch_the_recorded_domain_id(synced, app, runner, kg):
    assert record(runner, "acme", "dom-1").exit_code == 0
    ok(kg.kit("tenantSync", f.tenant_sync(flag=2, name="Acme 新名", timeStamp="20230501000000000")))
    ok(kg.kit("tenantSync", f.tenant_sync(timeStamp="20230601000000000", domainId="dom-forged")))
    assert stored_domain_id(app) == "dom-1"


def test_an_unknown_match_setting_stops_start_up(base_config):
    with pytest.raises(ConfigError, match="tenant_id, tenant_code or domain_id"):
        create_app({**base_config, "USERINFO_TENANT_MATCH": "domainId"})
