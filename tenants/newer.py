"""The one "apply only if newer" mechanism of every sync handler, deletes included.

KooGallery's calls are asynchronous and retried, so an older update may arrive after a newer one.
Every synced row carries `last_sync_ts`, the KooGallery time of the newest call applied to it, and
every change is one `INSERT … ON CONFLICT DO UPDATE … WHERE <guard>` statement:

- the stored row is not newer than the call (`stored.last_sync_ts <= call.last_sync_ts`), and
- a debug call (testFlag 1) never changes a production row (DESIGN invariant 11).

A row that does not exist yet is inserted as the call describes it (a delete inserts a tombstone,
so a late, older "add" cannot bring it back). The statement returns the keys it wrote, so the
caller knows which rows changed without reading them first. Twenty identical calls on several
processes end in one row: the conflicting inserts wait for each other's row lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from sqlalchemy.dialects import postgresql, sqlite

from common.clock import utcnow
from extensions import db

VERSION = "last_sync_ts"

# A column's new value: a literal, "keep the stored one unless unset" or any SQL of (call, stored).
Update = object | Callable


_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_name() -> str:
    name = db.session.get_bind().dialect.name
    if name not in _INSERTS:
        raise RuntimeError(f"unsupported database dialect {name}")
    return name


def dialect_insert(table, dialect: str | None = None):
    return _INSERTS[dialect or dialect_name()](table)


def guard(stored, version, test):
    """True where a call of KooGallery time `version` (debug when `test`) may change the stored
    row: the one spelling of the rule. Both are SQL expressions or plain values."""
    if not isinstance(test, db.ColumnElement):
        test = db.literal(bool(test), db.Boolean)
    return (stored[VERSION] <= version) & (stored.test_flag | ~test)


# The column functions below are made once per column (lru_cache), so an `update` that uses them
# is the same value call after call and its statement is built once (`_upsert`).


@lru_cache
def keep_first(column: str):
    """For tombstones: the first deletion time stays."""
    return lambda call, stored: db.func.coalesce(stored[column], call[column])


@lru_cache
def fill_if_blank(column: str):
    """The stored value unless it is empty or NULL, then the call's."""
    return lambda call, stored: db.func.coalesce(db.func.nullif(stored[column], ""), call[column])


def set_null(call, stored):
    """Clears the column: a tombstone re-added comes back live."""
    return None


def apply_if_newer(model, rows: list[dict], key: tuple[str, ...], update: Iterable[str] | dict) -> set[tuple]:
    """Insert `rows`, or apply them to the stored rows the guard allows; return the keys written.

    `update` names the columns a stored row takes from the call (besides the version and the
    debug flag, which every write sets), or maps columns to SQL functions of (call, stored)."""
    if not rows:
        return set()
    changes = update if isinstance(update, dict) else dict.fromkeys(update)
    dialect = dialect_name()
    shape = (model.__table__, tuple(key), tuple(changes.items()), dialect)
    connection = db.session.connection()
    # Core, not the ORM unit of work: this is the hot path of every sync call. Several rows go as
    # parameters of one compiled statement (SQLAlchemy's "insertmanyvalues").
    if len(rows) >= ARRAY_ROWS and dialect == "postgresql":
        result = connection.execute(_upsert(*shape, tuple(rows[0])), _arrays(rows))
    elif len(rows) == 1:
        result = connection.execute(_upsert(*shape), rows[0])
    else:
        result = connection.execute(_upsert(*shape), rows)
    return {tuple(r) for r in result}


@lru_cache(maxsize=256)
def _upsert(table, key: tuple[str, ...], changes: tuple, dialect: str, array_columns: tuple[str, ...] = ()):
    """The guarded upsert, built once per shape (table, key, columns and their functions): building
    the SQL expression costs more than running it. With `array_columns`, the rows come as one array
    parameter per column (`_arrays`)."""
    stmt = dialect_insert(table, dialect)
    call, stored = stmt.excluded, table.c
    # Columns, not names, as keys: a misspelt name would pass on SQLite (names are case-insensitive
    # there) and fail only on PostgreSQL.
    set_ = {stored[c]: (fn(call, stored) if callable(fn) else call[c]) for c, fn in changes}
    set_ |= {stored[VERSION]: call[VERSION], stored.test_flag: call.test_flag}
    if "updated_at" in stored:
        # ON CONFLICT DO UPDATE runs no Python-side onupdate: the row the call would have inserted
        # carries the time (its column default).
        set_[stored.updated_at] = call.updated_at
    if array_columns:
        stmt = stmt.from_select(list(array_columns), _unnest(table, array_columns))
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=set_, where=guard(stored, call[VERSION], call.test_flag))
    return stmt.returning(*(table.c[c] for c in key))


# From this many rows on, PostgreSQL gets one array per column instead of one parameter per value:
# an authSync of 500 users is then 17 parameters, not 8,500 that psycopg adapts one by one.
ARRAY_ROWS = 32


def _unnest(table, names: tuple[str, ...]):
    """SELECT * FROM unnest(:col1, :col2, …): rows given as one array per column, as a derived table."""
    arrays = [db.cast(db.bindparam(f"rows_{n}", type_=postgresql.ARRAY(table.c[n].type)),
                      postgresql.ARRAY(table.c[n].type)) for n in names]
    source = db.func.unnest(*arrays).table_valued(*names).render_derived()
    return db.select(*(source.c[n] for n in names))


def _arrays(rows: list[dict]) -> dict:
    return {f"rows_{n}": [r[n] for r in rows] for n in rows[0]}


def tombstone_unlisted(model, *, tenant_id: str, key_column: str, listed: Iterable[str], ts: str,
                       test: bool) -> int:
    """A full list (allOrgSync) removes the tenant's other rows, under the same guard."""
    table = model.__table__
    stmt = (db.update(table)
            .where(table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None),
                   table.c[key_column].not_in(list(listed)),
                   guard(table.c, ts, test))
            .values(deleted_at=utcnow(), **{VERSION: ts}))
    return db.session.execute(stmt).rowcount or 0


def insert_missing(model, rows: list[dict], key_columns: tuple[str, ...]) -> set[tuple]:
    """Insert the rows whose key is not there yet; return the keys that were inserted. For rows
    that are never updated (nonces, order links, instances)."""
    if not rows:
        return set()
    stmt = _insert_or_skip(model.__table__, tuple(key_columns), dialect_name())
    connection = db.session.connection()
    result = connection.execute(stmt, rows[0]) if len(rows) == 1 else connection.execute(stmt, rows)
    return {tuple(r) for r in result}


@lru_cache(maxsize=64)
def _insert_or_skip(table, key_columns: tuple[str, ...], dialect: str):
    return dialect_insert(table, dialect).on_conflict_do_nothing().returning(*(table.c[c] for c in key_columns))
