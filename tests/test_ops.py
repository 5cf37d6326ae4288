"""Operating the bridge: health, readiness, metrics, logs, proxies, housekeeping."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import event

from app import create_app
from common.clock import utcnow
from extensions import db
from ops import maintenance
from ops.health import code_heads
from ops.logs import JsonFormatter
from ops.maintenance import run_maintenance
from sso.models import LoginState, UserSession
from tenants.models import Instance, InstanceStatus, SeenNonce, SyncCall, TenantInstance, TenantUser
from tests import factories as f
from tests.helpers import ok
from tests.servers import ROOT


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_everything_is_in_place(client):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ready"
    assert body["checks"]["migrations"]["ok"] and body["checks"]["keys"]["ok"]


def test_readyz_reports_missing_migrations_and_keys(base_config, tmp_path):
    app = create_app({**base_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}",
                      "RSA_PRIVATE_KEY_FILE": str(tmp_path / "none.pem")})
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "not ready"
    assert "flask db upgrade" in body["checks"]["migrations"]["detail"]
    assert "flask keys generate" in body["checks"]["keys"]["detail"]


_SERVE_ONLY = """
import json, sys
from app import create_app
client = create_app(json.loads(sys.argv[1])).test_client()
answers = [client.get(path).get_json() for path in ("/healthz", "/readyz")]
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"alembic", "flask_migrate", "mako"})
print(json.dumps({"answers": answers, "loaded": loaded}))
"""


def test_a_serving_process_never_loads_alembic(base_config, tmp_path):
    # A gunicorn worker builds the app and serves /readyz, never `flask db`: Alembic (6-10 MiB a
    # worker) must stay out of it, and /readyz still tells a stale schema from a current one.
    config = {**base_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}"}
    run = subprocess.run([sys.executable, "-c", _SERVE_ONLY, json.dumps(config)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=True)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["loaded"] == []
    migrations = seen["answers"][1]["checks"]["migrations"]
    assert migrations == {"ok": False, "detail": f"database at nothing, code expects {','.join(sorted(code_heads()))}: "
                                                 "run flask db upgrade"}


def test_readyz_when_database_is_down(base_config):
    app = create_app({**base_config, "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/x?connect_timeout=2"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["database"]["ok"] is False


def _sample(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_sync_calls_by_interface_and_code(client, kg):
    before = client.get("/metrics").get_data(as_text=True)
    ok(kg.kit("tenantSync", f.tenant_sync()))
    kg.kit("tenantSync", f.tenant_sync(flag=9))
    kg.basic({"activity": "x" * 30})
    after = client.get("/metrics").get_data(as_text=True)
    for labels, delta in [({"interface": "kit:tenantSync", "result_code": "000000"}, 1),
                          ({"interface": "kit:tenantSync", "result_code": "000002"}, 1),
                          ({"interface": "basic:unknown", "result_code": "000002"}, 1)]:
        assert _sample(after, "bridge_sync_calls_total", **labels) - _sample(before, "bridge_sync_calls_total",
                                                                             **labels) == delta
    assert "x" * 30 not in after  # label values stay bounded whatever a caller sends
    assert "bridge_active_sessions 0.0" in after


def test_kit_instance_ids_that_match_no_instance_are_counted_logged_and_gauged_until_the_order_arrives(app, client,
                                                                                                    kg):
    def scrape():
        return client.get("/metrics").get_data(as_text=True)

    before = scrape()
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="inst-missing")))
    ok(kg.kit("authSync", f.auth_sync([f.user("alice")], instanceId="inst-missing")))
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="", tenantId="0" * 31 + "2", tenantCode="other")))  # no order
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="inst-debug", tenantId="0" * 31 + "3", tenantCode="dbg",
                                          testFlag=1)))
    after = scrape()
    for interface, delta in (("kit:tenantSync", 1), ("kit:authSync", 1)):
        assert (_sample(after, "bridge_kit_calls_unknown_instance_total", interface=interface)
                - _sample(before, "bridge_kit_calls_unknown_instance_total", interface=interface)) == delta
    assert "bridge_tenant_orders_unknown_instance 1.0" in after
    with app.app_context():
        logged = db.session.execute(db.select(SyncCall.interface, SyncCall.result_msg).order_by(SyncCall.id)).all()
    assert logged[0] == ("kit:tenantSync", "success; instanceId inst-missing matches no instance "
                                           "(no newInstance received)")
    assert "matches no instance" not in logged[2][1] + logged[3][1]

    ok(kg.basic(f.new_instance(businessId="inst-missing", testFlag="0")))
    assert "bridge_tenant_orders_unknown_instance 0.0" in scrape()
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="inst-missing", timeStamp="20230101000000000")))
    assert _sample(scrape(), "bridge_kit_calls_unknown_instance_total", interface="kit:tenantSync") == _sample(
        after, "bridge_kit_calls_unknown_instance_total", interface="kit:tenantSync")


def test_metrics_content_type_names_one_charset(client):
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.count("charset") == 1
    assert content_type.startswith("text/plain; version=")
    assert content_type.endswith("charset=utf-8")


def test_metrics_token_when_configured(make_app):
    client = make_app(METRICS_TOKEN="scrape-secret-1").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"}).status_code == 200


@pytest.fixture
def json_log(app):
    """What the bridge's own log handler (the JSON one `create_app` installs) writes, at INFO."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if isinstance(h.formatter, JsonFormatter))
    stream, level = io.StringIO(), root.level
    previous = handler.setStream(stream)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)
    root.setLevel(level)


@pytest.mark.parametrize("incoming, kept", [("lb-0123456789", True), (None, False), ("<script>", False)])
def test_json_log_lines_carry_the_request_id(client, json_log, incoming, kept):
    headers = {"X-Request-Id": incoming} if incoming else {}
    response = client.post("/produce/produceAPI/v2/tenantSync", json={}, headers=headers)
    request_id = response.headers["X-Request-Id"]
    if kept:
        assert request_id == incoming
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    lines = json_log()
    [sync_call] = [line for line in lines if line["msg"].startswith("sync_call ")]
    assert sync_call["msg"].startswith("sync_call interface=kit:tenantSync result=000002")
    assert sync_call["level"] == "info" and sync_call["logger"] == "tenants.views"
    assert {line["request_id"] for line in lines} == {request_id}  # every line of the request, not only this one


def test_a_proxys_request_id_is_kept_and_a_bad_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-Id": "lb-0123456789"}).headers["X-Request-Id"] == "lb-0123456789"
    assert client.get("/healthz", headers={"X-Request-Id": "<script>"}).headers["X-Request-Id"] != "<script>"


@pytest.mark.parametrize("hops, expected", [(0, "http://localhost/"), (1, "https://bridge.example.com/")])
def test_forwarded_headers_count_only_with_proxy_hops(make_app, hops, expected):
    client = make_app(PROXY_HOPS=hops).test_client()
    conf = client.get("/.well-known/openid-configuration",
                      headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}).get_json()
    assert conf["issuer"] + "/" == expected


def test_maintenance_removes_only_what_is_past_its_use(app, kg, runner):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    now = utcnow()
    with app.app_context():
        db.session.add_all([
            SeenNonce(nonce="old", expires_at=now - timedelta(minutes=1)),
            LoginState(state_hash="a" * 64, browser_hash="b" * 64, tenant_id="t", redirect_uri="x",
                       expires_at=now - timedelta(minutes=1)),
            LoginState(state_hash="c" * 64, browser_hash="b" * 64, tenant_id="t", redirect_uri="x",
                       expires_at=now + timedelta(minutes=5)),
            UserSession(id_hash="d" * 64, tenant_id="t", user_name="u", expires_at=now - timedelta(days=40),
                        ended_at=now - timedelta(days=40)),
            UserSession(id_hash="e" * 64, tenant_id="t", user_name="u", expires_at=now + timedelta(hours=1)),
            SyncCall(request_id="r", interface="kit:tenantSync", result_code="000000", result_msg="ok", duration_ms=1,
                     created_at=now - timedelta(days=400)),
        ])
        db.session.commit()
    output = runner.invoke(args=["maintenance", "run"]).output
    assert "nonces                1 removed" in output and "login_states          1 removed" in output
    assert "sessions              1 removed" in output and "sync_calls            1 removed" in output
    with app.app_context():
        assert {s.id_hash[0] for s in db.session.execute(db.select(UserSession)).scalars()} == {"e"}
        assert db.session.scalar(db.select(db.func.count()).select_from(SeenNonce)) == 1  # the live call's
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncCall)) == 1
    again = runner.invoke(args=["maintenance", "run"]).output  # idempotent
    assert "nonces                0 removed" in again


def test_maintenance_deletes_exactly_the_expired_rows_in_bounded_batches(make_app, caplog):
    app = make_app(MAINTENANCE_BATCH_SIZE=3)
    now = utcnow()
    with app.app_context():
        db.session.add_all(
            [SyncCall(request_id=f"old{i}", interface="kit:tenantSync", result_code="000000", result_msg="ok",
                      duration_ms=1, created_at=now - timedelta(days=181 + i)) for i in range(10)]
            + [SyncCall(request_id=f"new{i}", interface="kit:tenantSync", result_code="000000", result_msg="ok",
                        duration_ms=1, created_at=now - timedelta(days=179)) for i in range(2)]
            + [SeenNonce(nonce=f"old{i}", expires_at=now - timedelta(seconds=1 + i)) for i in range(7)]
            + [SeenNonce(nonce="live", expires_at=now + timedelta(minutes=5))]
            + [UserSession(id_hash=f"{i:064d}", tenant_id="t", user_name="u", expires_at=now - timedelta(days=31),
                           ended_at=now - timedelta(days=31)) for i in range(4)]
            + [UserSession(id_hash="f" * 64, tenant_id="t", user_name="u", expires_at=now + timedelta(hours=1))]
            # A released order's users (composite key) past the retention period; another tenant's stay.
            + [Instance(instance_id="gone", order_id="o", order_line_id="l", status=InstanceStatus.RELEASED,
                        released_at=now - timedelta(days=16)),
               TenantInstance(tenant_id="released", instance_id="gone")]
            + [TenantUser(tenant_id="released", user_name=f"u{i}", last_sync_ts="20260101000000000")
               for i in range(5)]
            + [TenantUser(tenant_id="kept", user_name="u0", last_sync_ts="20260101000000000")])
        db.session.commit()
        seen: dict[str, list[int]] = {}
        with caplog.at_level(logging.INFO, logger="ops.maintenance"):
            removed = run_maintenance(lambda step, count: seen.setdefault(step, []).append(count))
        assert (removed["sync_calls"], removed["nonces"], removed["sessions"], removed["released_users"]) == (
            10, 7, 4, 5)
        # Batches of at most 3 rows, each committed on its own.
        assert seen["sync_calls"] == [3, 6, 9, 10] and seen["nonces"] == [3, 6, 7]
        assert seen["sessions"] == [3, 4] and seen["released_users"] == [3, 5]
        assert "oidc_codes" not in seen  # nothing to delete, no progress
        assert "maintenance: sync_calls 10 removed" in caplog.text
        left = {c.request_id for c in db.session.execute(db.select(SyncCall)).scalars()}
        assert left == {"new0", "new1"}
        assert [n.nonce for n in db.session.execute(db.select(SeenNonce)).scalars()] == ["live"]
        assert [s.id_hash for s in db.session.execute(db.select(UserSession)).scalars()] == ["f" * 64]
        assert [(u.tenant_id, u.user_name) for u in db.session.execute(db.select(TenantUser)).scalars()] == [
            ("kept", "u0")]
        assert set(run_maintenance().values()) == {0}  # nothing left to do


def test_maintenance_leaves_the_database_most_of_its_time(make_app, monkeypatch):
    """A long run spends at most MAINTENANCE_BUSY_PERCENT of its time in batches: after each full
    batch it waits three times as long as the batch took (25 %), and never less than the pause."""
    app = make_app(MAINTENANCE_BATCH_SIZE=3, MAINTENANCE_BUSY_PERCENT=25, MAINTENANCE_BATCH_PAUSE_MS=500)
    clock = {"now": 0.0}
    waits: list[float] = []

    class Clock:  # every DELETE "takes" a second; a wait passes the time it asks for
        time = staticmethod(time.time)

        @staticmethod
        def monotonic():
            return clock["now"]

        @staticmethod
        def sleep(seconds):
            waits.append(seconds)
            clock["now"] += seconds

    monkeypatch.setattr(maintenance, "time", Clock)
    now = utcnow()
    with app.app_context():
        db.session.add_all([SyncCall(request_id=f"old{i}", interface="kit:tenantSync", result_code="000000",
                                     result_msg="ok", duration_ms=1, created_at=now - timedelta(days=181 + i))
                            for i in range(10)])
        db.session.commit()

        def one_second(_conn, _cursor, statement, *_args):
            if statement.lstrip().upper().startswith("DELETE"):
                clock["now"] += 1

        event.listen(db.engine, "after_cursor_execute", one_second)
        try:
            assert run_maintenance()["sync_calls"] == 10
        finally:
            event.remove(db.engine, "after_cursor_execute", one_second)
    assert waits == [3.0, 3.0, 3.0]  # three full batches of 3, each a one-second DELETE; the last one is short
    assert maintenance.wait_after(0.01, 0.05, 25) == 0.05  # a fast batch still pauses
    assert maintenance.wait_after(2.0, 0.0, 100) == 0.0


def test_pages_carry_security_headers(client):
    page = client.get("/sso/login")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in page.headers  # plain http in the test client
    secure = client.get("/sso/login", base_url="https://bridge.example.com")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
