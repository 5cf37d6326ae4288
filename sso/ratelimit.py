"""Per-client rate limits on the anonymous login routes (starting a login, the callback).

Counted in the database, so every worker and every server shares one count: one row per
(route group, client, fixed window), upserted. Storage is bounded whatever the traffic
(DESIGN invariant 10): a client adds at most one small row per window; past
RATE_LIMIT_MAX_CLIENTS rows in one window, every new client shares a single overflow row with its
own, higher limit; rows of past windows are deleted when a window's first row is written and by
`flask maintenance run`. The client is the address Flask sees (after ProxyFix); IPv6 clients
are counted per /64, which is what one subscriber usually gets."""

from __future__ import annotations

import ipaddress
import logging
import time

from flask import current_app
from sqlalchemy import Index, Integer, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db

log = logging.getLogger(__name__)

OVERFLOW_CLIENT = "*"  # the row every client beyond the per-window cap shares
# Route group -> the setting holding its limit per client per window.
GROUPS = {"login": "RATE_LIMIT_LOGIN", "callback": "RATE_LIMIT_CALLBACK"}


class RateWindow(db.Model):
    """How many requests one client made to one route group in one fixed window."""

    __tablename__ = "sso_rate_window"

    bucket: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # UNIX seconds
    hits: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_sso_rate_window_start", "window_start"),)


def client_key(remote_addr: str | None) -> str:
    try:
        address = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        return (remote_addr or "-")[:64]
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _upsert(bucket: str, client: str, start: int) -> int:
    table = RateWindow.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = (insert.values(bucket=bucket, client=client, window_start=start, hits=1)
            .on_conflict_do_update(index_elements=["bucket", "client", "window_start"],
                                   set_={"hits": table.c.hits + 1})
            .returning(table.c.hits))
    return db.session.execute(stmt).scalar_one()


def _clock() -> float:
    return time.time()


def hit(bucket: str, remote_addr: str | None, now: float | None = None) -> int | None:
    """Count one request; the seconds to wait (for Retry-After) when the client is over its
    limit, else None. A database failure lets the request through (it will meet the same
    database and answer 503 there)."""
    cfg = current_app.config
    limit = int(cfg[GROUPS[bucket]] or 0)
    if limit <= 0:
        return None
    window = max(1, int(cfg["RATE_LIMIT_WINDOW_SECONDS"]))
    now_s = int(now if now is not None else _clock())
    start = now_s - now_s % window
    client = client_key(remote_addr)
    table = RateWindow.__table__
    key = (table.c.bucket == bucket) & (table.c.window_start == start)
    try:
        hits = db.session.execute(db.update(table).where(key, table.c.client == client)
                                  .values(hits=table.c.hits + 1).returning(table.c.hits)).scalar_one_or_none()
        if hits is None:  # this client's first request in this window
            db.session.execute(db.delete(table).where(table.c.window_start < start))
            rows = db.session.scalar(db.select(db.func.count()).select_from(table).where(key))
            if rows >= int(cfg["RATE_LIMIT_MAX_CLIENTS"]):
                client, limit = OVERFLOW_CLIENT, int(cfg["RATE_LIMIT_OVERFLOW"])
            hits = _upsert(bucket, client, start)
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("rate_limit_unavailable bucket=%s error=%s", bucket, type(exc).__name__)
        return None
    if hits <= limit:
        return None
    if hits == limit + 1:
        log.warning("rate_limited bucket=%s client=%s limit=%d window=%ds", bucket, client, limit, window)
    return max(1, start + window - now_s)
