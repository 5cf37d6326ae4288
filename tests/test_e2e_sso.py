"""End to end over real HTTP: a browser, the simulator's workbench, portal and authentication
centres, and the bridge served by gunicorn on PostgreSQL."""

from __future__ import annotations

import pytest

from common.clock import utcnow
from extensions import db
from sso.models import UserSession
from tests.e2e import (
    HUASHAN,
    XIHU,
    Browser,
    csrf_of,
    launch_from_workbench,
    query_of,
    refused_reason,
    stack_fixture,
    start_stack,
)

pytestmark = pytest.mark.live


stack = stack_fixture("e2e-sso", IDP_READ_TIMEOUT="1")


def test_workbench_launch_signs_in_at_the_bridge(fresh):
    browser = Browser()
    landed = launch_from_workbench(fresh, browser)
    assert landed.status_code == 200 and landed.url == f"{fresh.bridge.url}/sso/"
    assert "张三" in landed.text and "华山科技有限公司" in landed.text
    # The unsolicited workbench code was discarded; the login was re-run bound to this browser.
    hops = [r.url for r in landed.history]
    assert any("/api/v1/oauth2/authorize" in h and "state=" in h for h in hops)
    me = browser.me(fresh).json()
    assert (me["tenant"], me["user_name"], me["role"], me["tenant_code"]) == (HUASHAN, "zhangsan", "admin", "huashan")


def test_unified_portal_signs_in_at_the_bridge(fresh):
    browser = Browser()
    portal = browser.get(f"{fresh.simulator.url}/unified-login/portal-login?ind=UNOP&appId=9eef08ffe9e63c84")
    landed = browser.sign_in_at(portal, "chenjing", tenant="xihu")
    assert landed.url == f"{fresh.bridge.url}/sso/"
    assert browser.me(fresh).json()["user_name"] == "chenjing"


def test_vendor_initiated_login_with_tenant_code(fresh):
    browser = Browser()
    page = browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan")
    assert page.url.startswith(f"{fresh.simulator.url}/t/huashan/api/v1/oauth2/authorize")
    assert query_of(page.url)["code_challenge_method"] == "S256"
    landed = browser.sign_in_at(page, "lisi")
    assert landed.url == f"{fresh.bridge.url}/sso/"
    assert browser.me(fresh).json()["role"] == "user"


def test_login_page_form_leads_to_the_tenant(fresh):
    browser = Browser()
    page = browser.get(f"{fresh.bridge.url}/sso/login")
    answer = browser.post(f"{fresh.bridge.url}/sso/login", data={"csrf_token": csrf_of(page.text), "tenant": "xihu"})
    assert answer.url.startswith(f"{fresh.simulator.url}/t/xihu/api/v1/oauth2/authorize")


@pytest.mark.parametrize("user, reason", [("wangwu", "user_disabled"), ("zhaoliu", "not_authorised")])
def test_admission_refusals_are_clear_pages(fresh, user, reason):
    browser = Browser()
    landed = browser.sign_in_at(browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan"), user)
    assert landed.status_code == 403 and refused_reason(landed) == reason
    assert browser.me(fresh).status_code == 401


def test_frozen_instance_and_deleted_tenant_are_refused(fresh):
    fresh.sim("freeze", "huashan")
    page = Browser().get(f"{fresh.bridge.url}/sso/login?tenant=huashan")
    assert page.status_code == 403 and refused_reason(page) == "instance_suspended"
    fresh.sim("delete-tenant", "xihu")
    page = Browser().get(f"{fresh.bridge.url}/sso/login?tenant=xihu")
    assert page.status_code == 403 and refused_reason(page) == "tenant_deleted"
    assert refused_reason(Browser().get(f"{fresh.bridge.url}/sso/login?tenant=nobody")) == "unknown_tenant"


def test_revoking_in_koogallery_ends_the_session(fresh):
    browser = Browser()
    launch_from_workbench(fresh, browser)
    assert browser.me(fresh).status_code == 200
    fresh.sim("revoke", "zhangsan")
    assert browser.me(fresh).status_code == 401


@pytest.mark.parametrize("command, end_reason, refusal", [
    (("disable", "chenjing", "--tenant", "xihu"), "user_disabled", "user_disabled"),
    (("freeze", "xihu"), "instance_frozen", "instance_suspended"),
])
def test_disabling_or_freezing_ends_the_session(fresh, command, end_reason, refusal):
    browser, bystander = Browser(), Browser()
    launch_from_workbench(fresh, browser, "xihu", "chenjing")
    launch_from_workbench(fresh, bystander, "huashan", "zhangsan")
    assert browser.me(fresh).status_code == 200 and bystander.me(fresh).status_code == 200
    fresh.sim(*command)
    with fresh.bridge_app.app_context():  # ended by the sync call itself, before the user comes back
        ended = db.session.execute(db.select(UserSession).filter_by(tenant_id=XIHU)).scalar_one()
        assert (ended.user_name, ended.end_reason) == ("chenjing", end_reason) and ended.ended_at is not None
    assert browser.me(fresh).status_code == 401
    # Signing in again is refused with the reason, and opens no session.
    again = browser.get(f"{fresh.bridge.url}/sso/login?tenant=xihu")
    assert again.status_code == 403 and refused_reason(again) == refusal
    assert browser.me(fresh).status_code == 401
    assert bystander.me(fresh).status_code == 200  # another tenant's user is not affected


def test_logout_signs_out_of_the_bridge_and_the_authentication_centre(fresh):
    browser = Browser()
    launch_from_workbench(fresh, browser)
    page = browser.get(f"{fresh.bridge.url}/sso/logout")
    done = browser.post(f"{fresh.bridge.url}/sso/logout", data={"csrf_token": csrf_of(page.text)})
    assert done.url == f"{fresh.bridge.url}/sso/signed-out"
    assert any("/t/huashan/api/v1/logout" in r.url for r in done.history)
    assert browser.me(fresh).status_code == 401
    again = browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan")
    assert 'name="password"' in again.text  # the centre asks for the password again


def test_access_token_is_refreshed_at_the_authentication_centre(fresh):
    browser = Browser()
    launch_from_workbench(fresh, browser)
    with fresh.bridge_app.app_context():
        stored = db.session.execute(db.select(UserSession)).scalar_one()
        before = stored.access_token_enc
        stored.access_expires_at = utcnow()
        db.session.commit()
    assert browser.me(fresh).status_code == 200
    with fresh.bridge_app.app_context():
        db.session.expire_all()
        stored = db.session.execute(db.select(UserSession)).scalar_one()
        assert stored.access_token_enc != before and stored.access_expires_at > utcnow()


@pytest.mark.parametrize("kind, seconds, reason, status", [
    ("slow", 3, "idp_timeout", 504),
    ("error5xx", None, "idp_error", 502),
    ("malformed_json", None, "idp_garbage", 502),
    ("expired_codes", None, "code_invalid", 400),
    ("wrong_tenant", None, "tenant_mismatch", 403),
])
def test_injected_faults_give_clear_pages(fresh, kind, seconds, reason, status):
    fresh.fault("huashan", kind, seconds=seconds)
    browser = Browser()
    landed = browser.sign_in_at(browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan"), "zhangsan")
    assert landed.status_code == status and refused_reason(landed) == reason
    assert "Traceback" not in landed.text
    assert "/sso/login?tenant=" + HUASHAN in landed.text  # the retry path
    fresh.fault("huashan", kind, on=False)
    # Retry: still signed in at the centre, so the login completes without a password.
    assert browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan").url == f"{fresh.bridge.url}/sso/"


def test_direct_policy_over_http(base_config, postgres_url, rsa_key, tmp_path_factory):
    live = start_stack(base_config, postgres_url, rsa_key, tmp_path_factory.mktemp("e2e-direct"),
                       WORKBENCH_LOGIN="direct")
    try:
        live.reset()
        browser = Browser()
        landed = launch_from_workbench(live, browser)
        assert landed.url == f"{live.bridge.url}/sso/"
        assert not any("/api/v1/oauth2/authorize" in r.url for r in landed.history)
        assert browser.me(live).json()["user_name"] == "zhangsan"
    finally:
        live.stop()
