"""KooGallery's browser side in the simulator: landing page, unified login portal, enterprise
workbench. Both entry points must hand the app ?code=…&tenant=<tenantId> and nothing else."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from simulator import create_app
from simulator.seed import load_seed

SEED = load_seed()
HUASHAN, XIHU = SEED.tenant("huashan"), SEED.tenant("xihu")
APP_LOGIN = "http://app.test/sso/callback"
PORTAL = f"/unified-login/portal-login?ind=UNOP&appId={SEED.app_id}"


@pytest.fixture(autouse=True)
def _no_sim_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SIM_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def sim(tmp_path):
    return create_app({"TESTING": True, "STATE_DB": str(tmp_path / "sim.sqlite"), "PUBLIC_URL": "http://sim.test",
                       "APP_LOGIN_URL": APP_LOGIN, "BRIDGE_URL": "http://bridge.test"})


@pytest.fixture
def browser(sim):
    return sim.test_client()


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def portal_sign_in(browser, tenant: str, user: str, password: str, url: str = PORTAL):
    page = browser.get(url)
    return browser.post(url, data={"csrf_token": csrf_of(page), "action": "sign_in", "tenant": tenant,
                                   "username": user, "password": password})


def workbench_sign_in(browser, tenant: str, user: str, password: str):
    page = browser.get("/workbench")
    return browser.post("/workbench/sign-in", data={"csrf_token": csrf_of(page), "tenant": tenant, "username": user,
                                                    "password": password})


def redeem(browser, tenant, code: str, redirect_uri: str = APP_LOGIN):
    """What the app does with the code: exchange it at that tenant's centre."""
    return browser.post(f"/t/{tenant.tenant_code}/api/v1/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": tenant.client_id, "client_secret": tenant.client_secret})


def assert_app_launch(answer, tenant) -> str:
    assert answer.status_code == 302 and answer.location.startswith(APP_LOGIN + "?")
    query = query_of(answer.location)
    assert set(query) == {"code", "tenant"} and query["tenant"] == tenant.tenant_id
    return query["code"]


# --- landing ---------------------------------------------------------------------------------------


def test_landing_links_the_workbench_the_portal_and_every_authentication_centre(browser):
    html = browser.get("/").get_data(as_text=True)
    assert 'href="/workbench"' in html
    assert f'href="/unified-login/portal-login?ind=UNOP&amp;appId={SEED.app_id}"' in html
    for tenant in (HUASHAN, XIHU):
        assert f"http://sim.test/t/{tenant.tenant_code}" in html and tenant.tenant_id in html
        assert f'href="/t/{tenant.tenant_code}/login"' in html
    assert "KooGallery 联营 SaaS 模拟器" in html


def test_landing_in_english_and_a_switcher_back(browser):
    html = browser.get("/?lang=en").get_data(as_text=True)
    assert "KooGallery joint-operation SaaS simulator" in html
    assert 'href="/?lang=zh"' in html and ">简体中文</a>" in html


def test_unknown_pages_are_a_clear_page_not_a_stack_trace(browser):
    answer = browser.get("/no/such/page")
    assert answer.status_code == 404 and "页面不存在" in answer.get_data(as_text=True)


# --- unified login portal --------------------------------------------------------------------------


def test_portal_shows_a_sign_in_form_with_tenants_and_demo_users(browser):
    page = browser.get(PORTAL)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "华为云 KooGallery 统一登录" in html
    assert 'value="huashan"' in html and 'value="xihu"' in html
    assert "Chenjing@123" in html and "Zhangsan@123" in html


@pytest.mark.parametrize("url, message", [
    ("/unified-login/portal-login?ind=UNOP&appId=not-our-app", "不是 KooGallery 登记的应用凭证"),
    ("/unified-login/portal-login?appId=" + SEED.app_id, "ind 必须为 UNOP"),
    ("/unified-login/portal-login?ind=OTHER&appId=" + SEED.app_id, "ind 必须为 UNOP"),
    ("/unified-login/portal-login", "ind 必须为 UNOP"),
])
def test_portal_refuses_an_unknown_app_or_ind_with_a_clear_page(browser, url, message):
    answer = browser.get(url)
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)


def test_portal_sign_in_sends_the_app_a_code_and_the_tenant_id_without_state(browser):
    code = assert_app_launch(portal_sign_in(browser, "xihu", "lisi", "Lisi@456"), XIHU)
    tokens = redeem(browser, XIHU, code)
    assert tokens.status_code == 200
    info = browser.get("/t/xihu/api/v1/oauth2/userinfo",
                       headers={"Authorization": "Bearer " + tokens.json["access_token"]}).json
    assert info["userName"] == "lisi" and info["name"] == "李思" and info["tenant"] == XIHU.tenant_id


def test_the_portals_code_is_for_the_registered_login_address_only(browser):
    code = assert_app_launch(portal_sign_in(browser, "huashan", "lisi", "Lisi@123"), HUASHAN)
    assert redeem(browser, HUASHAN, code, redirect_uri="http://bridge.test/elsewhere").status_code == 400


def test_portal_sign_in_also_signs_in_at_the_tenants_centre(browser):
    """So an app that restarts a state-bound authorize (the bridge's `reinitiate`) gets its code
    back at once, without a second sign-in."""
    portal_sign_in(browser, "huashan", "zhangsan", "Zhangsan@123")
    answer = browser.get(f"/t/huashan/api/v1/oauth2/authorize?response_type=code&client_id={HUASHAN.client_id}"
                         f"&redirect_uri=http://bridge.test/sso/callback&state=s1")
    assert answer.status_code == 302 and query_of(answer.location)["state"] == "s1"


def test_portal_lets_disabled_and_unauthorised_users_through_for_the_app_to_refuse(browser):
    assert_app_launch(portal_sign_in(browser, "huashan", "wangwu", "Wangwu@123"), HUASHAN)
    assert_app_launch(portal_sign_in(browser.application.test_client(), "huashan", "zhaoliu", "Zhaoliu@123"),
                      HUASHAN)


def test_portal_wrong_password_or_tenant_shows_an_error(browser):
    wrong = portal_sign_in(browser, "huashan", "lisi", "Lisi@456")  # xihu's lisi's password
    assert wrong.status_code == 200 and "用户名或密码错误" in wrong.get_data(as_text=True)
    nowhere = portal_sign_in(browser, "nowhere", "lisi", "Lisi@123")
    assert nowhere.status_code == 200 and "请选择一个企业" in nowhere.get_data(as_text=True)


def test_portal_offers_to_continue_as_the_signed_in_user(browser):
    portal_sign_in(browser, "huashan", "lisi", "Lisi@123")
    page = browser.get(PORTAL)
    assert "以 李四 身份继续" in page.get_data(as_text=True)
    answer = browser.post(PORTAL, data={"csrf_token": csrf_of(page), "action": "continue"})
    assert_app_launch(answer, HUASHAN)


def test_portal_post_without_csrf_is_refused(browser):
    answer = browser.post(PORTAL, data={"tenant": "huashan", "username": "lisi", "password": "Lisi@123"})
    assert answer.status_code == 400 and answer.location is None


def test_the_real_portal_address_with_a_fragment_is_mapped_by_a_small_script(browser):
    html = browser.get("/unified-login/").get_data(as_text=True)
    assert "#/portal-login" in html and '"/unified-login/portal-login"' in html


# --- enterprise workbench --------------------------------------------------------------------------


def test_workbench_signed_out_shows_the_sign_in_form_and_what_each_demo_user_shows(browser):
    html = browser.get("/workbench").get_data(as_text=True)
    assert "登录企业工作台" in html
    for text in ("企业管理员：已授权", "普通用户：已授权", "已禁用", "未授权本应用", "Wangwu@123", "Zhouqi@123"):
        assert text in html


def test_an_authorised_user_sees_the_app_and_launches_it_with_code_and_tenant(browser):
    assert workbench_sign_in(browser, "huashan", "zhangsan", "Zhangsan@123").location == "/workbench"
    html = browser.get("/workbench").get_data(as_text=True)
    assert "你好，张三" in html and "SSO Bridge 演示应用" in html
    assert f'href="/workbench/launch/{SEED.app_id}"' in html
    code = assert_app_launch(browser.get(f"/workbench/launch/{SEED.app_id}"), HUASHAN)
    assert redeem(browser, HUASHAN, code).status_code == 200


@pytest.mark.parametrize("user, password, reason", [
    ("wangwu", "Wangwu@123", "你的账号已被禁用"),
    ("zhaoliu", "Zhaoliu@123", "企业管理员尚未把应用授权给你"),
])
def test_a_disabled_or_unauthorised_user_sees_no_apps_and_cannot_launch(browser, user, password, reason):
    workbench_sign_in(browser, "huashan", user, password)
    html = browser.get("/workbench").get_data(as_text=True)
    assert "暂无已授权的应用" in html and reason in html and "/workbench/launch/" not in html
    assert browser.get(f"/workbench/launch/{SEED.app_id}").status_code == 404


def test_workbench_follows_grants_changed_at_run_time(browser, sim):
    workbench_sign_in(browser, "xihu", "chenjing", "Chenjing@123")
    sim.extensions["simulator"].store.change_user("xihu", "chenjing", authorised=False)
    assert "暂无已授权的应用" in browser.get("/workbench").get_data(as_text=True)
    sim.extensions["simulator"].store.change_user("xihu", "chenjing", authorised=True)
    assert "暂无已授权的应用" not in browser.get("/workbench").get_data(as_text=True)
    sim.extensions["simulator"].store.set_tenant_bound("xihu", False)
    assert "你的企业已解除对应用的绑定" in browser.get("/workbench").get_data(as_text=True)


def test_a_deleted_user_loses_the_workbench_session(browser, sim):
    workbench_sign_in(browser, "xihu", "chenjing", "Chenjing@123")
    sim.extensions["simulator"].store.change_user("xihu", "chenjing", deleted=True)
    assert "登录企业工作台" in browser.get("/workbench").get_data(as_text=True)
    assert workbench_sign_in(browser, "xihu", "chenjing", "Chenjing@123").status_code == 200  # refused


def test_launch_without_signing_in_goes_to_the_workbench_and_unknown_apps_are_404(browser):
    assert browser.get(f"/workbench/launch/{SEED.app_id}").location == "/workbench"
    workbench_sign_in(browser, "huashan", "zhangsan", "Zhangsan@123")
    assert browser.get("/workbench/launch/someone-elses-app").status_code == 404


def test_workbench_sign_out_ends_the_workbench_and_centre_sessions(browser):
    workbench_sign_in(browser, "huashan", "lisi", "Lisi@123")
    page = browser.get("/workbench")
    answer = browser.post("/workbench/sign-out", data={"csrf_token": csrf_of(page)})
    assert answer.location == "/workbench"
    assert "登录企业工作台" in browser.get("/workbench").get_data(as_text=True)
    authorize = browser.get(f"/t/huashan/api/v1/oauth2/authorize?response_type=code&client_id={HUASHAN.client_id}"
                            f"&redirect_uri={APP_LOGIN}")
    assert authorize.status_code == 200  # sign-in page, not a code


def test_the_centres_logout_also_ends_the_workbench_session_for_that_tenant(browser):
    workbench_sign_in(browser, "huashan", "lisi", "Lisi@123")
    browser.get("/t/xihu/api/v1/logout")
    assert "你好，李四" in browser.get("/workbench").get_data(as_text=True)
    browser.get("/t/huashan/api/v1/logout")
    assert "登录企业工作台" in browser.get("/workbench").get_data(as_text=True)


def test_workbench_wrong_password_shows_an_error_and_no_session(browser):
    answer = workbench_sign_in(browser, "huashan", "zhangsan", "wrong")
    assert answer.status_code == 200 and "用户名或密码错误" in answer.get_data(as_text=True)
    assert "登录企业工作台" in browser.get("/workbench").get_data(as_text=True)


def test_cookies_never_share_a_name_with_the_bridge(browser):
    """Same host, other port: browsers would mix the two apps' cookies of one name."""
    answers = [workbench_sign_in(browser, "huashan", "lisi", "Lisi@123"), browser.get("/?lang=en")]
    names = {header.split("=", 1)[0] for a in answers for header in a.headers.getlist("Set-Cookie")}
    assert names == {"kgsim_session", "kgsim_lang"}
