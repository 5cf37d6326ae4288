"""The operator console's own state: operator accounts, their server-side sessions, failed
sign-in attempts (the lockout counter, shared by every process), and the audit of what operators
did. Like the user sessions, only the SHA-256 of a session id is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from extensions import db
from keys.datakey import register_encrypted_column


class Operator(db.Model):
    """A member of the vendor's staff who may use /admin. Managed with `flask admin ...`."""

    __tablename__ = "admin_operator"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # The RFC 6238 secret, encrypted with the bridge's data key; None: password only.
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    # The newest TOTP time step accepted, so a code cannot be used twice.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def has_totp(self) -> bool:
        return self.totp_secret_enc is not None


register_encrypted_column(Operator.totp_secret_enc)


class OperatorSession(db.Model):
    __tablename__ = "admin_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("admin_operator.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))


class SignInFailure(db.Model):
    """One failed sign-in (or one in progress: a row is written before the password is checked and
    removed if it was right, so parallel guesses in several processes are all counted)."""

    __tablename__ = "admin_sign_in_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), index=True)


class AuditEntry(db.Model):
    """What operators did, and every sign-in to the console, successful or not."""

    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # The operator's username as typed or known; "cli" for commands run on a bridge host.
    operator: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(String(255))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
