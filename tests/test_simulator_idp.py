"""The simulator's tenant authentication centres (spec §6) through its Flask test client:
authorize and its sign-in page, token, userinfo, logout, faults and the control endpoints."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from simulator import create_app
from simulator.seed import load_seed

SEED = load_seed()
HUASHAN, XIHU = SEED.tenant("huashan"), SEED.tenant("xihu")
APP_LOGIN = "http://app.test/sso/callback"
BRIDGE = "http://bridge.test"
T0 = 1_800_000_000.0
VERIFIER = "v" * 43 + "-verifier_0123456789"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()

INVALID_CODE = {"error": "invalid_grant", "error_description": "Invalid authorization code"}
INVALID_REFRESH = {"error": "invalid_grant", "error_description": "Invalid refresh token"}
BAD_CLIENT = {"error": "invalid_client", "error_description": "Bad client credentials"}
UNAUTHORIZED = {"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_sim_environment(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("SIM_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def naps():
    return []


@pytest.fixture
def sim(tmp_path, clock, naps):
    return create_app({"TESTING": True, "STATE_DB": str(tmp_path / "sim.sqlite"), "PUBLIC_URL": "http://sim.test",
                       "APP_LOGIN_URL": APP_LOGIN, "BRIDGE_URL": BRIDGE, "CLOCK": clock, "SLEEP": naps.append})


@pytest.fixture
def browser(sim):
    return sim.test_client()


@pytest.fixture
def api(sim):
    return sim.test_client()


def authorize_url(tenant=HUASHAN, **over) -> str:
    params = {"response_type": "code", "client_id": tenant.client_id, "redirect_uri": APP_LOGIN,
              "scope": "get_user_info", "state": "st-123", **over}
    return f"/t/{tenant.tenant_code}/api/v1/oauth2/authorize?" + urlencode({k: v for k, v in params.items()
                                                                           if v is not None})


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(browser, url: str, user: str = "zhangsan", password: str = "Zhangsan@123"):
    page = browser.get(url)
    assert page.status_code == 200
    return browser.post(url, data={"csrf_token": csrf_of(page), "username": user, "password": password})


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_for(browser, tenant=HUASHAN, user="zhangsan", password="Zhangsan@123", **over) -> str:
    """A code from the centre: signing in first unless this browser already is."""
    url = authorize_url(tenant, **over)
    answer = browser.get(url)
    if answer.status_code == 200:
        answer = browser.post(url, data={"csrf_token": csrf_of(answer), "username": user, "password": password})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    return query_of(answer.location)["code"]


def token_call(api, tenant=HUASHAN, **form):
    body = {"client_id": tenant.client_id, "client_secret": tenant.client_secret, **form}
    return api.post(f"/t/{tenant.tenant_code}/api/v1/oauth2/token", data={k: v for k, v in body.items() if v is not None})


def exchange(api, code, tenant=HUASHAN, **form):
    return token_call(api, tenant, grant_type="authorization_code", code=code, **form)


def userinfo(api, access_token, tenant=HUASHAN):
    return api.get(f"/t/{tenant.tenant_code}/api/v1/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})


# --- authorize -------------------------------------------------------------------------------------


def test_authorize_without_a_session_shows_a_chinese_sign_in_page_with_demo_passwords(browser):
    page = browser.get(authorize_url())
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert '<html lang="zh-CN">' in html
    assert "登录 华山科技有限公司" in html
    assert 'name="username"' in html and 'name="password"' in html and 'name="csrf_token"' in html
    assert "Zhangsan@123" in html and "Wangwu@123" in html
    assert "Lisi@456" not in html  # another tenant's account


def test_lang_parameter_switches_to_english_and_is_remembered(browser):
    page = browser.get(authorize_url(lang="en"))
    assert "Sign in to 华山科技有限公司" in page.get_data(as_text=True)
    assert "kgsim_lang=en" in page.headers["Set-Cookie"]
    again = browser.get(authorize_url())
    assert '<html lang="en">' in again.get_data(as_text=True)
    back = browser.get(authorize_url(lang="zh"))
    assert "登录 华山科技有限公司" in back.get_data(as_text=True)


def test_accept_language_english_is_honoured(browser):
    page = browser.get(authorize_url(), headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Sign in to" in page.get_data(as_text=True)
    chinese = browser.get(authorize_url(), headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "登录 华山" in chinese.get_data(as_text=True)


def test_sign_in_redirects_to_the_redirect_uri_with_code_and_state(browser):
    answer = sign_in(browser, authorize_url())
    assert answer.status_code == 302
    assert answer.location.startswith(APP_LOGIN + "?")
    query = query_of(answer.location)
    assert set(query) == {"code", "state"} and query["state"] == "st-123" and len(query["code"]) >= 20


def test_without_state_the_redirect_carries_no_state(browser):
    answer = sign_in(browser, authorize_url(state=None))
    assert set(query_of(answer.location)) == {"code"}


def test_wrong_password_shows_the_form_again_with_an_error(browser):
    answer = sign_in(browser, authorize_url(), password="nope")
    assert answer.status_code == 200 and "用户名或密码错误" in answer.get_data(as_text=True)
    assert 'value="zhangsan"' in answer.get_data(as_text=True)


def test_unknown_user_and_other_tenants_user_cannot_sign_in(browser):
    assert sign_in(browser, authorize_url(), user="ghost", password="x").status_code == 200
    assert sign_in(browser, authorize_url(), user="chenjing", password="Chenjing@123").status_code == 200


def test_sign_in_without_the_csrf_token_is_refused(browser):
    answer = browser.post(authorize_url(), data={"username": "zhangsan", "password": "Zhangsan@123"})
    assert answer.status_code == 400 and answer.location is None
    assert "表单已过期" in answer.get_data(as_text=True)


def test_a_signed_in_browser_gets_a_code_at_once(browser):
    sign_in(browser, authorize_url())
    again = browser.get(authorize_url(state="second"))
    assert again.status_code == 302 and query_of(again.location)["state"] == "second"


def test_the_session_is_per_tenant(browser):
    sign_in(browser, authorize_url())
    other = browser.get(authorize_url(XIHU))
    assert other.status_code == 200 and "登录 西湖数据服务有限公司" in other.get_data(as_text=True)


def test_disabled_and_unauthorised_users_still_sign_in_at_the_centre(browser):
    """Refusing them is the app's decision (the bridge's); the centre only authenticates."""
    assert sign_in(browser, authorize_url(), "wangwu", "Wangwu@123").status_code == 302
    assert sign_in(browser.application.test_client(), authorize_url(), "zhaoliu", "Zhaoliu@123").status_code == 302


@pytest.mark.parametrize("client_id", ["", "someone-else", XIHU.client_id])
def test_unknown_client_id_shows_an_error_page_and_never_redirects(browser, client_id):
    answer = browser.get(authorize_url(client_id=client_id or None))
    assert answer.status_code == 400 and answer.location is None
    assert "无法处理授权请求" in answer.get_data(as_text=True)


@pytest.mark.parametrize("redirect_uri", [
    None, "https://evil.example/cb", "http://bridge.test.evil.example/cb", "http://bridge.test:8080/cb",
    "http://app.test/sso/callback/extra", "http://bridge.test/sso/callback#x", "javascript:alert(1)",
])
def test_an_unregistered_redirect_uri_shows_an_error_page_and_never_redirects(browser, redirect_uri):
    answer = browser.get(authorize_url(redirect_uri=redirect_uri))
    assert answer.status_code == 400 and answer.location is None
    assert "text/html" in answer.content_type


def test_any_address_on_the_bridge_is_a_registered_redirect_uri(browser):
    answer = sign_in(browser, authorize_url(redirect_uri="http://bridge.test/sso/callback?x=1"))
    assert answer.status_code == 302 and answer.location.startswith("http://bridge.test/sso/callback?x=1&code=")


def test_a_bad_response_type_redirects_with_unsupported_response_type(browser):
    answer = browser.get(authorize_url(response_type="token"))
    assert answer.status_code == 302
    query = query_of(answer.location)
    assert query["error"] == "unsupported_response_type" and query["state"] == "st-123" and "code" not in query


@pytest.mark.parametrize("method, challenge", [("plain", CHALLENGE), ("S256", "short"), (None, CHALLENGE)])
def test_pkce_other_than_s256_redirects_with_invalid_request(browser, method, challenge):
    answer = browser.get(authorize_url(code_challenge=challenge, code_challenge_method=method))
    assert answer.status_code == 302 and query_of(answer.location)["error"] == "invalid_request"


def test_an_unknown_tenant_has_no_authentication_centre(browser, api):
    assert browser.get("/t/nowhere/api/v1/oauth2/authorize?client_id=x").status_code == 404
    answer = api.post("/t/nowhere/api/v1/oauth2/token", data={"grant_type": "authorization_code"})
    assert answer.status_code == 404 and answer.json["error"] == "not_found"


# --- token -----------------------------------------------------------------------------------------


def test_code_exchange_answers_the_documented_token_json(browser, api):
    answer = exchange(api, code_for(browser), redirect_uri=APP_LOGIN)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    body = json.loads(answer.get_data(as_text=True))
    assert list(body) == ["access_token", "token_type", "expires_in", "scope", "refresh_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200 and body["scope"] == "get_user_info"


def test_a_code_is_single_use_and_reuse_revokes_its_tokens(browser, api):
    code = code_for(browser)
    first = exchange(api, code)
    assert first.status_code == 200
    second = exchange(api, code)
    assert second.status_code == 400 and second.json == INVALID_CODE
    assert userinfo(api, first.json["access_token"]).status_code == 401


def test_a_code_expires_after_five_minutes(browser, api, clock):
    fresh, stale = code_for(browser), code_for(browser)
    clock.now = T0 + 299
    assert exchange(api, fresh).status_code == 200
    clock.now = T0 + 301
    answer = exchange(api, stale)
    assert answer.status_code == 400 and answer.json == INVALID_CODE


def test_redirect_uri_must_match_when_sent(browser, api):
    answer = exchange(api, code_for(browser), redirect_uri="http://app.test/other")
    assert answer.status_code == 400 and answer.json == INVALID_CODE
    assert exchange(api, code_for(browser)).status_code == 200  # not sent: fine


def test_pkce_verifier_is_enforced_when_a_challenge_was_sent(browser, api):
    with_pkce = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    missing = exchange(api, code_for(browser, **with_pkce))
    wrong = exchange(api, code_for(browser, **with_pkce), code_verifier="w" * 50)
    right = exchange(api, code_for(browser, **with_pkce), code_verifier=VERIFIER)
    assert missing.json == INVALID_CODE and wrong.json == INVALID_CODE
    assert right.status_code == 200


def test_a_wrong_client_secret_is_bad_client_credentials(browser, api):
    answer = exchange(api, code_for(browser), client_secret="not-the-secret")
    assert answer.status_code == 401 and answer.json == BAD_CLIENT
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert token_call(api, client_id=None, client_secret=None, grant_type="authorization_code",
                      code="x").json == BAD_CLIENT


def test_another_tenants_client_is_refused(browser, api):
    answer = exchange(api, code_for(browser), client_id=XIHU.client_id, client_secret=XIHU.client_secret)
    assert answer.status_code == 401 and answer.json == BAD_CLIENT


def test_client_credentials_in_http_basic_are_accepted(browser, api):
    answer = api.post("/t/huashan/api/v1/oauth2/token", data={"grant_type": "authorization_code",
                                                              "code": code_for(browser)},
                      auth=(HUASHAN.client_id, HUASHAN.client_secret))
    assert answer.status_code == 200 and answer.json["token_type"] == "Bearer"


def test_a_code_from_another_tenants_centre_is_invalid(browser, api):
    xihu_code = code_for(browser, XIHU, "chenjing", "Chenjing@123")
    # The client authenticates at huashan, with huashan's credentials, and presents xihu's code.
    answer = exchange(api, xihu_code)
    assert answer.status_code == 400 and answer.json == INVALID_CODE


def test_grant_type_errors(api):
    unsupported = token_call(api, grant_type="password", username="zhangsan")
    assert unsupported.status_code == 400 and unsupported.json["error"] == "unsupported_grant_type"
    missing = token_call(api)
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    no_code = token_call(api, grant_type="authorization_code")
    assert no_code.status_code == 400 and no_code.json["error"] == "invalid_request"
    unknown = token_call(api, grant_type="authorization_code", code="never-issued")
    assert unknown.status_code == 400 and unknown.json == INVALID_CODE


def test_refresh_rotates_the_refresh_token(browser, api):
    tokens = exchange(api, code_for(browser)).json
    refreshed = token_call(api, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200
    new = refreshed.json
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    assert list(new) == ["access_token", "token_type", "expires_in", "scope", "refresh_token"]
    assert userinfo(api, new["access_token"]).json["userName"] == "zhangsan"
    replay = token_call(api, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json == INVALID_REFRESH
    assert token_call(api, grant_type="refresh_token", refresh_token=new["refresh_token"]).status_code == 200


def test_a_refresh_token_works_only_at_its_own_tenant_and_for_thirty_days(browser, api, clock):
    tokens = exchange(api, code_for(browser)).json
    elsewhere = token_call(api, XIHU, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert elsewhere.json == INVALID_REFRESH
    clock.now = T0 + 30 * 86400 + 1
    assert token_call(api, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json == INVALID_REFRESH


# --- userinfo --------------------------------------------------------------------------------------


def test_userinfo_answers_the_documented_fields(browser, api):
    access = exchange(api, code_for(browser)).json["access_token"]
    answer = userinfo(api, access)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    info = answer.json
    assert {k: info[k] for k in ("userName", "name", "role", "organizationName", "organizationCode", "projectName",
                                 "tenant", "email", "mobile")} == {
        "userName": "zhangsan", "name": "张三", "role": "admin", "organizationName": "华山科技",
        "organizationCode": "HS000", "projectName": "华山科技有限公司", "tenant": HUASHAN.tenant_id,
        "email": "zhangsan@huashan.example", "mobile": "13800000001"}
    assert info["id"] == info["userId"] and len(info["id"]) == 32


def test_userinfo_leaves_out_contact_fields_the_user_does_not_have(browser, api):
    access = exchange(api, code_for(browser, XIHU, "zhouqi", "Zhouqi@123"), XIHU).json["access_token"]
    info = userinfo(api, access, XIHU).json
    assert "email" not in info and "mobile" not in info and info["organizationName"] == "技术部"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer nope", "Basic eDp5", "bearer "])
def test_userinfo_without_a_valid_token_is_401_with_the_documented_json(api, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = api.get("/t/huashan/api/v1/oauth2/userinfo", headers=headers)
    assert answer.status_code == 401 and answer.json == UNAUTHORIZED


def test_an_access_token_is_refused_by_another_tenant_and_after_two_hours(browser, api, clock):
    access = exchange(api, code_for(browser)).json["access_token"]
    assert userinfo(api, access, XIHU).json == UNAUTHORIZED
    clock.now = T0 + 7199
    assert userinfo(api, access).status_code == 200
    clock.now = T0 + 7201
    assert userinfo(api, access).json == UNAUTHORIZED


# --- logout ----------------------------------------------------------------------------------------


def test_logout_ends_the_session_and_redirects_to_redirect_url(browser):
    sign_in(browser, authorize_url())
    answer = browser.get("/t/huashan/api/v1/logout?" + urlencode({"redirect_url": "http://bridge.test/signed-out"}))
    assert answer.status_code == 302 and answer.location == "http://bridge.test/signed-out"
    assert browser.get(authorize_url()).status_code == 200  # the sign-in page again, no code


def test_logout_without_redirect_url_goes_to_the_centres_sign_in_page(browser):
    sign_in(browser, authorize_url())
    answer = browser.get("/t/huashan/api/v1/logout")
    assert answer.status_code == 302 and answer.location == "/t/huashan/login"
    page = browser.get("/t/huashan/login")
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)


def test_logout_refuses_to_redirect_to_a_stranger_but_still_signs_out(browser):
    sign_in(browser, authorize_url())
    answer = browser.get("/t/huashan/api/v1/logout?redirect_url=https://evil.example/")
    assert answer.status_code == 400 and answer.location is None
    assert browser.get(authorize_url()).status_code == 200


def test_the_centres_own_sign_in_page_signs_in_and_shows_who(browser):
    answer = sign_in(browser, "/t/huashan/login")
    assert answer.status_code == 302
    page = browser.get("/t/huashan/login").get_data(as_text=True)
    assert "张三" in page and "/t/huashan/api/v1/logout" in page
    assert browser.get(authorize_url()).status_code == 302


# --- faults ----------------------------------------------------------------------------------------


def set_fault(api, tenant_code, kind, on=True, **extra):
    return api.post(f"/_sim/faults/{tenant_code}", json={"kind": kind, "on": on, **extra})


def test_slow_delays_token_and_userinfo_by_the_given_seconds(browser, api, naps):
    code = code_for(browser)
    assert set_fault(api, "huashan", "slow", seconds=7).status_code == 200
    tokens = exchange(api, code)
    assert tokens.status_code == 200 and naps == [7]
    assert userinfo(api, tokens.json["access_token"]).status_code == 200 and naps == [7, 7]
    set_fault(api, "huashan", "slow", on=False)
    userinfo(api, tokens.json["access_token"])
    assert naps == [7, 7]


def test_error5xx_answers_html_gateway_errors(browser, api):
    tokens = exchange(api, code_for(browser)).json
    set_fault(api, "huashan", "error5xx")
    token_answer = exchange(api, code_for(browser))
    info_answer = userinfo(api, tokens["access_token"])
    assert token_answer.status_code == 502 and token_answer.mimetype == "text/html"
    assert info_answer.status_code == 503 and info_answer.mimetype == "text/html"


def test_malformed_json_answers_200_that_does_not_parse(browser, api):
    tokens = exchange(api, code_for(browser)).json
    set_fault(api, "huashan", "malformed_json")
    for answer in (exchange(api, code_for(browser)), userinfo(api, tokens["access_token"])):
        assert answer.status_code == 200 and answer.mimetype == "application/json"
        with pytest.raises(ValueError):
            json.loads(answer.get_data(as_text=True))


def test_expired_codes_refuses_every_code_until_turned_off(browser, api):
    code = code_for(browser)
    set_fault(api, "huashan", "expired_codes")
    answer = exchange(api, code)
    assert answer.status_code == 400 and answer.json == INVALID_CODE
    set_fault(api, "huashan", "expired_codes", on=False)
    assert exchange(api, code).status_code == 200


def test_wrong_tenant_reports_another_tenants_id_in_userinfo(browser, api):
    access = exchange(api, code_for(browser)).json["access_token"]
    set_fault(api, "huashan", "wrong_tenant")
    assert userinfo(api, access).json["tenant"] == XIHU.tenant_id


def test_faults_are_per_tenant(browser, api):
    huashan_access = exchange(api, code_for(browser)).json["access_token"]
    set_fault(api, "huashan", "error5xx")
    # The faulted tenant's login fails at both steps...
    assert exchange(api, code_for(browser), HUASHAN).status_code == 502
    assert userinfo(api, huashan_access, HUASHAN).status_code == 503
    # ...while the other tenant's completes, with its own user.
    answer = exchange(api, code_for(browser, XIHU, "chenjing", "Chenjing@123"), XIHU)
    assert answer.status_code == 200
    info = userinfo(api, answer.json["access_token"], XIHU)
    assert info.status_code == 200 and (info.json["userName"], info.json["tenant"]) == ("chenjing", XIHU.tenant_id)


def test_fault_control_lists_validates_and_answers_loopback_only(api):
    assert set_fault(api, "huashan", "slow").json["seconds"] == 10
    listed = api.get("/_sim/faults").json
    assert listed["faults"] == {"huashan": {"slow": 10.0}} and set(listed["kinds"]) == {
        "slow", "error5xx", "malformed_json", "expired_codes", "wrong_tenant", "honours_prompt", "refuses_prompt",
        "forgets_sign_in", "domain_id_tenant", "drops_answers", "binds_with_instance"}
    assert set_fault(api, "huashan", "explode").status_code == 400
    assert set_fault(api, "nowhere", "slow").status_code == 404
    assert set_fault(api, "huashan", "slow", seconds=-1).status_code == 400
    assert set_fault(api, "huashan", "slow", seconds="ten").status_code == 400
    assert set_fault(api, "huashan", "slow", on="yes").status_code == 400
    assert api.post("/_sim/faults/huashan", data="kind=slow").status_code == 400
    remote = api.post("/_sim/faults/huashan", json={"kind": "slow"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 403 and remote.json["error"] == "invalid_request"
    assert api.get("/_sim/faults", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_healthz(api):
    answer = api.get("/healthz")
    assert answer.status_code == 200 and answer.json == {"status": "ok", "tenants": 2}


def test_bad_input_never_gets_a_500(browser, api):
    answers = [
        api.post("/t/huashan/api/v1/oauth2/token", json={"grant_type": "authorization_code"}),
        api.post("/t/huashan/api/v1/oauth2/token", data=b"\xff\xfe\x00", content_type="application/x-www-form-urlencoded"),
        api.post("/t/huashan/api/v1/oauth2/token", data={"grant_type": "x" * 5000},
                 auth=(HUASHAN.client_id, HUASHAN.client_secret)),
        api.post("/t/huashan/api/v1/oauth2/token", headers={"Authorization": "Basic !!!"}),
        api.get("/t/huashan/api/v1/oauth2/token"),
        api.get("/t/huashan/api/v1/oauth2/userinfo", headers={"Authorization": "Bearer " + "\u00e9" * 300}),
        browser.get(authorize_url(client_id="\u0000\u202e", redirect_uri="http://[::1")),
        browser.get(authorize_url(redirect_uri="http://[::1")),
        browser.get("/t/huashan/api/v1/logout?redirect_url=http://[::1"),
        browser.post(authorize_url(), data={"csrf_token": "x" * 10000}),
        api.post("/t/huashan/api/v1/oauth2/token", data="a" * (2 * 1024 * 1024),
                 content_type="application/x-www-form-urlencoded"),
    ]
    assert all(a.status_code < 500 for a in answers), [a.status_code for a in answers]
    assert answers[4].status_code == 405 and answers[4].json["error"] == "method_not_allowed"
