"""Workbench launches against centres that do not answer a re-initiated authorize silently (the
simulator plays them), over real HTTP: gunicorn on PostgreSQL, the simulator, a browser's cookies."""

from __future__ import annotations

import re

import pytest

from extensions import db
from sso.models import LoginEvent
from tests.e2e import Browser, csrf_of, launch_from_workbench, refused_reason, stack_fixture

pytestmark = pytest.mark.live

stack = stack_fixture("centre-behaviours")


def _confirm(fresh, browser, page):
    assert page.status_code == 200 and 'data-confirm="workbench"' in page.text, page.text[:300]
    assert "张三" in page.text and "华山科技有限公司" in page.text
    assert browser.me(fresh).status_code == 401  # nothing is open before the click
    return browser.post(f"{fresh.bridge.url}/sso/continue", data={"csrf_token": csrf_of(page.text),
                                                                  "action": "continue"})


@pytest.mark.parametrize("faults", [("refuses_prompt",), ("honours_prompt", "forgets_sign_in")])
def test_a_centre_that_cannot_answer_silently_gets_a_one_click_confirmation(fresh, faults):
    for fault in faults:
        fresh.fault("huashan", fault)
    browser = Browser()
    landed = _confirm(fresh, browser, launch_from_workbench(fresh, browser))
    assert landed.url == f"{fresh.bridge.url}/sso/" and browser.me(fresh).json()["user_name"] == "zhangsan"


def test_a_centre_that_ignores_prompt_and_forgot_the_sign_in_shows_its_own_page(fresh):
    fresh.fault("huashan", "forgets_sign_in")
    browser = Browser()
    page = launch_from_workbench(fresh, browser)
    assert page.url.startswith(f"{fresh.simulator.url}/t/huashan/api/v1/oauth2/authorize")
    assert "prompt=none" in page.url and re.search(r'name="password"', page.text)


def test_a_userinfo_tenant_that_is_a_domain_id_is_refused_and_the_operator_sees_both(fresh):
    fresh.fault("huashan", "domain_id_tenant")
    browser = Browser()
    landed = launch_from_workbench(fresh, browser)
    assert landed.status_code == 403 and refused_reason(landed) == "tenant_mismatch"
    with fresh.bridge_app.app_context():
        event = db.session.execute(db.select(LoginEvent).where(LoginEvent.reason == "tenant_mismatch")).scalars().one()
    assert "domain-" in event.detail and "fe8ff0dea173a12cb51ebb4c27c2aae4" in event.detail
