"""What the tests share that is not a fixture: the test access keys, assertions on KooGallery
answers, reading rows back. Tests import this module, never another test module or conftest."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import sqlalchemy
from cryptography.fernet import Fernet
from sqlalchemy import text

from extensions import db

KIT_KEY = "kit-access-key-0123456789"
BASIC_KEY = "basic-access-key-0123456789"
DATA_KEY = Fernet.generate_key().decode()


def missing_dependency(what: str, apt_command: str):
    """A Debian package a test needs is not installed: a failure where CI runs the whole suite, a
    skip that says how to install it elsewhere (`make test` installs it as root)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not installed, and CI runs this test: {apt_command}")
    pytest.skip(f"{what} not installed ({apt_command})")


def ok(response):
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resultCode"] == "000000", body
    return body


def code_of(response) -> str:
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()["resultCode"]


def rows(app, model, **where):
    with app.app_context():
        return db.session.execute(db.select(model).filter_by(**where)).scalars().all()


_EMPTYING: dict[str, tuple] = {}  # url -> (engine, DELETE statement, TRUNCATE statement)

# Referencing tables first, so each DELETE finds no row that another table still points at.
_TABLES = """
    SELECT quote_ident(t.tablename) FROM pg_tables t
    WHERE t.schemaname = current_schema() AND t.tablename <> 'alembic_version'
    ORDER BY (SELECT count(*) FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid =
              (quote_ident(t.schemaname) || '.' || quote_ident(t.tablename))::regclass), t.tablename"""
_SEQUENCES = """
    SELECT quote_literal(quote_ident(schemaname) || '.' || quote_ident(sequencename))
    FROM pg_sequences WHERE schemaname = current_schema() ORDER BY sequencename"""


def empty_database(url: str, *, truncate: bool = False) -> None:
    """Empty every table of the bridge's PostgreSQL database and restart its sequences (before and
    after each test: module-scoped live servers share it). DELETE: a test leaves a few rows, and
    deleting them takes 1-3 ms where TRUNCATE of every table takes 50-110 ms. `truncate` also gives
    the tables their pages back, so that tests of the planner's choices see new tables every time.
    One engine and one statement per database, not an app per call."""
    if url not in _EMPTYING:
        # Nothing prepared: through PgBouncer (TEST_VIA_PGBOUNCER=1) the next statement may meet
        # another server connection.
        engine = sqlalchemy.create_engine(url, pool_size=1, pool_pre_ping=True,
                                          connect_args={"prepare_threshold": None})
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(_TABLES).scalars().all()
            sequences = conn.exec_driver_sql(_SEQUENCES).scalars().all()
        _EMPTYING[url] = (engine, "; ".join([f"DELETE FROM {table}" for table in tables]
                                            + [f"SELECT setval({seq}, 1, false)" for seq in sequences]),
                          f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    engine, delete, truncate_statement = _EMPTYING[url]
    with engine.begin() as conn:
        conn.exec_driver_sql(truncate_statement if truncate else delete)


# PostgreSQL only: row locks and their waits (SQLite runs one writer at a time).
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def wait_until_a_query_waits_on_a_lock(engine, timeout: float = 10) -> None:
    """Return once some connection to this database waits on a lock (or after `timeout`): the moment
    a race test lets its other transaction commit or roll back."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database()")
    deadline = time.monotonic() + timeout
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            seen = watcher.execute(waiting).scalar()
            watcher.rollback()  # pg_stat_activity is a snapshot per transaction
            if seen:
                return
            time.sleep(0.01)


# --- the joined reads (a tenant with its orders and more): their rows, and comparing them ----------


def tenant_with_several_orders(now, *, without_orders: str) -> list:
    """Tenant "several" with three order links (oldest to newest: an instance, a link the bridge has
    no instance for, the newest instance) and a deleted debug tenant `without_orders` with none."""
    from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance

    return [
        Tenant(tenant_id="several", tenant_code="sev", name="Several", domain_name="https://idp.example.com",
               last_sync_ts="1", domain_id="d-1"),
        Tenant(tenant_id=without_orders, tenant_code=without_orders, name="No orders",
               domain_name="https://idp.example.com", last_sync_ts="1", test_flag=True, deleted_at=now),
        Instance(instance_id="i-old", order_id="o1", order_line_id="l1", status=InstanceStatus.FROZEN, seats=5),
        Instance(instance_id="i-new", order_id="o2", order_line_id="l2", status=InstanceStatus.ACTIVE,
                 expire_time=now + timedelta(days=3)),
        TenantInstance(tenant_id="several", instance_id="i-old", created_at=now - timedelta(days=3)),
        TenantInstance(tenant_id="several", instance_id="i-unknown", created_at=now - timedelta(days=2)),
        TenantInstance(tenant_id="several", instance_id="i-new", created_at=now - timedelta(days=1))]


def fields(row) -> dict | None:
    """A read-only row's fields (None for no row)."""
    return None if row is None else {k: getattr(row, k) for k in row._fields}


def assert_same(row, obj) -> None:
    """The row holds what the ORM object (or another row) holds, field for field; or both are None."""
    assert (row is None) == (obj is None)
    if obj is not None:
        assert fields(row) == {k: getattr(obj, k) for k in row._fields}


def assert_same_orders(got, expected) -> None:
    """The same order links in the same order, each with the same instance (or none)."""
    assert [linked for linked, _ in got] == [linked for linked, _ in expected]
    for (_, instance), (_, wanted) in zip(got, expected, strict=True):
        assert_same(instance, wanted)  # orders_of's rows also carry the link's id: the row's fields count
