"""The sync API served by gunicorn on PostgreSQL, called over real HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import create_app
from extensions import db
from tenants.models import SyncCall, Tenant, TenantInstance
from tests import factories as f
from tests.helpers import KIT_KEY, empty_database
from tests.koogallery import kit_headers
from tests.servers import start_bridge

pytestmark = pytest.mark.live


@pytest.fixture
def live_bridge(base_config, postgres_url, tmp_path):
    empty_database(postgres_url)
    server = start_bridge(base_config, postgres_url, tmp_path / "bridge.log")
    yield server
    server.stop()
    empty_database(postgres_url)


def test_twenty_identical_tenant_syncs_in_parallel_make_one_tenant(live_bridge, base_config, postgres_url):
    body = f.tenant_sync()
    raw = json.dumps(body).encode()

    def send(_):
        # Same body, each with its own nonce, as KooGallery's retries would be.
        return requests.post(f"{live_bridge.url}/produce/produceAPI/v2/tenantSync", data=raw,
                             headers=kit_headers(KIT_KEY, body), timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))
    assert [r.status_code for r in answers] == [200] * 20
    assert [r.json()["resultCode"] for r in answers] == ["000000"] * 20, [r.json() for r in answers]
    app = create_app({**base_config, "DATABASE_URL": postgres_url})
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Tenant)) == 1
        assert db.session.scalar(db.select(db.func.count()).select_from(TenantInstance)) == 1
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncCall)) == 20
        db.engine.dispose()


def test_live_answer_is_exact_and_a_resend_gets_the_same_bytes(live_bridge):
    body = f.tenant_sync()
    headers = kit_headers(KIT_KEY, body)
    url = f"{live_bridge.url}/produce/produceAPI/v2/tenantSync"
    first = requests.post(url, data=json.dumps(body), headers=headers, timeout=10)
    assert first.status_code == 200 and first.headers["Content-Type"] == "application/json"
    assert first.content == b'{"resultCode":"000000","resultMsg":"success"}'
    assert first.headers["Body-Sign"].startswith('sign_type="HMAC-SHA256"')
    resent = requests.post(url, data=json.dumps(body), headers=headers, timeout=10)
    assert resent.content == first.content and resent.headers["Body-Sign"] == first.headers["Body-Sign"]


def test_garbage_over_the_wire_never_yields_a_500(live_bridge):
    url = f"{live_bridge.url}/produce/produceAPI/v2/authSync"
    for data, headers in [(b"\x00\x01\x02", {"Content-Type": "application/json"}),
                          (b"{}", {"Content-Type": "application/json", "x-sign": "\u00e9" * 3,
                                   "x-timestamp": "1", "x-nonce": "n"}),
                          (b"x" * (3 * 1024 * 1024), {"Content-Type": "application/json"})]:
        response = requests.post(url, data=data, headers=headers, timeout=10)
        assert response.status_code == 200 and response.json()["resultCode"] in ("000001", "000002")
