"""Hostile and failing authentication centres against the bridge served by gunicorn on PostgreSQL:
what one tenant's centre does costs the sync endpoints, /healthz and other tenants nothing."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app import create_app
from extensions import db
from keys.rsa import encrypt_client_secret
from sso.models import UserSession
from tenants.models import Tenant
from tests import factories as f
from tests.e2e import query_of
from tests.helpers import KIT_KEY, empty_database
from tests.hostile_centre import HostileCentre
from tests.koogallery import kit_headers
from tests.servers import start_bridge

pytestmark = pytest.mark.live

ANSWERED_WITHIN = 2.0  # seconds: the done-criterion for everything another party asks meanwhile
TOTAL_TIMEOUT = 3


@pytest.fixture(scope="module")
def bridge(base_config, postgres_url, tmp_path_factory):
    """The bridge as the local simulator runs it (http and loopback centres allowed): 2 workers x 8 threads."""
    empty_database(postgres_url)
    server = start_bridge(base_config, postgres_url, tmp_path_factory.mktemp("hostile") / "bridge.log", workers=2,
                          threads=8, ALLOW_INSECURE_IDP="true", COOKIE_SECURE="false",
                          IDP_TOTAL_TIMEOUT=str(TOTAL_TIMEOUT),
                          # These centres answer userinfo without `tenant`; that rule has its own tests.
                          USERINFO_TENANT_OPTIONAL="true",
                          # Every visitor here comes from 127.0.0.1; the per-client cap has its own tests.
                          LOGIN_STATES_PER_CLIENT="100000")
    yield server
    server.stop()
    empty_database(postgres_url)


@pytest.fixture(scope="module")
def strict_bridge(bridge, base_config, postgres_url, tmp_path_factory):
    """Production settings (no insecure centres), on the same database."""
    server = start_bridge(base_config, postgres_url, tmp_path_factory.mktemp("strict") / "bridge.log", workers=1,
                          threads=4, COOKIE_SECURE="false")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bridge_db(base_config, postgres_url):
    app = create_app({**base_config, "DATABASE_URL": postgres_url})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def centre():
    """A hostile centre on its own port: its circuit is its own."""
    server = HostileCentre(drip_interval=0.5).start()
    yield server
    server.stop()


@pytest.fixture
def calm_centre():
    server = HostileCentre().start()
    yield server
    server.stop()


def kit(bridge, interface: str, body: dict) -> dict:
    answer = requests.post(f"{bridge.url}/produce/produceAPI/v2/{interface}", data=json.dumps(body).encode(),
                           headers=kit_headers(KIT_KEY, body), timeout=10)
    assert answer.status_code == 200
    return answer.json()


def sync_tenant(bridge, rsa_key, code: str, domain: str, users=("alice",)) -> str:
    """tenantSync, applicationSync and authSync for a new tenant; its tenantId."""
    tenant_id = secrets.token_hex(16)
    ids = {"tenantId": tenant_id, "instanceId": ""}  # a credential bound to no order yet
    assert kit(bridge, "tenantSync", f.tenant_sync(tenantCode=code, domainName=domain, **ids))["resultCode"] == "000000"
    secret = encrypt_client_secret(f"secret-{code}", rsa_key[0].public_key())
    assert kit(bridge, "applicationSync", f.application_sync(secret, clientId=f"client-{code}",
                                                             **ids))["resultCode"] == "000000"
    assert kit(bridge, "authSync", f.auth_sync([f.user(u) for u in users], **ids))["resultCode"] == "000000"
    return tenant_id


def start_login(bridge, code: str) -> tuple[requests.Session, str]:
    browser = requests.Session()
    answer = browser.get(f"{bridge.url}/sso/login", params={"tenant": code}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return browser, query_of(answer.headers["Location"])["state"]


def come_back(bridge, browser: requests.Session, state: str, code: str = "junk-code", timeout: float = 30):
    return browser.get(f"{bridge.url}/sso/callback", params={"code": code, "state": state}, allow_redirects=False,
                       timeout=timeout)


def reason_of(answer: requests.Response) -> str | None:
    found = re.search(r'data-reason="([^"]+)"', answer.text)
    return found.group(1) if found else None


def timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def sessions_of(bridge_db, tenant_id: str) -> int:
    with bridge_db.app_context():
        count = db.session.scalar(db.select(db.func.count()).select_from(UserSession).filter_by(tenant_id=tenant_id))
        db.session.remove()
        return count


def test_a_dripping_centre_under_30_callbacks_costs_nobody_else_anything(bridge, centre, calm_centre, rsa_key,
                                                                         bridge_db):
    """Finding 1: one byte every 0.5 s, 30 concurrent callbacks with junk codes. Meanwhile /healthz,
    a signed tenantSync and another tenant's login are each answered within 2 s."""
    sync_tenant(bridge, rsa_key, "drip", centre.tenant("drip", token="drip"))
    calm_id = sync_tenant(bridge, rsa_key, "calm", calm_centre.tenant("calm", identity={"userName": "alice"}))
    attackers = [start_login(bridge, "drip") for _ in range(30)]

    with ThreadPoolExecutor(max_workers=30) as pool:
        attack = [pool.submit(come_back, bridge, browser, state) for browser, state in attackers]
        wait_for(lambda: centre.hits("drip", "token") >= 4, "the drip to hold calls open")

        health, health_s = timed(lambda: requests.get(f"{bridge.url}/healthz", timeout=10))
        sync_body = f.tenant_sync(tenantId=secrets.token_hex(16), tenantCode="during-attack",
                                  domainName="https://idp.during-attack.example.com", instanceId="inst-during")
        sync, sync_s = timed(lambda: kit(bridge, "tenantSync", sync_body))
        browser, state = start_login(bridge, "calm")
        login, login_s = timed(lambda: come_back(bridge, browser, state, code="good-code", timeout=10))
        in_flight = centre.hits("drip", "token")
        answers = [future.result() for future in attack]

    print(f"\nunder attack: healthz {health_s:.3f}s, tenantSync {sync_s:.3f}s, second tenant's login {login_s:.3f}s; "
          f"drip calls made {in_flight}, callbacks answered {Counter(reason_of(a) for a in answers)}")
    assert health.status_code == 200 and health_s < ANSWERED_WITHIN
    assert sync["resultCode"] == "000000" and sync_s < ANSWERED_WITHIN
    assert login.status_code == 302 and login.headers["Location"].endswith("/sso/") and login_s < ANSWERED_WITHIN
    assert sessions_of(bridge_db, calm_id) == 1

    reasons = Counter(reason_of(answer) for answer in answers)
    assert set(reasons) <= {"idp_busy", "idp_timeout", "idp_circuit_open"}, reasons
    assert reasons["idp_busy"] >= 30 - 2 * 8  # at most 4 per worker (x2) reach the centre at a time
    busy = next(a for a in answers if reason_of(a) == "idp_busy")
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    assert all(a.status_code != 500 for a in answers)


def _worker_peaks(bridge) -> dict[int, int]:
    """Peak resident memory (VmHWM, bytes) of each gunicorn worker of this bridge."""
    peaks = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(bridge.process.pid):
            peaks[int(status.parent.name)] = int(fields["VmHWM"].split()[0]) * 1024
    return peaks


def test_gzip_bomb_is_refused_without_the_worker_blowing_up(bridge, centre, rsa_key, bridge_db):
    """Finding 3: a 600 KB gzip userinfo inflating to 600 MB."""
    tenant_id = sync_tenant(bridge, rsa_key, "bomb", centre.tenant("bomb", userinfo="bomb"))
    before = _worker_peaks(bridge)
    assert before, "no gunicorn workers found"
    for _ in range(4):  # both workers, most likely
        browser, state = start_login(bridge, "bomb")
        answer = come_back(bridge, browser, state)
        assert answer.status_code == 502 and reason_of(answer) == "idp_garbage"
        assert "bridge_sid" not in browser.cookies
    after = _worker_peaks(bridge)
    grown = max(after[pid] - before.get(pid, after[pid]) for pid in after)
    print(f"\nworker peak memory grew by at most {grown / 2**20:.1f} MiB over 4 bomb logins")
    assert grown < 64 * 2**20
    assert centre.hits("bomb", "userinfo") == 4
    assert sessions_of(bridge_db, tenant_id) == 0


@pytest.mark.parametrize("token, userinfo, reason, status", [
    ("hang", "good", "idp_timeout", 504),
    ("malformed", "good", "idp_garbage", 502),
    ("deep", "good", "idp_garbage", 502),
    ("error", "good", "idp_error", 502),
    ("redirect_internal", "good", "idp_garbage", 502),
    ("good", "huge", "idp_garbage", 502),
    ("good", "deep", "idp_garbage", 502),
])
def test_broken_answers_get_a_clear_page_and_no_session(bridge, centre, rsa_key, bridge_db, token, userinfo, reason,
                                                        status):
    code = f"broken-{token}-{userinfo}".replace("_", "-")
    tenant_id = sync_tenant(bridge, rsa_key, code, centre.tenant(code, token=token, userinfo=userinfo))
    browser, state = start_login(bridge, code)
    answer = come_back(bridge, browser, state)
    assert (answer.status_code, reason_of(answer)) == (status, reason)
    assert sessions_of(bridge_db, tenant_id) == 0
    assert centre.hits("steal") == 0  # a redirect into the bridge's network is never followed


def test_a_centre_answering_with_another_tenants_identity_is_refused(bridge, centre, calm_centre, rsa_key,
                                                                     bridge_db):
    victim = sync_tenant(bridge, rsa_key, "victim", calm_centre.tenant("victim"), users=("boss",))
    liar = sync_tenant(bridge, rsa_key, "liar", centre.tenant("liar", identity={"userName": "boss",
                                                                                 "tenant": victim}))
    browser, state = start_login(bridge, "liar")
    answer = come_back(bridge, browser, state)
    assert (answer.status_code, reason_of(answer)) == (403, "tenant_mismatch")
    assert sessions_of(bridge_db, liar) == 0 and sessions_of(bridge_db, victim) == 0


def test_a_failing_centre_opens_its_circuit_and_says_so_at_once(bridge, centre, rsa_key):
    sync_tenant(bridge, rsa_key, "flaky", centre.tenant("flaky", token="error"))
    reasons = []
    for _ in range(14):  # threshold 5 per worker, two workers
        browser, state = start_login(bridge, "flaky")
        reasons.append(reason_of(come_back(bridge, browser, state)))
    assert reasons[:5] == ["idp_error"] * 5 and reasons.count("idp_circuit_open") >= 14 - 10
    assert centre.hits("flaky", "token") <= 10  # no calls while open
    metrics = requests.get(f"{bridge.url}/metrics", timeout=10).text
    assert re.search(rf'bridge_auth_centre_circuit_open\{{host="127.0.0.1:{centre.port}"\}} 1\.0', metrics)


INTERNAL_FORMS = ["2130706433", "0x7f000001", "017700000001", "127.1", "0", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]",
                  "192.0.0.8", "localhost", "vm.internal"]


@pytest.mark.parametrize("host", INTERNAL_FORMS)
def test_internal_address_forms_are_refused_at_tenant_sync(strict_bridge, bridge_db, host):
    """Finding 7, over the wire with production settings: 000002 and nothing stored."""
    tenant_id = secrets.token_hex(16)
    body = f.tenant_sync(tenantId=tenant_id, tenantCode=f"internal-{secrets.token_hex(3)}",
                         domainName=f"https://{host}/t/acme", instanceId=f"inst-{tenant_id[:8]}")
    assert kit(strict_bridge, "tenantSync", body)["resultCode"] == "000002"
    with bridge_db.app_context():
        assert db.session.get(Tenant, tenant_id) is None
        db.session.remove()


def test_a_stored_internal_domain_is_refused_at_connect_time(bridge, strict_bridge, centre, rsa_key):
    """Finding 7: a row stored under a laxer policy (the old check, or ALLOW_INSECURE_IDP) is still
    never called by a bridge that enforces the policy."""
    domain = centre.tenant("stored").replace("127.0.0.1", "2130706433")
    sync_tenant(bridge, rsa_key, "stored-internal", domain)  # the lax bridge stores it
    browser, state = start_login(strict_bridge, "stored-internal")
    answer = come_back(strict_bridge, browser, state)
    assert (answer.status_code, reason_of(answer)) == (502, "idp_forbidden_host")
    assert centre.hits("stored") == 0
