"""The simulator over real HTTP: served by gunicorn on a loopback port, used by Authlib's OAuth2
client as a real consumer, and driving a live bridge (gunicorn + PostgreSQL) with `sim` commands."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from app import create_app as create_bridge
from extensions import db
from keys import keyring
from keys.rsa import public_key_for_koogallery
from simulator import create_app as create_simulator
from simulator.seed import load_seed
from tenants.models import Department, Instance, Tenant, TenantApp, TenantInstance, TenantUser
from tests.helpers import BASIC_KEY, KIT_KEY, empty_database
from tests.servers import start_bridge, start_simulator

pytestmark = pytest.mark.live

SEED = load_seed()
HUASHAN, XIHU = SEED.tenant("huashan"), SEED.tenant("xihu")
CALLBACK = "http://127.0.0.1:9/sso/callback"  # never called: the test reads the redirect itself


def csrf_of(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim-idp")
    server = start_simulator(tmp / "state.sqlite", tmp / "simulator.log", bridge_url="http://127.0.0.1:9",
                             app_login_url=CALLBACK)
    yield server
    server.stop()


def browser_sign_in(url: str, user: str, password: str) -> str:
    """A browser at the sign-in page: returns where the centre redirects it."""
    browser = requests.Session()
    page = browser.get(url, timeout=10)
    assert page.status_code == 200
    answer = browser.post(url, data={"csrf_token": csrf_of(page.text), "username": user, "password": password},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return answer.headers["Location"]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_runs_code_with_pkce_userinfo_and_refresh(idp, auth_method):
    base = f"{idp.url}/t/huashan/api/v1/oauth2"
    client = OAuth2Session(HUASHAN.client_id, HUASHAN.client_secret, scope="get_user_info", redirect_uri=CALLBACK,
                           code_challenge_method="S256", token_endpoint_auth_method=auth_method)
    verifier = generate_token(48)
    uri, state = client.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
    assert "code_challenge=" in uri

    location = browser_sign_in(uri, "zhangsan", "Zhangsan@123")
    assert location.startswith(CALLBACK + "?") and query_of(location)["state"] == state

    token = client.fetch_token(f"{base}/token", authorization_response=location, code_verifier=verifier,
                               state=state)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 7200 and token["scope"] == "get_user_info"
    info = client.get(f"{base}/userinfo", timeout=10).json()
    assert (info["userName"], info["role"], info["tenant"]) == ("zhangsan", "admin", HUASHAN.tenant_id)

    first_refresh_token = token["refresh_token"]
    refreshed = client.refresh_token(f"{base}/token")
    assert refreshed["refresh_token"] != first_refresh_token
    assert client.get(f"{base}/userinfo", timeout=10).json()["userName"] == "zhangsan"
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{base}/token", refresh_token=first_refresh_token)
    assert refused.value.error == "invalid_grant" and refused.value.description == "Invalid refresh token"


def test_authlib_client_gets_invalid_grant_for_a_code_without_its_verifier(idp):
    base = f"{idp.url}/t/xihu/api/v1/oauth2"
    client = OAuth2Session(XIHU.client_id, XIHU.client_secret, redirect_uri=CALLBACK, code_challenge_method="S256")
    uri, state = client.create_authorization_url(f"{base}/authorize", code_verifier=generate_token(48))
    location = browser_sign_in(uri, "chenjing", "Chenjing@123")
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(f"{base}/token", authorization_response=location, code_verifier=generate_token(48),
                           state=state)
    assert refused.value.error == "invalid_grant"


def test_a_slow_centre_times_out_a_real_client(idp):
    control = f"{idp.url}/_sim/faults/xihu"
    assert requests.post(control, json={"kind": "slow", "seconds": 1}, timeout=5).status_code == 200
    try:
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{idp.url}/t/xihu/api/v1/oauth2/userinfo", timeout=0.2)
    finally:
        requests.post(control, json={"kind": "slow", "on": False}, timeout=5)
    assert requests.get(f"{idp.url}/t/xihu/api/v1/oauth2/userinfo", timeout=5).status_code == 401


# --- with a live bridge ------------------------------------------------------------------------------


class Pair:
    """The bridge and the simulator, both live, plus the `sim` CLI working on the simulator's state."""

    def __init__(self, bridge, simulator, sim_app, bridge_app):
        self.bridge, self.simulator, self.sim_app, self.bridge_app = bridge, simulator, sim_app, bridge_app

    def sim(self, *args):
        result = self.sim_app.test_cli_runner().invoke(args=["sim", *args])
        assert result.exit_code == 0, result.output
        return result.output

    def user(self, tenant, user_name) -> TenantUser:
        with self.bridge_app.app_context():
            user = db.session.get(TenantUser, (tenant.tenant_id, user_name))
            db.session.expunge_all()
            return user

    def instance(self, tenant) -> Instance:
        with self.bridge_app.app_context():
            instance = db.session.get(Instance, tenant.order.business_id)
            db.session.expunge_all()
            return instance


@pytest.fixture(scope="module")
def pair(base_config, postgres_url, rsa_key, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim-bridge")
    empty_database(postgres_url)
    public_key = public_key_for_koogallery(rsa_key[0])
    bridge = start_bridge(base_config, postgres_url, tmp / "bridge.log", workers=1, threads=4,
                          ALLOW_INSECURE_IDP="true")
    simulator = None
    try:
        simulator = start_simulator(tmp / "state.sqlite", tmp / "simulator.log", bridge_url=bridge.url,
                                    KIT_ACCESS_KEY=KIT_KEY, BASIC_ACCESS_KEY=BASIC_KEY, BRIDGE_PUBLIC_KEY=public_key)
        sim_app = create_simulator({"TESTING": True, "STATE_DB": str(tmp / "state.sqlite"),
                                    "PUBLIC_URL": simulator.url, "BRIDGE_URL": bridge.url,
                                    "KIT_ACCESS_KEY": KIT_KEY, "BASIC_ACCESS_KEY": BASIC_KEY,
                                    "BRIDGE_PUBLIC_KEY": public_key})
        bridge_app = create_bridge({**base_config, "DATABASE_URL": postgres_url})
        live = Pair(bridge, simulator, sim_app, bridge_app)
        live.sync_output = live.sim("sync")
        yield live
        with bridge_app.app_context():
            db.engine.dispose()
    finally:
        if simulator is not None:
            simulator.stop()
        bridge.stop()
        empty_database(postgres_url)


def test_sim_sync_stores_tenants_apps_departments_users_and_orders_in_the_bridge(pair):
    with pair.bridge_app.app_context():
        tenants = {t.tenant_code: t for t in db.session.execute(db.select(Tenant)).scalars()}
        assert set(tenants) == {"huashan", "xihu"}
        assert tenants["huashan"].domain_name == f"{pair.simulator.url}/t/huashan"
        assert tenants["xihu"].name == "西湖数据服务有限公司" and tenants["xihu"].deleted_at is None
        app = db.session.get(TenantApp, (HUASHAN.tenant_id, SEED.app_id))
        assert app.client_id == HUASHAN.client_id
        assert keyring().data.decrypt(app.client_secret_enc) == HUASHAN.client_secret
        departments = db.session.execute(db.select(Department).filter_by(tenant_id=HUASHAN.tenant_id)).scalars()
        assert {(d.org_code, d.parent_code or "") for d in departments} == {
            ("HS000", ""), ("HS100", "HS000"), ("HS110", "HS100"), ("HS200", "HS000")}
        users = {u.user_name: u for u in db.session.execute(
            db.select(TenantUser).filter_by(tenant_id=HUASHAN.tenant_id)).scalars()}
        assert set(users) == {"zhangsan", "lisi", "wangwu"}  # zhaoliu is not authorised: never sent
        assert users["zhangsan"].role == "admin" and users["wangwu"].enabled is False
        links = {(link.tenant_id, link.instance_id) for link in db.session.execute(db.select(TenantInstance)).scalars()}
        assert links == {(HUASHAN.tenant_id, HUASHAN.order.business_id), (XIHU.tenant_id, XIHU.order.business_id)}
        instance = db.session.get(Instance, XIHU.order.business_id)
        assert instance.order_id == XIHU.order.order_id and instance.status == "ACTIVE"


def test_flask_tenants_show_lists_what_sim_sync_sent(pair):
    runner = pair.bridge_app.test_cli_runner()
    listing = runner.invoke(args=["tenants", "list"]).output
    assert HUASHAN.tenant_id in listing and XIHU.tenant_id in listing
    shown = runner.invoke(args=["tenants", "show", "huashan"])
    assert shown.exit_code == 0, shown.output
    assert f"Auth centre  {pair.simulator.url}/t/huashan" in shown.output
    assert "Orders (1)" in shown.output and HUASHAN.order.business_id in shown.output
    assert f"client {HUASHAN.client_id}  secret stored" in shown.output


def test_the_credentials_the_bridge_stored_work_at_the_simulators_centre(pair):
    """What the bridge's login will do: a portal code, exchanged with the stored domainName,
    clientId and decrypted clientSecret."""
    portal = f"{pair.simulator.url}/unified-login/portal-login?ind=UNOP&appId={SEED.app_id}"
    browser = requests.Session()
    page = browser.get(portal, timeout=10)
    answer = browser.post(portal, data={"csrf_token": csrf_of(page.text), "action": "sign_in", "tenant": "xihu",
                                        "username": "lisi", "password": "Lisi@456"}, allow_redirects=False, timeout=10)
    assert answer.headers["Location"].startswith(f"{pair.bridge.url}/sso/callback?")
    launch = query_of(answer.headers["Location"])
    with pair.bridge_app.app_context():
        tenant = db.session.get(Tenant, launch["tenant"])
        app = db.session.get(TenantApp, (tenant.tenant_id, SEED.app_id))
        client_id, secret = app.client_id, keyring().data.decrypt(app.client_secret_enc)
    tokens = requests.post(f"{tenant.domain_name}/api/v1/oauth2/token", timeout=10, data={
        "grant_type": "authorization_code", "code": launch["code"], "redirect_uri": f"{pair.bridge.url}/sso/callback",
        "client_id": client_id, "client_secret": secret})
    assert tokens.status_code == 200, tokens.text
    info = requests.get(f"{tenant.domain_name}/api/v1/oauth2/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}).json()
    assert (info["userName"], info["tenant"]) == ("lisi", XIHU.tenant_id)


def test_revoke_reaches_the_bridge_and_the_running_simulator(pair):
    pair.sim("revoke", "lisi", "--tenant", "huashan")
    try:
        assert pair.user(HUASHAN, "lisi").authorized is False
        assert pair.user(XIHU, "lisi").authorized is True
        # The running simulator (another process) shows the change at once: no app on the workbench.
        browser = requests.Session()
        page = browser.get(f"{pair.simulator.url}/workbench", timeout=10)
        workbench = browser.post(f"{pair.simulator.url}/workbench/sign-in", timeout=10, data={
            "csrf_token": csrf_of(page.text), "tenant": "huashan", "username": "lisi", "password": "Lisi@123"})
        assert "暂无已授权的应用" in workbench.text
    finally:
        pair.sim("grant", "lisi", "--tenant", "huashan")
    assert pair.user(HUASHAN, "lisi").authorized is True


def test_disable_and_enable_reach_the_bridge(pair):
    pair.sim("disable", "chenjing")
    assert pair.user(XIHU, "chenjing").enabled is False
    pair.sim("enable", "chenjing")
    assert pair.user(XIHU, "chenjing").enabled is True


def test_freeze_and_unfreeze_reach_the_bridge(pair):
    pair.sim("freeze", "huashan")
    assert pair.instance(HUASHAN).status == "FROZEN"
    pair.sim("unfreeze", "huashan")
    assert pair.instance(HUASHAN).status == "ACTIVE"
