"""Operator sessions: a random id in an HttpOnly, SameSite=Strict cookie scoped to /admin; the
database keeps its SHA-256, so ending the row ends the session in every process at once."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, has_app_context

from admin.models import Operator, OperatorSession
from common.clock import utcnow
from common.hashing import hash_token
from config import cookie_name
from extensions import db

COOKIE_BASE = "bridge_admin"
PLAIN_COOKIE_PATH = "/admin"


def __getattr__(name: str):
    # With Secure cookies the console's cookie is `__Host-bridge_admin` (which requires Path=/; it
    # stays HttpOnly and SameSite=Strict); in local http development `bridge_admin` on /admin.
    if name == "COOKIE":
        return cookie_name(COOKIE_BASE, current_app.config) if has_app_context() else COOKIE_BASE
    if name == "COOKIE_PATH":
        return "/" if has_app_context() and current_app.config.get("COOKIE_SECURE") else PLAIN_COOKIE_PATH
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
LAST_SEEN_RESOLUTION = timedelta(seconds=60)  # one write a minute at most, not one per page


def idle_timeout() -> timedelta:
    return timedelta(minutes=current_app.config.get("ADMIN_SESSION_IDLE_MINUTES", 30))


def absolute_lifetime() -> timedelta:
    return timedelta(hours=current_app.config.get("ADMIN_SESSION_ABSOLUTE_HOURS", 8))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def open_operator_session(operator: Operator, remote_addr: str | None) -> str:
    """A new session; returns the raw id for the cookie (only its hash is stored)."""
    raw_id = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(OperatorSession(id_hash=hash_token(raw_id), operator_id=operator.id, created_at=now,
                                   last_seen_at=now, expires_at=now + absolute_lifetime(),
                                   remote_addr=(remote_addr or "")[:64] or None))
    operator.last_sign_in_at = now
    return raw_id


def find_operator_session(raw_id: str | None) -> OperatorSession | None:
    if not raw_id or len(raw_id) > 128:
        return None
    return db.session.get(OperatorSession, hash_token(raw_id))


def end_operator_session(op_session: OperatorSession, reason: str) -> None:
    if op_session.ended_at is None:
        op_session.ended_at, op_session.end_reason = utcnow(), reason[:32]


def session_block(op_session: OperatorSession, operator: Operator | None, now: datetime) -> str | None:
    """Why this session may not be used any more, or None."""
    if op_session.ended_at is not None:
        return op_session.end_reason or "ended"
    if _aware(op_session.expires_at) <= now:
        return "expired"
    if _aware(op_session.last_seen_at) + idle_timeout() <= now:
        return "idle"
    if operator is None or operator.disabled_at is not None:
        return "disabled"
    return None


def active_operator(raw_id: str | None) -> tuple[OperatorSession, Operator] | None:
    """The live session and its operator for this cookie value, or None. A session found expired,
    idle or of a disabled operator is ended here; a live one is marked as seen."""
    op_session = find_operator_session(raw_id)
    if op_session is None:
        return None
    now = utcnow()
    operator = db.session.get(Operator, op_session.operator_id)
    block = session_block(op_session, operator, now)
    if block:
        if op_session.ended_at is None:
            end_operator_session(op_session, block)
            db.session.commit()
        return None
    if _aware(op_session.last_seen_at) + LAST_SEEN_RESOLUTION <= now:
        op_session.last_seen_at = now
        db.session.commit()
    return op_session, operator
