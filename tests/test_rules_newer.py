"""The one "apply only if newer" mechanism (tenants/newer.py), on SQLite and PostgreSQL: what is stored
after calls arrive out of order, and what a debug call may change."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from tenants import newer
from tenants.models import Department, SeenNonce, Tenant, TenantInstance


def tenant_row(ts: str, name: str, *, test=False, tid="t1") -> dict:
    return {"tenant_id": tid, "tenant_code": "c-" + tid, "name": name, "domain_name": "https://idp.example.com",
            "last_sync_ts": ts, "test_flag": test}


def put(ts, name, *, test=False, tid="t1"):
    written = newer.apply_if_newer(Tenant, [tenant_row(ts, name, test=test, tid=tid)], ("tenant_id",), ["name"])
    db.session.commit()
    return written


def stored(tid="t1") -> tuple:
    db.session.expire_all()
    t = db.session.get(Tenant, tid)
    return (t.name, t.last_sync_ts, t.test_flag) if t else None


def test_a_new_row_is_inserted_as_the_call_describes_it(app_ctx):
    assert put("20240101000000001", "first") == {("t1",)}
    assert stored() == ("first", "20240101000000001", False)
    t = db.session.get(Tenant, "t1")
    assert t.created_at is not None and t.updated_at is not None


def test_a_newer_call_is_applied_and_an_older_one_is_not(app_ctx):
    put("20240101000000002", "second")
    assert put("20240101000000003", "third") == {("t1",)}
    assert stored() == ("third", "20240101000000003", False)
    assert put("20240101000000001", "late first") == set()
    assert stored() == ("third", "20240101000000003", False)


def test_a_call_of_the_same_time_is_applied_again(app_ctx):
    put("20240101000000002", "a")
    assert put("20240101000000002", "b") == {("t1",)}
    assert stored() == ("b", "20240101000000002", False)


def test_an_applied_update_moves_updated_at_and_keeps_created_at(app_ctx):
    put("20240101000000001", "a")
    before = db.session.get(Tenant, "t1")
    created, updated = before.created_at, before.updated_at
    old = updated - timedelta(days=1)
    db.session.execute(db.update(Tenant).values(updated_at=old))
    db.session.commit()
    put("20240101000000002", "b")
    db.session.expire_all()
    after = db.session.get(Tenant, "t1")
    assert after.created_at == created
    assert after.updated_at > old


def test_a_debug_call_never_changes_a_production_row(app_ctx):
    put("20240101000000001", "production")
    assert put("20240101000000009", "debug", test=True) == set()
    assert stored() == ("production", "20240101000000001", False)


def test_debug_rows_take_debug_calls_and_production_calls(app_ctx):
    put("20240101000000001", "debug", test=True)
    assert stored() == ("debug", "20240101000000001", True)
    assert put("20240101000000002", "debug 2", test=True) == {("t1",)}
    assert stored() == ("debug 2", "20240101000000002", True)
    assert put("20240101000000003", "production") == {("t1",)}
    assert stored() == ("production", "20240101000000003", False)


def test_several_rows_in_one_call_report_the_keys_written(app_ctx):
    put("20240101000000005", "kept", tid="t2")
    written = newer.apply_if_newer(Tenant, [tenant_row("20240101000000004", "new", tid="t1"),
                                            tenant_row("20240101000000004", "older", tid="t2"),
                                            tenant_row("20240101000000004", "new", tid="t3")],
                                   ("tenant_id",), ["name"])
    db.session.commit()
    assert written == {("t1",), ("t3",)}
    assert [stored(t)[0] for t in ("t1", "t2", "t3")] == ["new", "kept", "new"]


def test_a_large_batch_follows_the_same_rule(app_ctx):
    """From newer.ARRAY_ROWS rows on, PostgreSQL gets the rows as arrays: same outcome, row by row."""
    count = newer.ARRAY_ROWS + 8
    ids = [f"t{i:03}" for i in range(count)]
    newer.apply_if_newer(Tenant, [tenant_row("20240101000000005", "stored", tid=t) for t in ids[:10]],
                         ("tenant_id",), ["name"])
    newer.apply_if_newer(Tenant, [tenant_row("20240101000000005", "debug", tid=t, test=True) for t in ids[10:20]],
                         ("tenant_id",), ["name"])
    db.session.commit()
    gone = db.session.get(Tenant, ids[0]).created_at
    rows = [{**tenant_row("20240101000000004" if i < 5 else "20240101000000006", f"new {i}", tid=t,
                          test=10 <= i < 15), "deleted_at": gone if i % 2 else None}
            for i, t in enumerate(ids)]
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        written = newer.apply_if_newer(Tenant, rows, ("tenant_id",), ["name", "deleted_at"])
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":  # one statement, a parameter per column (and timestamp), not per value
        assert len(sent) == 1 and "unnest(" in sent[0][0] and len(sent[0][1]) <= len(rows[0]) + 3, sent
    assert written == {(t,) for t in ids[5:]}  # the five older ones are kept
    assert [stored(t)[0] for t in ids[:6]] == ["stored"] * 5 + ["new 5"]
    assert stored(ids[12]) == ("new 12", "20240101000000006", True)  # debug over debug
    assert stored(ids[17]) == ("new 17", "20240101000000006", False)  # production over debug
    assert stored(ids[-1]) == (f"new {count - 1}", "20240101000000006", False)
    db.session.expire_all()
    assert db.session.get(Tenant, ids[7]).deleted_at is not None and db.session.get(Tenant, ids[8]).deleted_at is None
    assert db.session.get(Tenant, ids[-1]).created_at is not None


def test_a_large_batch_of_debug_calls_never_changes_production_rows(app_ctx):
    ids = [f"p{i:03}" for i in range(newer.ARRAY_ROWS)]
    newer.apply_if_newer(Tenant, [tenant_row("20240101000000001", "production", tid=t) for t in ids],
                         ("tenant_id",), ["name"])
    written = newer.apply_if_newer(Tenant, [tenant_row("20240101000000009", "debug", tid=t, test=True) for t in ids],
                                   ("tenant_id",), ["name"])
    db.session.commit()
    assert written == set() and {stored(t) for t in ids} == {("production", "20240101000000001", False)}


def test_columns_not_named_keep_their_stored_value(app_ctx):
    put("20240101000000001", "a")
    row = {**tenant_row("20240101000000002", "b"), "domain_name": "https://other.example.com"}
    newer.apply_if_newer(Tenant, [row], ("tenant_id",), ["name"])
    db.session.commit()
    db.session.expire_all()
    t = db.session.get(Tenant, "t1")
    assert (t.name, t.domain_name) == ("b", "https://idp.example.com")


def test_a_column_may_take_sql_of_the_call_and_the_stored_row(app_ctx):
    put("20240101000000001", "a")
    deleted = db.session.get(Tenant, "t1").created_at.replace(microsecond=0)
    update = {"name": None, "deleted_at": newer.keep_first("deleted_at")}
    newer.apply_if_newer(Tenant, [{**tenant_row("20240101000000002", "b"), "deleted_at": deleted}], ("tenant_id",),
                         update)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Tenant, "t1").deleted_at.replace(tzinfo=None) == deleted.replace(tzinfo=None)
    again = {**tenant_row("20240101000000003", "c"), "deleted_at": deleted + timedelta(days=2)}
    newer.apply_if_newer(Tenant, [again], ("tenant_id",), update)
    db.session.commit()
    db.session.expire_all()
    t = db.session.get(Tenant, "t1")
    # The name follows the call; the first deletion time stays.
    assert (t.name, t.deleted_at.replace(tzinfo=None)) == ("c", deleted.replace(tzinfo=None))


def test_nothing_to_apply_writes_nothing(app_ctx):
    assert newer.apply_if_newer(Tenant, [], ("tenant_id",), ["name"]) == set()
    assert newer.insert_missing(SeenNonce, [], ("nonce",)) == set()


def dept(code, ts, *, test=False, tenant="t1", deleted=None):
    return Department(tenant_id=tenant, org_code=code, org_name=code, last_sync_ts=ts, test_flag=test,
                      deleted_at=deleted)


def live_codes(tenant="t1") -> list[str]:
    db.session.expire_all()
    return sorted(d.org_code for d in db.session.execute(
        db.select(Department).filter_by(tenant_id=tenant, deleted_at=None)).scalars())


def tombstone(listed, ts, test=False):
    count = newer.tombstone_unlisted(Department, tenant_id="t1", key_column="org_code", listed=listed, ts=ts, test=test)
    db.session.commit()
    return count


def test_a_full_list_removes_the_tenants_other_rows(app_ctx):
    db.session.add_all([dept("a", "20240101000000001"), dept("b", "20240101000000001"),
                        dept("c", "20240101000000001"), dept("x", "20240101000000001", tenant="t2")])
    db.session.commit()
    assert tombstone(["a"], "20240101000000002") == 2
    assert live_codes() == ["a"]
    assert live_codes("t2") == ["x"]
    removed = db.session.get(Department, ("t1", "b"))
    assert removed.deleted_at is not None and removed.last_sync_ts == "20240101000000002"


def test_an_older_full_list_removes_nothing_newer(app_ctx):
    db.session.add_all([dept("a", "20240101000000005"), dept("b", "20240101000000001")])
    db.session.commit()
    assert tombstone([], "20240101000000003") == 1
    assert live_codes() == ["a"]
    assert tombstone([], "20240101000000005") == 1
    assert live_codes() == []


def test_a_removed_row_is_not_removed_again(app_ctx):
    gone = dept("b", "20240101000000001")
    db.session.add(gone)
    db.session.commit()
    first = tombstone([], "20240101000000002")
    deleted_at = db.session.get(Department, ("t1", "b")).deleted_at
    assert (first, tombstone([], "20240101000000003")) == (1, 0)
    db.session.expire_all()
    assert db.session.get(Department, ("t1", "b")).deleted_at == deleted_at


def test_a_debug_full_list_removes_only_debug_rows(app_ctx):
    db.session.add_all([dept("prod", "20240101000000001"), dept("debug", "20240101000000001", test=True)])
    db.session.commit()
    assert tombstone([], "20240101000000002", test=True) == 1
    assert live_codes() == ["prod"]


def test_insert_missing_inserts_only_what_is_not_there(app_ctx):
    rows = [{"tenant_id": "t1", "instance_id": "i1"}, {"tenant_id": "t1", "instance_id": "i2"}]
    assert newer.insert_missing(TenantInstance, rows[:1], ("tenant_id", "instance_id")) == {("t1", "i1")}
    assert newer.insert_missing(TenantInstance, rows, ("tenant_id", "instance_id")) == {("t1", "i2")}
    assert newer.insert_missing(TenantInstance, rows, ("instance_id",)) == set()
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(TenantInstance)) == 2


def bind_named(name: str) -> SimpleNamespace:
    """A stand-in for the session's engine, as far as the dialect's name."""
    return SimpleNamespace(dialect=SimpleNamespace(name=name))


@pytest.mark.parametrize("name, insert", [("postgresql", postgresql.Insert), ("sqlite", sqlite.Insert)])
def test_each_database_gets_its_own_upsert(app_ctx, monkeypatch, name, insert):
    monkeypatch.setattr(db.session, "get_bind", lambda *a, **k: bind_named(name))
    stmt = newer.dialect_insert(Tenant.__table__)
    assert isinstance(stmt, insert) and stmt.table is Tenant.__table__


def test_an_unsupported_database_is_refused_by_name(app_ctx, monkeypatch):
    monkeypatch.setattr(db.session, "get_bind", lambda *a, **k: bind_named("mysql"))
    with pytest.raises(RuntimeError, match="^unsupported database dialect mysql$"):
        newer.apply_if_newer(Tenant, [tenant_row("1", "a")], ("tenant_id",), ["name"])
