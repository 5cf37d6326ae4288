"""The queries that run on every call, or on every console page, stay index lookups however large
the tables grow (bench/README.md, "Cost as the data grows"). Plans are PostgreSQL's; with
sequential scans and sorts priced out, a query the planner cannot answer from an index still
shows one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from admin import services as console
from app import create_app
from common.clock import utcnow
from extensions import db
from sso.models import LoginState
from tenants import queries
from tenants.models import SyncCall
from tenants.services import _stored_and_code_holder
from tests.helpers import empty_database
from tests.sso_fixtures import start


def _statements(app, run, marker: str) -> list[tuple[str, dict]]:
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if marker in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return seen


def _plan(statement: str, parameters, *, bitmap: bool = False, sort: bool = False) -> str:
    # A handful of rows: price out what a large table would make costly, so that only an index
    # that answers the query (filter and order) gives a plan without a Seq Scan or a Sort. An OR
    # of two indexed terms needs a BitmapOr (`bitmap`); a query that sorts the few rows an index
    # finds keeps its Sort (`sort`).
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    db.session.execute(text(f"SET LOCAL enable_sort = {'on' if sort else 'off'}"))
    db.session.execute(text(f"SET LOCAL enable_bitmapscan = {'on' if bitmap else 'off'}"))
    return "\n".join(db.session.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())


@pytest.fixture
def pg_app(base_config, postgres_url):
    """PostgreSQL only (the plans are its planner's), so no SQLite variant to skip."""
    empty_database(postgres_url, truncate=True)
    app = create_app({**base_config, "DATABASE_URL": postgres_url})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    empty_database(postgres_url, truncate=True)


@pytest.fixture
def database_url(postgres_url):
    """The shared fixtures (an app, a synced tenant) on PostgreSQL only."""
    empty_database(postgres_url, truncate=True)
    yield postgres_url
    empty_database(postgres_url, truncate=True)


def test_the_login_caps_count_only_open_states_along_an_index(synced, client, app):
    """Every login start counts the open login states. A busy hour leaves thousands of used ones
    within their TTL: the count must not read them."""
    later = utcnow() + timedelta(minutes=5)
    with app.app_context():
        db.session.add_all([LoginState(state_hash=f"{i:064d}", browser_hash="b", tenant_id="t", redirect_uri="r",
                                       expires_at=later, used_at=utcnow()) for i in range(3000)])
        db.session.commit()
        db.session.execute(text("ANALYZE sso_login_state"))
        db.session.commit()
        seen = _statements(app, lambda: start(client), "FROM sso_login_state")
        counts = [(statement, parameters) for statement, parameters in seen if "count(" in statement]
        assert len(counts) == 1
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.session.connection().exec_driver_sql(f"EXPLAIN {counts[0][0]}", counts[0][1]).scalars())
        assert "ix_sso_login_state_open" in plan, plan
        db.session.rollback()


def test_tenant_code_lookups_of_login_and_tenant_sync_use_an_index(pg_app):
    with pg_app.app_context():
        seen = _statements(pg_app, lambda: (queries.tenant_for_login_by_ref("Some-Code", None),
                                            _stored_and_code_holder("t1", "Some-Code")),
                           "tenant_code) = ")
        assert len(seen) == 2
        # The login page sorts the rows sharing a code (live first): with sorts priced out, walking
        # the console's (deleted_at IS NOT NULL, tenant_code, tenant_id) index would look cheaper.
        by_ref = _plan(*seen[0], sort=True)
        code_holder = _plan(*seen[1], bitmap=True)
        # The login page also finds deleted tenants by code: the full index. tenantSync looks for a
        # live holder only: the partial unique index answers it.
        assert "Seq Scan" not in by_ref and "ix_kg_tenant_code_lower" in by_ref, by_ref
        assert "Seq Scan" not in code_holder and "kg_tenant_code" in code_holder, code_holder
        db.session.rollback()


def test_a_logins_reads_of_the_tenant_are_index_lookups(pg_app):
    with pg_app.app_context():
        seen = _statements(pg_app, lambda: (queries.tenant_for_login_by_ref("Some-Code", None),
                                            queries.tenant_for_login_by_ref("t1", "app-1"),
                                            queries.tenant_and_user("t1", "alice")), "FROM kg_tenant")
        assert len(seen) == 3
        for statement, parameters in seen:
            plan = _plan(statement, parameters, sort=True)  # sorting a tenant's few order links is fine
            assert "Seq Scan" not in plan, plan
            assert "Index Scan using pk_kg_tenant on kg_tenant " in plan, plan
        db.session.rollback()


def test_an_apps_nonce_is_checked_for_reuse_along_an_index(pg_app):
    from types import SimpleNamespace

    from sso.oidc.server import BridgeOpenIDCode

    request = SimpleNamespace(payload=SimpleNamespace(client_id="app-1"))
    with pg_app.app_context():
        seen = _statements(pg_app, lambda: BridgeOpenIDCode().exists_nonce("n-1", request), "oidc_authorization_code")
        assert len(seen) == 1
        plan = _plan(*seen[0])
        assert "Seq Scan" not in plan and "ix_oidc_authorization_code_nonce" in plan, plan
        db.session.rollback()


def test_the_console_sync_log_reads_failures_and_successes_along_indexes(pg_app):
    with pg_app.test_request_context("/admin/sync"):
        db.session.add_all([SyncCall(request_id=f"r{code}", interface="kit:tenantSync", result_code=code,
                                     result_msg="m", duration_ms=1) for code in ("000002", "000000")])
        db.session.commit()
        seen = _statements(pg_app, lambda: console.sync_calls(console.Position()), "ORDER BY kg_sync_call.id DESC")
        assert len(seen) == 2  # the failures' page, then the successes' to fill it
        plans = [_plan(statement, parameters) for statement, parameters in seen]
        assert all("Seq Scan" not in plan and "Sort" not in plan for plan in plans), plans
        assert "ix_kg_sync_call_failed" in plans[0] and "pk_kg_sync_call" in plans[1], plans
        db.session.rollback()


def _seeded_console(app) -> dict:
    """A few rows of each console list, and cursors deep inside each run of them."""
    from datetime import timedelta

    from common.clock import utcnow
    from sso.models import LoginEvent
    from tenants.models import Tenant, TenantUser

    db.session.add_all([SyncCall(request_id=f"r{i}", interface="kit:tenantSync", result_code=code, result_msg="m",
                                 duration_ms=1) for i, code in enumerate(["000002", "000000"] * 3)])
    db.session.add_all([LoginEvent(request_id=f"l{i}", outcome="success") for i in range(3)])
    gone = utcnow() - timedelta(days=1)
    db.session.add_all([Tenant(tenant_id=f"t{i}", tenant_code=f"c{i}", name="n", domain_name="https://idp.example.com",
                               last_sync_ts="20260101000000000", deleted_at=gone if i == 2 else None) for i in range(3)])
    db.session.add_all([TenantUser(tenant_id="t0", user_name=f"u{i}", last_sync_ts="20260101000000000")
                        for i in range(3)])
    db.session.commit()
    return {"failure": db.session.scalar(db.select(db.func.max(SyncCall.id)).where(SyncCall.result_code != "000000")),
            "success": db.session.scalar(db.select(db.func.max(SyncCall.id)).where(SyncCall.result_code == "000000")),
            "event": db.session.scalar(db.select(db.func.max(LoginEvent.id)))}


def _page_plans(app, run, marker: str) -> list[str]:
    plans = [_plan(statement, parameters) for statement, parameters in _statements(app, run, marker)]
    db.session.rollback()
    assert plans
    return plans


def test_a_deep_console_page_is_a_seek_along_an_index_with_no_sort(pg_app):
    """Keyset pages (admin.services.seek): from a cursor, each run of a list is an index range
    scan from the cursor's key on, whatever its depth; nothing is read and discarded, nothing sorted."""
    with pg_app.test_request_context("/admin/sync"):
        at = _seeded_console(pg_app)
        after = console.Position
        for where, run, index in [
            ("deep in the failures", lambda: console.sync_calls(after(console.cursor(0, at["failure"]))),
             "ix_kg_sync_call_failed"),
            ("deep in the successes", lambda: console.sync_calls(after(console.cursor(1, at["success"]))),
             "pk_kg_sync_call"),
            ("back towards the top", lambda: console.sync_calls(console.Position(
                before=console.cursor(1, at["success"] - 2))), "pk_kg_sync_call"),
        ]:
            plans = _page_plans(pg_app, run, "ORDER BY kg_sync_call.id")
            assert all("Seq Scan" not in p and "Sort" not in p for p in plans), (where, plans)
            assert index in plans[0] and re.search(r"Index Cond: \(id [<>]", plans[0]), (where, plans)
        plans = _page_plans(pg_app, lambda: console.login_events(after(console.cursor(0, at["event"]))),
                            "ORDER BY sso_login_event.id")
        assert all("Seq Scan" not in p and "Sort" not in p and "pk_sso_login_event" in p for p in plans), plans
        for deleted in (False, True):  # among the live tenants, then the deleted ones
            at_tenant = after(console.cursor(0, deleted, "c0", "t0"))
            [plan] = _page_plans(pg_app, lambda at_tenant=at_tenant: console.tenant_overview(at_tenant),
                                 "kg_tenant.tenant_code ASC")
            assert "Seq Scan" not in plan and "Sort" not in plan and "ix_kg_tenant_console_order" in plan, plan
            assert "Index Cond: (ROW((deleted_at IS NOT NULL), (tenant_code)::text, (tenant_id)::text) >" in plan, plan
        plans = _page_plans(pg_app, lambda: console.tenant_detail("t0", after(console.cursor(0, "u0")),
                                                                  console.Position()), "ORDER BY kg_user.user_name")
        assert all("Seq Scan" not in p and "Sort" not in p and "pk_kg_user" in p for p in plans), plans
