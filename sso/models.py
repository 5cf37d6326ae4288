"""Browser-side state: pending logins, sessions, and the login audit. Only hashes of the random
values that travel in URLs and cookies are stored, so a database dump opens no session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from extensions import db
from keys.datakey import register_encrypted_column


class LoginState(db.Model):
    """A login the bridge started: the `state` it sent, bound to one browser, used once."""

    __tablename__ = "sso_login_state"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(512))
    code_verifier_enc: Mapped[str | None] = mapped_column(Text)
    next_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A digest of the client's address: open states are capped per client.
    client_hash: Mapped[str | None] = mapped_column(String(32))
    # Started again by the bridge for a workbench code that came without state.
    reinitiated: Mapped[bool] = mapped_column(Boolean, default=False)

    # The caps count the open states on every login start: along this index only the open ones are
    # read (bounded by the caps), not every state used within the TTL (a busy hour's logins).
    __table_args__ = (Index("ix_sso_login_state_open", "expires_at", postgresql_where=db.text("used_at IS NULL"),
                            sqlite_where=db.text("used_at IS NULL")),)


class UserSession(db.Model):
    __tablename__ = "sso_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32), default="user")
    org_code: Mapped[str | None] = mapped_column(String(64))
    org_name: Mapped[str | None] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(128))
    mobile: Mapped[str | None] = mapped_column(String(32))
    # Admitted just in time (no authSync yet): re-checks skip the authorised-user test.
    jit: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set while one request refreshes the centre's tokens, so parallel requests do not (single-flight).
    refresh_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_sso_session_user", "tenant_id", "user_name"),)


register_encrypted_column(LoginState.code_verifier_enc)
register_encrypted_column(UserSession.access_token_enc)
register_encrypted_column(UserSession.refresh_token_enc)


class HeldSignIn(db.Model):
    """A completed code exchange waiting for the person's click: a workbench code the bridge could
    not bind to this browser, or a sign-in that would replace another account's session. One per
    browser (a newer one replaces it); written only after the centre vouched for the code."""

    __tablename__ = "sso_held_sign_in"

    browser_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "workbench" | "switch"
    identity_json: Mapped[str] = mapped_column(Text)
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    expires_in: Mapped[int] = mapped_column(Integer)
    next_url: Mapped[str | None] = mapped_column(String(2048))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


register_encrypted_column(HeldSignIn.identity_json)
register_encrypted_column(HeldSignIn.access_token_enc)
register_encrypted_column(HeldSignIn.refresh_token_enc)


LOGIN_OUTCOMES = ("success", "refused", "logout", "ended")  # LoginEvent.outcome


class LoginEvent(db.Model):
    """Every login outcome: who, when, admitted or why not."""

    __tablename__ = "sso_login_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    user_name: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # success | refused | logout | ended
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(255))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
