"""Race-free "create or lock" for sync rows.

Twenty identical tenantSyncs may arrive at once on several processes. Each does
`INSERT … ON CONFLICT DO NOTHING` and then `SELECT … FOR UPDATE`: exactly one insert wins, every
other call waits for its row lock and then sees the row, so there is one row and no unique-key
error. SQLite has no row locks; its writers are serialised by `BEGIN IMMEDIATE` (see app.py)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from tenants.models import utcnow


def _insert(model):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {dialect}")


def insert_missing(model, rows: list[dict], key_columns: tuple[str, ...]) -> set[tuple]:
    """Insert the rows whose key is not there yet; return the keys that were inserted."""
    if not rows:
        return set()
    table = model.__table__
    # Core, not the ORM's bulk machinery (this is the hot path of every sync call); rows as
    # parameters, batched by SQLAlchemy's "insertmanyvalues": one statement compiled once, not a new
    # 8,500-parameter INSERT per authSync call (bench/README.md: 219 -> 80 ms).
    stmt = _insert(table).on_conflict_do_nothing().returning(*(table.c[c] for c in key_columns))
    connection = db.session.connection()
    result = connection.execute(stmt, rows[0]) if len(rows) == 1 else connection.execute(stmt, rows)
    return {tuple(r) for r in result}


def lock_rows(model, key_column: str, keys: list, **equal):
    """The existing rows for `keys`, locked until commit, in key order (no lock-order deadlocks)."""
    column = getattr(model, key_column)
    stmt = db.select(model).filter_by(**equal).where(column.in_(keys)).order_by(column).with_for_update()
    return list(db.session.execute(stmt).scalars())


def create_or_lock(model, key: dict, values: dict):
    """(row, created): a new row with `values`, or the existing one locked for update."""
    inserted = insert_missing(model, [{**values, **key}], tuple(key))
    stmt = db.select(model).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    return db.session.execute(stmt).scalar_one(), bool(inserted)


def upsert_if_newer(model, key: dict, values: dict, update: dict, *, version: str) -> bool:
    """One statement: insert the row, or apply `update` to the stored one unless its `version`
    column is newer than ours. `update` maps columns to values, or to a function of (excluded,
    stored columns) giving an SQL expression. False when the stored row was newer (nothing changed)."""
    table = model.__table__
    stmt = _insert(table).values({**values, **key})
    set_ = {c: (v(stmt.excluded, table.c) if callable(v) else v) for c, v in update.items()}
    set_["updated_at"] = utcnow()  # ON CONFLICT DO UPDATE does not run Python-side onupdate
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=set_,
                                      where=table.c[version] <= stmt.excluded[version])
    stmt = stmt.returning(table.c[next(iter(key))])
    return db.session.connection().execute(stmt).first() is not None
