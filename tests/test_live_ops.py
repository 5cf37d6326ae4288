"""Production properties over real HTTP: two bridge servers sharing one PostgreSQL behave as one,
and a full run of every flow leaves no secret in the bridge's logs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from common.clock import utcnow
from extensions import db
from keys import keyring
from sso.models import UserSession
from tests.e2e import HUASHAN, PASSWORDS, Browser, csrf_of, stack_fixture
from tests.factories import tenant_sync
from tests.helpers import BASIC_KEY, DATA_KEY, KIT_KEY
from tests.koogallery import kit_headers
from tests.servers import ROOT, start_bridge

pytestmark = pytest.mark.live


# DEBUG: the most an operator could turn on must still log no secret.
stack = stack_fixture("ops", LOG_LEVEL="DEBUG")


@pytest.fixture(scope="module")
def second_bridge(stack, base_config, postgres_url, tmp_path_factory):
    server = start_bridge(base_config, postgres_url, tmp_path_factory.mktemp("ops-b") / "bridge-b.log", workers=1,
                          threads=4, ALLOW_INSECURE_IDP="true", COOKIE_SECURE="false")
    yield server
    server.stop()


def on(server, url: str) -> str:
    """The same request, routed by the load balancer to another backend."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{server.port}"))


def test_two_servers_one_database_behave_as_one(stack, second_bridge):
    stack.reset()
    a, b = stack.bridge, second_bridge
    browser = Browser()
    # A login started on A ...
    page = browser.get(f"{a.url}/sso/login?tenant=huashan")
    answer = browser.http.post(page.url, data={"csrf_token": csrf_of(page.text), "username": "zhangsan",
                                               "password": PASSWORDS["zhangsan"]}, allow_redirects=False, timeout=15)
    callback = answer.headers["Location"]
    assert callback.startswith(f"{a.url}/sso/callback?")
    # ... completes on B.
    landed = browser.get(on(b, callback))
    assert landed.url == f"{b.url}/sso/"
    assert browser.get(f"{a.url}/sso/me").json()["user_name"] == "zhangsan"

    # A sync on A is seen by B; its nonce, used on A, gets A's answer on B for the same body (a
    # re-send after a lost answer) and is refused on B for any other body.
    body = tenant_sync(tenantId="t-two", tenantCode="two", domainName="https://idp.two.example.com")
    headers = kit_headers(KIT_KEY, body)
    first = requests.post(f"{a.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(body), headers=headers, timeout=10)
    resent = requests.post(f"{b.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(body), headers=headers, timeout=10)
    other = {**body, "name": "another body"}
    forged = requests.post(f"{b.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(other),
                           headers=kit_headers(KIT_KEY, other, nonce=headers["x-nonce"]), timeout=10)
    assert first.json()["resultCode"] == "000000" and resent.json() == first.json()
    assert forged.json()["resultCode"] == "000001"
    assert "t-two" in stack.bridge_cli("tenants", "list")

    # A revocation through B ends the session A serves.
    stack.sim("revoke", "zhangsan", "--tenant", "huashan", "--bridge", b.url)  # KooGallery's authSync, sent to B
    assert browser.get(f"{a.url}/sso/me").status_code == 401


def test_logout_through_one_server_is_refused_by_the_other(stack, second_bridge):
    stack.reset()
    browser = Browser()
    page = browser.get(f"{stack.bridge.url}/sso/login?tenant=xihu")
    browser.sign_in_at(page, "chenjing")
    assert browser.get(f"{second_bridge.url}/sso/me").status_code == 200
    logout_page = browser.get(f"{second_bridge.url}/sso/logout")
    browser.post(f"{second_bridge.url}/sso/logout", data={"csrf_token": csrf_of(logout_page.text)})
    assert browser.get(f"{stack.bridge.url}/sso/me").status_code == 401


def test_no_secret_reaches_the_logs(stack, base_config):
    """Plant every secret the bridge handles, run every flow, and scan what the bridge wrote."""
    stack.reset()
    log_file = Path(stack.bridge.log_path)
    log_start = log_file.stat().st_size
    seed = json.loads((ROOT / "simulator" / "seed.json").read_text())
    markers = {"SECRET_KEY": base_config["SECRET_KEY"], "KIT_ACCESS_KEY": KIT_KEY, "BASIC_ACCESS_KEY": BASIC_KEY,
               "DATA_KEY": DATA_KEY}
    markers |= {f"client_secret:{t['tenantCode']}": t["clientSecret"] for t in seed["tenants"]}

    # A login, a forced token refresh, a logout; with the IdP's code and tokens captured.
    browser = Browser()
    page = browser.get(f"{stack.bridge.url}/sso/login?tenant=huashan")
    answer = browser.http.post(page.url, data={"csrf_token": csrf_of(page.text), "username": "zhangsan",
                                               "password": PASSWORDS["zhangsan"]}, allow_redirects=False, timeout=15)
    markers["idp_code"] = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)
    markers["state"] = re.search(r"[?&]state=([^&]+)", answer.headers["Location"]).group(1)
    browser.get(answer.headers["Location"])
    with stack.bridge_app.app_context():
        stored = db.session.execute(db.select(UserSession)).scalar_one()
        markers["idp_access_token"] = keyring().data.decrypt(stored.access_token_enc)
        markers["idp_refresh_token"] = keyring().data.decrypt(stored.refresh_token_enc)
        stored.access_expires_at = utcnow()
        db.session.commit()
    assert browser.me(stack).status_code == 200  # refreshed at the centre
    markers["session_cookie"] = browser.http.cookies.get("bridge_sid")

    # An app signs the user in with OIDC.
    output = stack.bridge_cli("apps", "register", "--name", "Leak test", "--redirect-uri", "https://app.example.com/cb")
    client_id = re.search(r"client_id:\s+(\S+)", output).group(1)
    markers["oidc_client_secret"] = re.search(r"client_secret:\s+(\S+)", output).group(1)
    authorize = browser.http.get(f"{stack.bridge.url}/oidc/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "https://app.example.com/cb",
        "scope": "openid profile koogallery", "state": "s", "nonce": "n"}, allow_redirects=False, timeout=10)
    code = re.search(r"[?&]code=([^&]+)", authorize.headers["Location"]).group(1)
    tokens = requests.post(f"{stack.bridge.url}/oidc/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example.com/cb"},
        auth=(client_id, markers["oidc_client_secret"]), timeout=10).json()
    markers |= {"oidc_code": code, "oidc_access": tokens["access_token"], "oidc_refresh": tokens["refresh_token"],
                "id_token": tokens["id_token"]}
    requests.get(f"{stack.bridge.url}/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                 timeout=10)

    # Refused sync calls: a wrong key, a secret that does not decrypt.
    body = tenant_sync(tenantId="t-leak")
    requests.post(f"{stack.bridge.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(body),
                  headers=kit_headers("wrong-key", body), timeout=10)
    bad_secret = {"instanceId": "", "tenantId": HUASHAN, "appId": "x", "clientId": "c", "clientSecret": "A" * 512,
                  "flag": 1, "testFlag": 1, "timeStamp": "20261122000000000"}
    requests.post(f"{stack.bridge.url}/produce/produceAPI/v2/applicationSync", data=json.dumps(bad_secret),
                  headers=kit_headers(KIT_KEY, bad_secret), timeout=10)
    page = browser.get(f"{stack.bridge.url}/sso/logout")
    browser.post(f"{stack.bridge.url}/sso/logout", data={"csrf_token": csrf_of(page.text)})

    written = log_file.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "sync_call" in written and "auth_centre_call" in written  # the logs did record the run
    leaked = [name for name, value in markers.items() if value and value in written]
    assert leaked == [], f"secrets in the bridge's log: {leaked}"
    for line in (line for line in written.splitlines() if line.startswith("{")):
        assert json.loads(line)["msg"]  # one JSON event per line
