"""The scale-out path (docs/scale-out.md): two bridge servers under gunicorn behind one PgBouncer in
transaction-pooling mode, on one PostgreSQL, with BRIDGE_DATABASE_PGBOUNCER=true. Everything the
bridge does with the database (its migrations, both servers, the CLI) goes through PgBouncer, whose
pool is smaller than the number of requests in flight, so transactions really do move between
server connections."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from extensions import db
from sso.models import LoginState
from tenants.models import SeenNonce, Tenant, TenantInstance, utcnow
from tests.e2e import APP_ID, PASSWORDS, csrf_of, start_stack
from tests.factories import tenant_sync
from tests.helpers import KIT_KEY
from tests.koogallery import kit_headers
from tests.pg import PgBouncer
from tests.servers import ROOT, bridge_env, start_bridge

pytestmark = pytest.mark.live

DATABASE = "bridge_pgbouncer"
POOL_SIZE = 4  # server connections PgBouncer may open to the database; fewer than the requests in flight
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture(scope="module")
def bouncer(postgres, pgbouncer_installed):
    if postgres is None:
        pytest.skip("TEST_DATABASE_URL is set: there is no harness PostgreSQL to put PgBouncer in front of")
    server = PgBouncer(postgres, pool_size=POOL_SIZE).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def config(base_config):
    return {**base_config, "DATABASE_PGBOUNCER": True}


def flask_cli(config: dict, url: str, *args: str) -> str:
    """The bridge's CLI as an operator runs it, with the servers' settings."""
    result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=bridge_env(config, url),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def bouncer_url(postgres, bouncer, config):
    postgres.create_database(DATABASE)
    url = bouncer.url(DATABASE)
    flask_cli(config, url, "db", "upgrade")  # the migrations, through PgBouncer too
    return url


@pytest.fixture(scope="module")
def stack(config, bouncer_url, rsa_key, tmp_path_factory):
    """Server A (and the simulator, which sends its syncs to A)."""
    live = start_stack(config, bouncer_url, rsa_key, tmp_path_factory.mktemp("pgbouncer"))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def server_b(stack, config, bouncer_url, tmp_path_factory):
    sim_port = urlsplit(stack.simulator.url).port
    server = start_bridge(config, bouncer_url, tmp_path_factory.mktemp("pgbouncer-b") / "bridge-b.log", workers=2,
                          threads=4, ALLOW_INSECURE_IDP="true", COOKIE_SECURE="false", APP_ID=APP_ID,
                          PORTAL_LOGIN_URL=f"http://127.0.0.1:{sim_port}/unified-login/#/portal-login")
    yield server
    server.stop()


def on(server, url: str) -> str:
    """The same request, routed by the load balancer to another backend."""
    return urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{server.port}"))


def server_connections(postgres) -> int:
    """Connections PostgreSQL itself holds for the bridge's database (all of them PgBouncer's)."""
    with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres") as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                            "'client backend'", (DATABASE,)).fetchone()[0]


def test_signed_syncs_on_both_servers_and_identical_parallel_tenant_syncs_make_one_tenant(fresh, server_b, postgres):
    a, b = fresh.bridge, server_b
    body = tenant_sync(tenantId="t-pgbouncer", tenantCode="pgb", domainName="https://idp.pgb.example.com",
                       instanceId="inst-pgb")
    raw = json.dumps(body).encode()

    def send(i):
        # KooGallery's retries of one tenantSync, each with its own nonce, spread over both servers.
        server = (a, b)[i % 2]
        return requests.post(f"{server.url}/produce/produceAPI/v2/tenantSync", data=raw,
                             headers=kit_headers(KIT_KEY, body), timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))
    assert [r.status_code for r in answers] == [200] * 20
    assert [r.json()["resultCode"] for r in answers] == ["000000"] * 20, [r.text for r in answers]
    with fresh.bridge_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Tenant).filter_by(tenant_id="t-pgbouncer")) == 1
        assert db.session.scalar(db.select(db.func.count()).select_from(TenantInstance)
                                 .filter_by(tenant_id="t-pgbouncer")) == 1
        db.session.remove()
    # 20 requests in flight on two servers; PostgreSQL saw no more connections than PgBouncer's pool.
    assert 1 <= server_connections(postgres) <= POOL_SIZE

    # A sync sent to A is known to B; its nonce, used on A, gets A's answer on B for the same body
    # and is refused by B for another body.
    other = tenant_sync(tenantId="t-two", tenantCode="two", domainName="https://idp.two.example.com",
                        instanceId="inst-two")
    headers = kit_headers(KIT_KEY, other)
    first = requests.post(f"{a.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(other), headers=headers,
                          timeout=10)
    resent = requests.post(f"{b.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(other), headers=headers,
                           timeout=10)
    changed = {**other, "name": "another body"}
    forged = requests.post(f"{b.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(changed),
                           headers=kit_headers(KIT_KEY, changed, nonce=headers["x-nonce"]), timeout=10)
    assert first.json()["resultCode"] == "000000" and resent.json() == first.json()
    assert forged.json()["resultCode"] == "000001"
    assert "t-two" in fresh.bridge_cli("tenants", "list")


class _LogoutReceiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.server.received.put(parse_qs(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def app_backend():
    """An app's back-channel logout endpoint on loopback: what it receives lands in `.received`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LogoutReceiver)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/backchannel-logout"
    yield server
    server.shutdown()
    server.server_close()


def test_login_started_on_a_completes_on_b_and_logout_on_b_reaches_the_app(fresh, server_b, app_backend):
    a, b = fresh.bridge, server_b
    output = fresh.bridge_cli("apps", "register", "--name", "Pooled app", "--redirect-uri", "https://app.example.com/cb",
                              "--backchannel-logout-uri", app_backend.url)
    client_id = re.search(r"client_id:\s+(\S+)", output).group(1)
    client_secret = re.search(r"client_secret:\s+(\S+)", output).group(1)

    # A browser starts the login on A, signs in at the tenant's centre (the simulator) ...
    http = requests.Session()
    page = http.get(f"{a.url}/sso/login?tenant=huashan", timeout=15)
    answer = http.post(page.url, data={"csrf_token": csrf_of(page.text), "username": "zhangsan",
                                       "password": PASSWORDS["zhangsan"]}, allow_redirects=False, timeout=15)
    callback = answer.headers["Location"]
    assert callback.startswith(f"{a.url}/sso/callback?")
    # ... and the load balancer sends the callback to B, where the login completes.
    landed = http.get(on(b, callback), timeout=15)
    assert landed.status_code == 200 and landed.url == f"{b.url}/sso/"
    assert http.get(f"{a.url}/sso/me", timeout=10).json()["user_name"] == "zhangsan"

    # The app signs the user in: authorize on A, token on B, userinfo on A.
    authorize = http.get(f"{a.url}/oidc/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "https://app.example.com/cb",
        "scope": "openid profile", "state": "s", "nonce": "n"}, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    tokens = requests.post(f"{b.url}/oidc/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example.com/cb"},
        auth=(client_id, client_secret), timeout=10).json()
    keys = KeySet.import_key_set(requests.get(f"{a.url}/oidc/jwks", timeout=10).json())
    sid = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims["sid"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{a.url}/oidc/userinfo", headers=bearer, timeout=10).status_code == 200

    # The user signs out on B: B's delivery thread tells the app, in a logout token A's keys verify.
    logout_page = http.get(f"{b.url}/sso/logout", timeout=10)
    http.post(f"{b.url}/sso/logout", data={"csrf_token": csrf_of(logout_page.text)}, timeout=10)
    received = app_backend.received.get(timeout=20)
    claims = jwt.decode(received["logout_token"][0], keys, algorithms=["RS256"]).claims
    assert claims["aud"] == client_id and claims["sid"] == sid and LOGOUT_EVENT in claims["events"]
    assert requests.get(f"{a.url}/oidc/userinfo", headers=bearer, timeout=10).status_code == 401
    assert http.get(f"{a.url}/sso/me", timeout=10).status_code == 401


def test_maintenance_run_through_pgbouncer(fresh, config, bouncer_url):
    body = tenant_sync()
    answer = requests.post(f"{fresh.bridge.url}/produce/produceAPI/v2/tenantSync", data=json.dumps(body),
                           headers=kit_headers(KIT_KEY, body), timeout=10)
    assert answer.json()["resultCode"] == "000000"
    now = utcnow()
    with fresh.bridge_app.app_context():
        live_nonces = db.session.scalar(db.select(db.func.count()).select_from(SeenNonce))  # the syncs' so far
        db.session.add_all([SeenNonce(nonce="old", expires_at=now - timedelta(minutes=1)),
                            LoginState(state_hash="a" * 64, browser_hash="b" * 64, tenant_id="t", redirect_uri="x",
                                       expires_at=now - timedelta(minutes=1))])
        db.session.commit()
        db.session.remove()

    output = flask_cli(config, bouncer_url, "maintenance", "run")
    assert re.search(r"nonces\s+1 removed", output) and re.search(r"login_states\s+1 removed", output), output
    again = flask_cli(config, bouncer_url, "maintenance", "run")
    assert re.search(r"nonces\s+0 removed", again), again
    with fresh.bridge_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(SeenNonce)) == live_nonces
        assert db.session.get(SeenNonce, "old") is None
        db.session.remove()
