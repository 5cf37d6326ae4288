"""Server-side sessions. The browser holds only a random id, signed, in an HttpOnly cookie; the
database holds its SHA-256, who it is, and the IdP tokens encrypted. Ending a row ends the
session everywhere at once, whichever process served it."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from blinker import Namespace
from flask import current_app
from itsdangerous import BadSignature, Signer

from extensions import db
from keys import keyring
from sso.models import UserSession
from tenants.models import Tenant, TenantUser, utcnow
from tenants.services import tenant_login_block

log = logging.getLogger(__name__)

# Sent with the id hashes of sessions that just ended, inside the transaction that ended them
# (the OIDC provider revokes the apps' tokens and queues back-channel logouts).
sessions_ended = Namespace().signal("sessions-ended")

SESSION_COOKIE = "bridge_sid"
_SALT = "bridge-session-id"
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Identity:
    tenant_id: str
    tenant_code: str
    tenant_name: str
    user_name: str
    name: str | None
    role: str
    org_code: str | None
    org_name: str | None
    email: str | None
    mobile: str | None
    jit: bool = False


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _signer(key: str) -> Signer:
    return Signer(key, salt=_SALT)


def sign_session_id(raw_id: str) -> str:
    return _signer(current_app.config["SECRET_KEY"]).sign(raw_id).decode("ascii")


def unsign_session_id(cookie: str | None) -> str | None:
    if not cookie or len(cookie) > 256:
        return None
    for key in [current_app.config["SECRET_KEY"], *current_app.config["SECRET_KEY_FALLBACKS"]]:
        try:
            return _signer(key).unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            continue
    return None


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def open_session(identity: Identity, access_token: str, refresh_token: str | None, expires_in: int) -> str:
    """A new session (the caller has ended any previous one: ids rotate at every login)."""
    cfg = current_app.config
    box = keyring().data
    raw_id = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(
        id_hash=hash_token(raw_id), tenant_id=identity.tenant_id, user_name=identity.user_name, name=identity.name,
        role=identity.role, org_code=identity.org_code, org_name=identity.org_name, email=identity.email,
        mobile=identity.mobile, jit=identity.jit, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(hours=cfg["SESSION_ABSOLUTE_HOURS"]),
        access_token_enc=box.encrypt(access_token),
        refresh_token_enc=box.encrypt(refresh_token) if refresh_token else None,
        access_expires_at=now + timedelta(seconds=expires_in),
    ))
    return raw_id


def find_session(raw_id: str | None) -> UserSession | None:
    if not raw_id:
        return None
    return db.session.get(UserSession, hash_token(raw_id))


def end_session(user_session: UserSession, reason: str) -> None:
    if user_session.ended_at is None:
        user_session.ended_at, user_session.end_reason = utcnow(), reason[:32]
        sessions_ended.send("sso", id_hashes=[user_session.id_hash], reason=reason)


def end_sessions(tenant_id: str, user_names: list[str] | None, reason: str) -> int:
    where = [UserSession.tenant_id == tenant_id, UserSession.ended_at.is_(None)]
    if user_names is not None:
        where.append(UserSession.user_name.in_(user_names))
    hashes = db.session.execute(db.select(UserSession.id_hash).where(*where).with_for_update()).scalars().all()
    if not hashes:
        return 0
    db.session.execute(db.update(UserSession).where(UserSession.id_hash.in_(hashes))
                       .values(ended_at=utcnow(), end_reason=reason[:32]))
    log.info("sessions_ended tenant=%s users=%s reason=%s count=%d", tenant_id,
             "all" if user_names is None else len(user_names), reason, len(hashes))
    sessions_ended.send("sso", id_hashes=list(hashes), reason=reason)
    return len(hashes)


def session_block(user_session: UserSession, now: datetime | None = None) -> str | None:
    """Why this session may not be used any more, or None. Checked on every request, so a
    revocation takes effect even if its signal was missed."""
    now = now or utcnow()
    if user_session.ended_at is not None:
        return user_session.end_reason or "ended"
    if _aware(user_session.expires_at) <= now:
        return "expired"
    idle = timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    if _aware(user_session.last_seen_at) + idle <= now:
        return "idle"
    block = tenant_login_block(db.session.get(Tenant, user_session.tenant_id))
    if block:
        return block
    if not user_session.jit:
        user = db.session.get(TenantUser, (user_session.tenant_id, user_session.user_name))
        if user is None or not user.may_sign_in:
            return "user_revoked"
    return None


def touch(user_session: UserSession, now: datetime | None = None) -> None:
    now = now or utcnow()
    if _aware(user_session.last_seen_at) + LAST_SEEN_RESOLUTION <= now:
        user_session.last_seen_at = now


def needs_refresh(user_session: UserSession, now: datetime | None = None) -> bool:
    margin = timedelta(seconds=current_app.config["ACCESS_TOKEN_REFRESH_MARGIN_SECONDS"])
    return (user_session.refresh_token_enc is not None and user_session.access_expires_at is not None
            and _aware(user_session.access_expires_at) - margin <= (now or utcnow()))


def store_refreshed_tokens(user_session: UserSession, access_token: str, refresh_token: str | None,
                           expires_in: int) -> None:
    box = keyring().data
    user_session.access_token_enc = box.encrypt(access_token)
    if refresh_token:
        user_session.refresh_token_enc = box.encrypt(refresh_token)
    user_session.access_expires_at = utcnow() + timedelta(seconds=expires_in)


def identity_of(user_session: UserSession) -> dict:
    tenant = db.session.get(Tenant, user_session.tenant_id)
    return {
        "tenant": user_session.tenant_id,
        "tenant_code": tenant.tenant_code if tenant else None,
        "tenant_name": tenant.name if tenant else None,
        "user_name": user_session.user_name,
        "name": user_session.name,
        "role": user_session.role,
        "org_code": user_session.org_code,
        "org_name": user_session.org_name,
        "email": user_session.email,
        "mobile": user_session.mobile,
        "signed_in_at": _aware(user_session.created_at).isoformat(),
        "expires_at": _aware(user_session.expires_at).isoformat(),
    }
