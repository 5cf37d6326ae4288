"""The recipe of docs/apache-mod-auth-openidc.md, for real: an app that knows nothing of OIDC behind a
throwaway Apache with mod_auth_openidc (deploy/apache/sso-bridge-oidc.conf, included verbatim), signed
in through the bridge. A workbench launch or a visit lands in the app with the claims as headers;
the app's logout and the bridge's back-channel logout end the Apache session."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import pytest
import requests

from extensions import db
from sso.oidc.models import BackchannelLogout
from tests.apache import APT_COMMAND, RECIPE, Apache, EchoApp, config_test, find_apache
from tests.e2e import Browser, csrf_of, launch_from_workbench, stack_fixture
from tests.helpers import missing_dependency
from tests.pg import free_port

pytestmark = pytest.mark.live

# Logouts are delivered by the bridge's own thread, as in production (not by a cron run).
stack = stack_fixture("apache", OIDC_BACKCHANNEL_DELIVERY="thread")


@pytest.fixture(scope="session")
def apache_bin():
    binary = find_apache()
    if binary is None:
        missing_dependency("Apache httpd or mod_auth_openidc", APT_COMMAND)
    return binary


@dataclass
class ProtectedApp:
    url: str
    client_id: str
    apache: Apache

    def get(self, browser: Browser, path: str = "/", **kw):
        return browser.get(f"{self.url}{path}", **kw)

    def is_signed_in(self, browser: Browser) -> bool:
        """A request with the browser's cookies reaches the app (a 200 from the echo), or is sent to
        the bridge to sign in (a 302 to its authorize endpoint)."""
        answer = self.get(browser, "/", allow_redirects=False)
        assert answer.status_code in (200, 302), (answer.status_code, answer.text[:300], self.apache.log_text())
        return answer.status_code == 200


@pytest.fixture
def protected(fresh, apache_bin):
    """The app registered at the bridge (as the recipe's step 1 says) and served by Apache."""
    backend = EchoApp()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output = fresh.bridge_cli("apps", "register", "--name", "Apache app", "--redirect-uri", f"{url}/oidc/callback",
                              "--initiate-login-uri", f"{url}/oidc/callback",
                              "--backchannel-logout-uri", f"{url}/oidc/callback?logout=backchannel",
                              "--post-logout-redirect-uri", f"{url}/loggedout")
    client_id = re.search(r"client_id:\s+(\S+)", output).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", output).group(1)
    apache = Apache(apache_bin, port=port, variables={
        "BRIDGE_ISSUER": fresh.bridge.url, "APP_URL": url, "APP_BACKEND": backend.url,
        "OIDC_CLIENT_ID": client_id, "OIDC_CLIENT_SECRET": secret,
        "OIDC_CRYPTO_PASSPHRASE": secrets.token_urlsafe(32)})
    try:
        yield ProtectedApp(url, client_id, apache)
    finally:
        apache.stop()
        backend.stop()


def echoed(response, app: ProtectedApp) -> dict:
    """The headers the app received (the echo answers JSON), case-insensitively."""
    assert response.status_code == 200 and response.headers.get("Content-Type", "").startswith("application/json"), \
        (response.url, response.status_code, response.text[:500], app.apache.log_text())
    body = response.json()
    return {"path": body["path"], **{k.lower(): v for k, v in body["headers"].items()}}


def wait_until_signed_out(app: ProtectedApp, browser: Browser, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the logout token is posted after the bridge's commit
        if not app.is_signed_in(browser):
            return
        time.sleep(0.25)
    raise AssertionError(f"the Apache session outlived the bridge session\n{app.apache.log_text()}")


def delivered_logouts(stack, app: ProtectedApp) -> int:
    """Logout tokens the bridge delivered to this Apache (answered 200), by its outbox and Apache's log."""
    with stack.bridge_app.app_context():
        rows = db.session.execute(db.select(BackchannelLogout).filter_by(client_id=app.client_id)).scalars().all()
        delivered = [row for row in rows if row.delivered_at is not None]
        db.session.remove()
    received = app.apache.access_log().count('"POST /oidc/callback?logout=backchannel HTTP/1.1" 200')
    assert received == len(delivered), app.apache.access_log()
    return len(delivered)


def test_workbench_launch_lands_in_the_app_with_the_claims_as_headers(fresh, protected):
    browser = Browser()
    landed = launch_from_workbench(fresh, browser, "huashan", "zhangsan")
    assert landed.url == f"{protected.url}/"
    got = echoed(landed, protected)
    assert got["oidc_claim_preferred_username"] == "zhangsan"
    assert got["oidc_claim_name"] == "张三"
    assert got["oidc_claim_tenant_code"] == "huashan"
    assert got["oidc_claim_tenant"] == "fe8ff0dea173a12cb51ebb4c27c2aae4"
    assert got["oidc_claim_role"] == "admin"
    assert got["oidc_claim_org_code"] == "HS000"
    assert got["oidc_claim_email"] == "zhangsan@huashan.example"
    assert got["oidc_claim_phone_number"] == "13800000001"
    assert re.fullmatch(r"[0-9a-f]{40}", got["oidc_claim_sub"])
    assert got["oidc_claim_iss"] == fresh.bridge.url
    # The configured friendlier headers.
    assert (got["x-remote-user"], got["x-remote-name"], got["x-remote-tenant"], got["x-remote-role"]) == \
        ("zhangsan", "张三", "huashan", "admin")
    # No tokens reach the app unless asked for.
    # The session cookie stays between the browser and Apache.
    assert "sso_bridge_app_session" not in got.get("cookie", "")
    # The access token (always passed by mod_auth_openidc 2.4.12) lets the app ask the bridge itself.
    info = requests.get(f"{fresh.bridge.url}/oidc/userinfo", timeout=5,
                        headers={"Authorization": f"Bearer {got['oidc_access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == got["oidc_claim_sub"]


def test_headers_a_client_sends_are_never_taken_for_claims(fresh, protected):
    browser = Browser()
    launch_from_workbench(fresh, browser, "huashan", "lisi")
    got = echoed(protected.get(browser, "/", headers={"OIDC_CLAIM_role": "admin", "OIDC-CLAIM-role": "admin",
                                                       "X-Remote-Role": "admin", "X-Remote-User": "zhangsan"}),
                 protected)
    assert got["oidc_claim_role"] == "user" and got["x-remote-role"] == "user" and got["x-remote-user"] == "lisi"
    assert "oidc-claim-role" not in got
    # Without a session nothing reaches the app, spoofed or not.
    stranger = Browser()
    answer = stranger.get(f"{protected.url}/", headers={"X-Remote-User": "zhangsan"}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(f"{fresh.bridge.url}/oidc/authorize")
    public = echoed(stranger.get(f"{protected.url}/loggedout", headers={"X-Remote-User": "zhangsan"}), protected)
    assert "x-remote-user" not in public


def test_a_visit_to_the_app_signs_in_at_the_bridge_and_returns_to_the_page(fresh, protected):
    browser = Browser()
    page = protected.get(browser, "/reports?year=2024")
    assert page.url.startswith(f"{fresh.bridge.url}/sso/login")  # which company?
    next_url = re.search(r'name="next" value="([^"]*)"', page.text).group(1).replace("&amp;", "&")
    assert next_url.startswith("/oidc/authorize?")  # the bridge resumes the app's authorization request after
    centre = browser.post(f"{fresh.bridge.url}/sso/login",
                          data={"csrf_token": csrf_of(page.text), "tenant": "xihu", "next": next_url})
    assert centre.url.startswith(f"{fresh.simulator.url}/t/xihu/")
    landed = browser.sign_in_at(centre, "chenjing")
    assert landed.url == f"{protected.url}/reports?year=2024"
    got = echoed(landed, protected)
    assert got["path"] == "/reports?year=2024"
    assert got["oidc_claim_preferred_username"] == "chenjing" and got["oidc_claim_tenant_code"] == "xihu"


def test_the_apps_logout_ends_the_apache_and_the_bridge_session(fresh, protected):
    browser = Browser()
    launch_from_workbench(fresh, browser)
    assert protected.is_signed_in(browser)
    done = protected.get(browser, "/logout")
    # Apache's session ends, then the bridge's (end_session with the ID token as hint), then back.
    assert any(r.url.startswith(f"{fresh.bridge.url}/oidc/logout?") for r in done.history), \
        [r.url for r in done.history]
    assert done.url == f"{protected.url}/loggedout"
    assert not protected.is_signed_in(browser)
    assert browser.me(fresh).status_code == 401


def test_revoking_in_koogallery_ends_the_apache_session_by_back_channel(fresh, protected):
    browser = Browser()
    launch_from_workbench(fresh, browser)
    assert protected.is_signed_in(browser)
    fresh.sim("revoke", "zhangsan")  # the tenant's admin takes the app away: the bridge ends the session
    wait_until_signed_out(protected, browser)
    assert delivered_logouts(fresh, protected) == 1


def test_signing_out_at_the_bridge_ends_the_apache_session_by_back_channel(fresh, protected):
    browser = Browser()
    launch_from_workbench(fresh, browser, "huashan", "lisi")
    other = Browser()  # a second sign-in, someone else: only lisi's Apache session ends
    launch_from_workbench(fresh, other, "xihu", "chenjing")
    assert protected.is_signed_in(browser) and protected.is_signed_in(other)
    page = browser.get(f"{fresh.bridge.url}/sso/logout")
    browser.post(f"{fresh.bridge.url}/sso/logout", data={"csrf_token": csrf_of(page.text)})
    wait_until_signed_out(protected, browser)
    assert protected.is_signed_in(other)
    assert delivered_logouts(fresh, protected) == 1


def test_the_production_vhost_parses(apache_bin, tmp_path):
    """deploy/apache/example-vhost.conf as shipped, with its files pointed into tmp_path."""
    site = (RECIPE.parent / "example-vhost.conf").read_text()
    (tmp_path / "secrets.conf").write_text('Define OIDC_CLIENT_SECRET "s"\nDefine OIDC_CRYPTO_PASSPHRASE "p"\n')
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")  # parsing checks that they exist, not what they hold
    for shipped, here in {"/etc/apache2/sso-bridge/secrets.conf": tmp_path / "secrets.conf",
                          "/etc/apache2/sso-bridge/sso-bridge-oidc.conf": RECIPE,
                          "/etc/ssl/certs/app.vendor.example.pem": tmp_path / "cert.pem",
                          "/etc/ssl/private/app.vendor.example.key": tmp_path / "key.pem"}.items():
        assert shipped in site
        site = site.replace(shipped, str(here))
    result = config_test(apache_bin, f'Define APACHE_LOG_DIR "{tmp_path}"\n' + site, tmp_path)
    assert result.returncode == 0 and "Syntax OK" in result.stderr + result.stdout, result.stderr
