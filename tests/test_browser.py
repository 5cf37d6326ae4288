"""A person in real headless Chromium: the simulator's workbench and portal, the bridge's pages,
and the example SaaS app signing in through the bridge."""

from __future__ import annotations

import re
import sys
import time

import pytest

from tests.e2e import PASSWORDS, stack_fixture
from tests.pg import free_port
from tests.servers import ROOT, LiveServer

pytestmark = pytest.mark.live
SHOTS = ROOT / "artifacts" / "screenshots"  # screenshots to look at after a run (git-ignored, CI artifacts)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


stack = stack_fixture("browser")


def sign_in_form(page, user, tenant=None):
    if tenant:
        page.select_option("#tenant", tenant)
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.locator("form button[type=submit].wide").first.click()


def test_workbench_click_through_lands_signed_in_at_the_bridge(fresh, page, tmp_path):
    page.goto(f"{fresh.simulator.url}/workbench")
    sign_in_form(page, "zhangsan", "huashan")
    page.locator("a.button[href*='/workbench/launch/']").click()
    page.wait_for_url(f"{fresh.bridge.url}/sso/")
    assert page.locator("[data-field=name]").inner_text() == "张三"
    assert "华山科技有限公司" in page.locator("[data-field=tenant]").inner_text()
    assert page.locator("[data-field=role]").inner_text() == "企业管理员"
    shot(page, "bridge-signed-in")
    # English, then sign out through the confirmation page.
    page.click("text=English")
    assert page.locator("[data-field=role]").inner_text() == "Company administrator"
    page.click("text=Sign out")
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{fresh.bridge.url}/sso/signed-out")
    assert page.locator("h1").inner_text() == "Signed out"


def test_portal_sign_in_lands_at_the_bridge(fresh, page):
    page.goto(f"{fresh.bridge.url}/sso/login")
    page.click("button[name=portal]")  # "sign in with Huawei Cloud": KooGallery's unified portal
    page.wait_for_url(re.compile(r".*/unified-login/portal-login\?ind=UNOP&appId=9eef08ffe9e63c84.*"))
    sign_in_form(page, "chenjing", "xihu")
    page.wait_for_url(f"{fresh.bridge.url}/sso/")
    assert page.locator("[data-field=user_name]").inner_text() == "chenjing"


def test_disabled_user_sees_a_clear_refusal(fresh, page, tmp_path):
    page.goto(f"{fresh.bridge.url}/sso/login")
    page.fill("#tenant", "huashan")
    page.locator("form button[type=submit]").first.click()
    sign_in_form(page, "wangwu")
    heading = page.locator("h1[data-reason]")
    assert heading.get_attribute("data-reason") == "user_disabled"
    assert heading.inner_text() == "账号已被停用"
    assert page.locator(".rid code").inner_text()  # the request id to quote to support
    shot(page, "bridge-refused-disabled")


def test_pages_are_usable_on_a_phone(fresh, chromium):
    context = chromium.new_context(viewport={"width": 375, "height": 740}, locale="en-US")
    phone = context.new_page()
    phone.goto(f"{fresh.bridge.url}/sso/login")
    shot(phone, "bridge-login-phone")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    assert phone.locator("label[for=tenant]").inner_text() == "Company code"
    context.close()


# --- the full chain: simulator workbench → bridge → example SaaS app --------------------------------


@pytest.fixture
def saas_app(fresh, tmp_path):
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    output = fresh.bridge_cli("apps", "register", "--name", "Demo SaaS", "--redirect-uri", f"{app_url}/callback",
                              "--initiate-login-uri", f"{app_url}/initiate-login",
                              "--backchannel-logout-uri", f"{app_url}/backchannel-logout",
                              "--post-logout-redirect-uri", f"{app_url}/")
    client_id = re.search(r"client_id:\s+(\S+)", output).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", output).group(1)
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SAAS_", "BRIDGE_", "FLASK_"))},
           "SAAS_ISSUER": fresh.bridge.url, "SAAS_CLIENT_ID": client_id, "SAAS_CLIENT_SECRET": secret,
           "SAAS_APP_URL": app_url, "SAAS_SECRET_KEY": "example-app-secret-key-for-tests"}
    server = LiveServer([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                         "--threads", "4", "examples.saas_app:create_app()"], env, port, log_path=tmp_path / "app.log")
    yield server
    server.stop()


def test_full_chain_app_sign_in_and_revocation_signs_out_of_the_app(fresh, saas_app, page, tmp_path):
    page.goto(saas_app.url)
    page.click("#sign-in")
    # The bridge asks which company; the tenant's centre asks for the password.
    page.fill("#tenant", "huashan")
    page.locator("form button[type=submit]").first.click()
    sign_in_form(page, "zhangsan")
    page.wait_for_url(f"{saas_app.url}/")
    assert page.locator("#welcome").inner_text() == "张三"
    assert "华山科技有限公司" in page.locator("#tenant").inner_text()
    assert page.locator("#role").inner_text() == "admin"
    shot(page, "saas-app-signed-in")

    fresh.sim("revoke", "zhangsan")  # KooGallery: the admin takes the app away from zhangsan
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # back-channel logout is delivered after the sync call
        page.goto(saas_app.url)
        if page.locator("#sign-in").count():
            break
        page.wait_for_timeout(250)
    assert page.locator("#sign-in").count() == 1, saas_app.log_text()


def test_workbench_launch_ends_in_the_app_signed_in(fresh, saas_app, page):
    page.goto(f"{fresh.simulator.url}/workbench")
    sign_in_form(page, "lisi", "huashan")
    page.locator("a.button[href*='/workbench/launch/']").click()
    page.wait_for_url(f"{saas_app.url}/")
    assert page.locator("#user").inner_text() == "lisi"
    # Signing out of the app signs out of the bridge too (RP-initiated logout).
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{saas_app.url}/")
    assert page.locator("#sign-in").count() == 1
    page.goto(f"{fresh.bridge.url}/sso/me")
    assert "not_signed_in" in page.content()

