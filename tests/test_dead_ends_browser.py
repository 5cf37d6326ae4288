"""No dead ends, in real headless Chromium against the whole chain (bridge, simulator as the
tenant's centre): a refusal offers another account, the language switch keeps the refusal, a
mistyped company code is said on the form; the console's chart. Screenshots go to
artifacts/screenshots/ (CI keeps them as artifacts)."""

from __future__ import annotations

import re

import pytest

from tests.e2e import HUASHAN, PASSWORDS, stack_fixture
from tests.servers import ROOT

pytestmark = pytest.mark.live
SHOTS = ROOT / "artifacts" / "screenshots"
OPERATOR_PASSWORD = "correct horse battery"

stack = stack_fixture("dead-ends", BRAND_APP_NAME="华山协同办公", BRAND_VENDOR_NAME="示例软件有限公司",
                      BRAND_SUPPORT="support@example.com", BRAND_ICP="京ICP备12345678号-1")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def centre_sign_in(page, user: str) -> None:
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.locator("form button[type=submit].wide").first.click()


def refused_as_wangwu(fresh, page) -> None:
    """wangwu is disabled in the seed: the bridge refuses him after the callback."""
    page.goto(f"{fresh.bridge.url}/sso/login")
    page.fill("#tenant", "huashan")
    page.locator("form button[type=submit]").first.click()
    centre_sign_in(page, "wangwu")
    page.wait_for_selector("h1[data-reason]")
    assert "/sso/callback" in page.url
    assert page.locator("h1[data-reason]").get_attribute("data-reason") == "user_disabled"


def test_refusal_offers_another_account_through_the_centres_logout(fresh, page):
    refused_as_wangwu(fresh, page)
    assert page.locator("[data-field=signing-in-to]").inner_text() == "您正在登录 华山协同办公（示例软件有限公司 提供）"
    assert page.locator("footer [data-field=icp]").get_attribute("href") == "https://beian.miit.gov.cn/"
    shot(page, "refused-zh")
    seen = []
    page.on("request", lambda request: seen.append(request.url) if request.is_navigation_request() else None)
    page.click("#other-account")
    # The centre signed wangwu out and sent the browser back to start again at huashan: its sign-in page.
    page.wait_for_selector("#username")
    assert any(re.search(r"/t/huashan/api/v1/logout\?redirect_url=", url) for url in seen), seen
    assert any(url.startswith(f"{fresh.bridge.url}/sso/login?tenant={HUASHAN}") for url in seen), seen
    shot(page, "other-account-centre-sign-in")
    centre_sign_in(page, "zhangsan")
    page.wait_for_url(f"{fresh.bridge.url}/sso/")
    assert page.locator("[data-field=user_name]").inner_text() == "zhangsan"


def test_language_switch_on_a_refusal_keeps_the_reason(fresh, page):
    refused_as_wangwu(fresh, page)
    rid = page.locator(".rid code").inner_text()
    assert page.locator("h1").inner_text() == "账号已被停用"
    page.click("#lang-switch")
    page.wait_for_url(f"{fresh.bridge.url}/sso/refused?lang=en")
    assert page.locator("h1[data-reason]").get_attribute("data-reason") == "user_disabled"
    assert page.locator("h1").inner_text() == "Your account is disabled"
    assert page.locator("#other-account").inner_text() == "Use another account"
    assert page.locator(".rid code").inner_text() == rid  # the request id to quote stays the refused one
    shot(page, "refused-en")
    page.click("#lang-switch")
    page.wait_for_url(f"{fresh.bridge.url}/sso/refused?lang=zh")
    assert page.locator("h1").inner_text() == "账号已被停用"
    assert page.locator("#other-account").inner_text() == "使用其他账号登录"


@pytest.mark.parametrize("lang, words", [("zh", "找不到企业代码“huashn”"), ("en", "No company has the code “huashn”")])
def test_mistyped_company_code_is_said_on_the_form(fresh, page, lang, words):
    page.goto(f"{fresh.bridge.url}/sso/login?lang={lang}")
    page.fill("#tenant", "huashn")
    page.locator("form button[type=submit]").first.click()
    page.wait_for_selector("#tenant-error")
    assert words in page.locator("#tenant-error").inner_text()
    assert page.input_value("#tenant") == "huashn" and page.locator("h1[data-reason]").count() == 0
    shot(page, f"login-typo-{lang}")
    page.fill("#tenant", "huashan")  # corrected, on the same form
    page.locator("form button[type=submit]").first.click()
    page.wait_for_selector("#username")  # the centre's sign-in page


def _operator(fresh) -> None:
    runner = fresh.bridge_app.test_cli_runner()
    made = runner.invoke(args=["admin", "create-user", "ops", "--password-stdin"], input=f"{OPERATOR_PASSWORD}\n")
    assert made.exit_code == 0, made.output


@pytest.mark.parametrize("lang, width, height", [("zh", 1366, 768), ("en", 1366, 768), ("zh", 375, 812),
                                                 ("en", 375, 812)])
def test_console_home_charts_the_last_day(fresh, chromium, lang, width, height):
    _operator(fresh)
    context = chromium.new_context(viewport={"width": width, "height": height})
    screen = context.new_page()
    try:
        # A refusal and a success to chart (the sync calls of the seed are there already).
        screen.goto(f"{fresh.bridge.url}/sso/login?tenant=nobody")
        screen.goto(f"{fresh.bridge.url}/admin/?lang={lang}")
        screen.fill("#username", "ops")
        screen.fill("#password", OPERATOR_PASSWORD)
        screen.locator("form button[type=submit]").click()
        screen.wait_for_url(re.compile(rf"{re.escape(fresh.bridge.url)}/admin/(\?lang=\w+)?$"))
        chart = screen.locator("#chart-sign_ins")
        assert chart.get_attribute("data-failures") == "1"
        assert screen.locator("#chart-sync_calls svg rect").count() > 0  # the seed's sync calls, drawn
        legend = screen.locator("#chart-sign_ins .legend").inner_text()
        assert ("找不到该企业" if lang == "zh" else "Company not found") in legend, legend
        assert screen.locator("#last-refused [data-reason=unknown_tenant]").count() == 1
        assert screen.evaluate("document.documentElement.scrollWidth") <= width
        shot(screen, f"admin-home-{lang}-{width}")
        screen.goto(f"{fresh.bridge.url}/admin/tenants")
        wrap = screen.locator(".table-wrap").first
        # The last column is on screen, not scrolled away inside the table's box.
        assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth") or width < 700
        assert screen.evaluate("document.documentElement.scrollWidth") <= width
        shot(screen, f"admin-tenants-{lang}-{width}")
        screen.goto(f"{fresh.bridge.url}/admin/tenants/{HUASHAN}")
        screen.locator("#ask-end-tenant-sessions").click()  # asks first
        assert screen.locator("#end-tenant-sessions").is_visible()
        shot(screen, f"admin-confirm-{lang}-{width}")
    finally:
        context.close()
