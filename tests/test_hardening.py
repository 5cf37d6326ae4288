"""Hardening: rate limits on the anonymous login routes, personal pages not cached, cookie names,
start-up refusals, unique tenant codes, the console lockout per account and client."""

from __future__ import annotations

import pytest

from extensions import db
from sso.ratelimit import RateWindow
from tenants.models import Tenant
from tests import factories as f
from tests.helpers import code_of, ok, rows

# --- rate limits -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def mid_window(monkeypatch):
    """Half-way through a fixed window, so no test straddles two windows."""
    from sso import ratelimit

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_030.0)


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(model))


@pytest.mark.parametrize("route", ["login_get", "login_post", "callback"])
def test_login_routes_are_rate_limited_per_client_with_a_429_page(make_app, route):
    app = make_app(RATE_LIMIT_LOGIN=3, RATE_LIMIT_CALLBACK=3, WTF_CSRF_ENABLED=False)
    client = app.test_client()

    def call(addr):
        env = {"REMOTE_ADDR": addr}
        if route == "login_get":
            return client.get("/sso/login?tenant=nobody", environ_base=env)
        if route == "login_post":
            return client.post("/sso/login", data={"tenant": "nobody"}, environ_base=env)
        return client.get("/sso/callback?code=c&tenant=nobody", environ_base=env)

    answers = [call("203.0.113.7").status_code for _ in range(3)]
    assert 429 not in answers
    limited = call("203.0.113.7")
    assert limited.status_code == 429 and limited.mimetype == "text/html"
    assert limited.headers["Retry-After"] == "30" and limited.headers["Cache-Control"] == "no-store"
    assert "请求过于频繁".encode() in limited.data
    english = client.get("/sso/callback?code=c" if route == "callback" else "/sso/login?tenant=x",
                         environ_base={"REMOTE_ADDR": "203.0.113.7"}, headers={"Accept-Language": "en"})
    assert english.status_code == 429 and b"Too many requests" in english.data
    assert call("198.51.100.9").status_code != 429  # another client has its own count
    assert _count(app, RateWindow) == 2  # one row per client and window, whatever the number of requests


def test_rate_limit_storage_is_capped_and_purged(make_app):
    app = make_app(RATE_LIMIT_LOGIN=100, RATE_LIMIT_MAX_CLIENTS=5, RATE_LIMIT_OVERFLOW=4)
    client = app.test_client()
    answers = [client.get("/sso/login?tenant=x", environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code
               for i in range(1, 21)]
    assert _count(app, RateWindow) == 6  # five clients and the shared overflow row
    assert answers.count(429) == 20 - 5 - 4  # past the cap, new clients share the overflow limit
    runner = app.test_cli_runner()
    with app.app_context():
        db.session.execute(db.update(RateWindow).values(window_start=0))  # a window long gone
        db.session.commit()
    assert "rate_windows" in runner.invoke(args=["maintenance", "run"]).output
    assert _count(app, RateWindow) == 0


def test_ipv6_clients_are_counted_per_slash_64(make_app):
    app = make_app(RATE_LIMIT_LOGIN=2)
    client = app.test_client()
    codes = [client.get("/sso/login?tenant=x", environ_base={"REMOTE_ADDR": f"2001:db8::{i}"}).status_code
             for i in range(1, 4)]
    assert codes[-1] == 429 and _count(app, RateWindow) == 1


def test_the_login_page_itself_is_not_counted(make_app):
    app = make_app(RATE_LIMIT_LOGIN=1)
    client = app.test_client()
    assert all(client.get("/sso/login").status_code == 200 for _ in range(3))
    assert _count(app, RateWindow) == 0


def test_rate_limit_honours_the_proxy_address(make_app):
    app = make_app(RATE_LIMIT_LOGIN=1, PROXY_HOPS=1)
    client = app.test_client()
    first = client.get("/sso/login?tenant=x", headers={"X-Forwarded-For": "203.0.113.1"})
    other = client.get("/sso/login?tenant=x", headers={"X-Forwarded-For": "203.0.113.2"})
    again = client.get("/sso/login?tenant=x", headers={"X-Forwarded-For": "203.0.113.1"})
    assert first.status_code != 429 and other.status_code != 429 and again.status_code == 429


# --- tenant codes --------------------------------------------------------------------------------


def test_tenant_codes_are_unique_case_insensitively_and_resends_stay_idempotent(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="Acme")))
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="Acme")))  # a re-send of the same tenant
    other = kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", tenantCode="ACME"))
    assert code_of(other) == "000002" and "tenantCode" in other.get_json()["resultMsg"]
    assert [t.tenant_id for t in rows(app, Tenant)] == [f.TENANT]
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, timeStamp="20230101000000000")))  # deleted: the code is free
    ok(kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", tenantCode="acme")))


def test_a_modify_fills_in_a_missing_code_only_when_no_live_tenant_holds_it(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="Acme")))
    # A modify for a tenant the bridge has not seen yet stores it without a code.
    ok(kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", flag=2, tenantCode="", timeStamp="20220413093539600")))
    taken = kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", flag=2, tenantCode="ACME",
                                               timeStamp="20220413093539700"))
    assert code_of(taken) == "000002" and "t-other" not in taken.get_json()["resultMsg"]
    assert f.TENANT in taken.get_json()["resultMsg"]  # names the tenant that holds the code
    ok(kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", flag=2, tenantCode="Other",
                                          timeStamp="20220413093539800")))
    # A tenant that has its code keeps it: naming another's code in a modify is no conflict.
    ok(kg.kit("tenantSync", f.tenant_sync(tenantId="t-other", flag=2, tenantCode="acme", name="Renamed",
                                          timeStamp="20220413093539900")))
    assert {t.tenant_id: (t.tenant_code, t.name) for t in rows(app, Tenant)}["t-other"] == ("Other", "Renamed")


def test_the_database_refuses_two_live_tenants_with_one_code(app):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        for tid, code in (("a", "Dup"), ("b", "dup")):
            db.session.add(Tenant(tenant_id=tid, tenant_code=code, name="n", domain_name="https://x", test_flag=False,
                                  last_sync_ts="1"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


# --- start-up refusals ---------------------------------------------------------------------------


def _start(base_config, tmp_path, **over):
    from app import create_app

    return create_app({**base_config, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite", **over})


def test_production_refuses_to_start_without_public_url(base_config, tmp_path):
    from config import ConfigError

    with pytest.raises(ConfigError, match="BRIDGE_PUBLIC_URL must be set.*BRIDGE_LOCAL_DEV=true"):
        _start(base_config, tmp_path, TESTING=False)
    with pytest.raises(ConfigError, match="must start with https://"):
        _start(base_config, tmp_path, TESTING=False, PUBLIC_URL="http://sso.example.com")
    assert _start(base_config, tmp_path, TESTING=False, PUBLIC_URL="https://sso.example.com")
    assert _start(base_config, tmp_path, TESTING=False, LOCAL_DEV=True)


def test_local_config_marks_local_development():
    from config.generate import render

    assert "LOCAL_DEV = True" in render(local=True) and "LOCAL_DEV" not in render()


@pytest.mark.parametrize("over", [
    {"BASIC_ACCESS_KEY_FALLBACKS": ["kit-access-key-0123456789"]},
    {"KIT_ACCESS_KEY_FALLBACKS": ["basic-access-key-0123456789"]},
    {"KIT_ACCESS_KEY_FALLBACKS": ["old-shared"], "BASIC_ACCESS_KEY_FALLBACKS": "old-shared"},
])
def test_a_key_listed_for_both_interface_types_is_refused(base_config, tmp_path, over):
    from config import ConfigError

    with pytest.raises(ConfigError, match="a key is listed both for kit and for basic calls"):
        _start(base_config, tmp_path, **over)


# --- /metrics ------------------------------------------------------------------------------------


def test_metrics_are_closed_without_a_token_unless_opted_out(make_app):
    closed = make_app(METRICS_PUBLIC=False).test_client().get("/metrics")
    assert closed.status_code == 401 and b"BRIDGE_METRICS_TOKEN" in closed.data
    assert make_app(METRICS_PUBLIC=True).test_client().get("/metrics").status_code == 200


# --- PostgreSQL timeouts -------------------------------------------------------------------------


def _pg_settings(app):
    with app.app_context():
        values = db.session.execute(db.text("SELECT current_setting('lock_timeout'), "
                                            "current_setting('statement_timeout')")).one()
        db.session.rollback()
        return tuple(values)


def test_postgres_lock_and_statement_timeouts_are_below_five_seconds(base_config, postgres_url):
    from app import create_app

    apps = [create_app({**base_config, "DATABASE_URL": postgres_url, **extra})
            for extra in ({}, {"DATABASE_LOCK_TIMEOUT_MS": 1500, "DATABASE_STATEMENT_TIMEOUT_MS": 0})]
    try:
        assert _pg_settings(apps[0]) == ("2s", "4s")
        assert _pg_settings(apps[1]) == ("1500ms", "0")
    finally:
        for app in apps:
            with app.app_context():
                db.engine.dispose()


def test_postgres_timeouts_through_pgbouncer_in_transaction_mode(base_config, postgres_url, pgbouncer):
    from app import create_app

    url = pgbouncer.url("bridge_test")
    app = create_app({**base_config, "DATABASE_URL": url, "DATABASE_PGBOUNCER": True})
    try:
        assert _pg_settings(app) == ("2s", "4s")
        with app.app_context():  # SET LOCAL: nothing stays behind on the shared server connection
            with db.engine.connect() as conn:
                conn.exec_driver_sql("COMMIT")
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "0"  # back to the server default
    finally:
        with app.app_context():
            db.engine.dispose()


# --- the console lockout ---------------------------------------------------------------------------
# (tests/test_admin.py: test_five_failures_lock_the_account_from_that_client_for_15_minutes,
#  test_flask_admin_unlock_lifts_the_lockout)


# --- personal pages and cookie names ---------------------------------------------------------------


def _signed_in(app, kg, rsa_key, idp):
    """A browser signed in through a faked authentication centre (sso/ flow as in test_sso_flow)."""
    from urllib.parse import parse_qs, urlsplit

    from keys.rsa import encrypt_client_secret

    centre = "https://idp.example.com"
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="acme", domainName=centre)))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("s", rsa_key[0].public_key()))))
    ok(kg.kit("authSync", f.auth_sync([f.user("alice")])))
    client = kg.client
    start = client.get("/sso/login", query_string={"tenant": "acme"})
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    idp.post(f"{centre}/api/v1/oauth2/token", json={"access_token": "at", "token_type": "Bearer",
                                                     "expires_in": 7200, "refresh_token": "rt"})
    idp.get(f"{centre}/api/v1/oauth2/userinfo", json={"userName": "alice", "tenant": f.TENANT})
    return client.get("/sso/callback", query_string={"code": "c", "state": state, "tenant": f.TENANT})


def test_personal_pages_are_not_stored_and_vary_on_the_cookie(app, kg, rsa_key, idp):
    assert _signed_in(app, kg, rsa_key, idp).status_code == 302
    for path in ("/sso/", "/sso/me", "/sso/logout"):
        response = kg.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
        assert "Cookie" in response.headers["Vary"], path


def test_secure_deployments_use_host_prefixed_cookies(make_app, kg, rsa_key, idp):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(COOKIE_SECURE=True)
    client = app.test_client()
    secure_kg = KooGallery(client, KIT_KEY, BASIC_KEY)
    response = _signed_in(app, secure_kg, rsa_key, idp)
    cookies = response.headers.getlist("Set-Cookie")
    sid = next(c for c in cookies if c.startswith("__Host-bridge_sid="))
    assert "Secure" in sid and "Path=/" in sid and "Domain" not in sid
    assert any(c.startswith("__Host-bridge_flow=") and "Secure" in c and "Path=/" in c for c in cookies)
    with app.app_context():
        from admin import sessions as op_sessions

        assert (op_sessions.COOKIE, op_sessions.COOKIE_PATH) == ("__Host-bridge_admin", "/")
    assert client.get("/sso/me").status_code == 200
    assert app.test_client(use_cookies=False).get("/sso/me", headers={"Cookie": sid.split(";")[0]}).status_code == 200
    assert app.test_client(use_cookies=False).get("/sso/me", headers={"Cookie": "bridge_sid=" + sid.split(";")[0].split("=", 1)[1]}
                                 ).status_code == 401  # the plain name means nothing here


def test_local_http_development_keeps_plain_cookie_names(app, kg, rsa_key, idp):
    cookies = _signed_in(app, kg, rsa_key, idp).headers.getlist("Set-Cookie")
    assert any(c.startswith("bridge_sid=") for c in cookies)
