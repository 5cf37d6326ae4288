"""The session lifecycle, one service: open (at sign-in), find and check (every signed-in
request), refresh the centre's tokens (single-flight across processes), end. The browser holds
only a random id, signed, in an HttpOnly cookie; the database holds its SHA-256, who it is, and
the centre's tokens encrypted. Ending a row ends the session everywhere at once. Views only read
the cookie and set it; the transaction boundaries are here."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from blinker import Namespace
from flask import current_app, has_app_context
from itsdangerous import BadSignature, Signer

from common.clock import aware, utcnow
from common.hashing import hash_token
from config import cookie_name
from extensions import db
from keys import keyring
from sso import admission, services
from sso.auth_centre import AuthCentreError, Tokens
from sso.errors import LoginError
from sso.identity import Identity
from sso.models import HeldSignIn, LoginState, UserSession
from tenants import queries

log = logging.getLogger(__name__)

# Sent with the id hashes of sessions that just ended, inside the transaction that ended them
# (the OIDC provider revokes the apps' tokens and queues back-channel logouts).
sessions_ended = Namespace().signal("sessions-ended")

SESSION_COOKIE_BASE = "bridge_sid"


def session_cookie_name() -> str:
    """`__Host-bridge_sid` with Secure cookies, `bridge_sid` in local http development."""
    if not has_app_context():
        return SESSION_COOKIE_BASE
    return cookie_name(SESSION_COOKIE_BASE, current_app.config)


def __getattr__(name: str):
    # `sessions.SESSION_COOKIE` follows the app's COOKIE_SECURE (PEP 562), so every place that
    # reads or sets the cookie gets the one name without changing its call.
    if name == "SESSION_COOKIE":
        return session_cookie_name()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
_SALT = "bridge-session-id"
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


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


def open_session(identity: Identity, access_token: str, refresh_token: str | None, expires_in: int) -> str:
    """A new session (the caller has ended any previous one: ids rotate at every login)."""
    cfg = current_app.config
    box = keyring().data
    raw_id = secrets.token_urlsafe(32)
    now = utcnow()
    # Core, not the ORM unit of work: nothing reads the new row back in this request, and a login's
    # flush was a tenth of its Python work. It joins the caller's transaction all the same.
    db.session.execute(db.insert(UserSession.__table__), dict(
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


def end_sessions(tenant_id: str, user_names: list[str] | None, reason: str, *, only_refused: bool = False) -> int:
    """End the open sessions of these users (None: the whole tenant). With `only_refused`, only
    those admission now refuses: something it depends on changed (a sync call, in its transaction)."""
    where = [UserSession.tenant_id == tenant_id, UserSession.ended_at.is_(None)]
    if user_names is not None:
        if not user_names:
            return 0
        where.append(UserSession.user_name.in_(user_names))
    open_sessions = db.session.execute(db.select(UserSession).where(*where).with_for_update()).scalars().all()
    hashes = [s.id_hash for s in open_sessions if not only_refused or admission.session_refusal(s) is not None]
    if not hashes:
        return 0
    db.session.execute(db.update(UserSession).where(UserSession.id_hash.in_(hashes))
                       .values(ended_at=utcnow(), end_reason=reason[:32]))
    log.info("sessions_ended tenant=%s users=%s reason=%s count=%d", tenant_id,
             "all" if user_names is None else len(user_names), reason, len(hashes))
    sessions_ended.send("sso", id_hashes=hashes, reason=reason)
    return len(hashes)


def end_pending_logins(tenant_id: str) -> int:
    """The tenant's centre moved: states issued for the old one are spent, so no code issued there
    is ever exchanged (with the client secret) at the new host."""
    result = db.session.execute(db.update(LoginState).where(LoginState.tenant_id == tenant_id,
                                                            LoginState.used_at.is_(None)).values(used_at=utcnow()))
    return result.rowcount or 0


def sign_in(identity: Identity, tokens, *, previous_cookie: str | None, request_id: str,
            remote_addr: str | None) -> str:
    """A completed login: the previous session of this browser ends (ids rotate at every login),
    the new one and its audit row commit together. Returns the raw id for the cookie."""
    previous = find_session(unsign_session_id(previous_cookie))
    if previous is not None:
        end_session(previous, "replaced")
    raw_id = open_session(identity, tokens.access_token, tokens.refresh_token, tokens.expires_in)
    services.record_login_event("success", request_id=request_id, tenant_id=identity.tenant_id,
                                user_name=identity.user_name, detail="jit" if identity.jit else None,
                                remote_addr=remote_addr, commit=False)
    db.session.commit()
    return raw_id


# --- sign-ins that wait for the person's click ----------------------------------------------------


def hold_sign_in(identity: Identity, tokens, *, browser_token: str, kind: str, next_url: str | None) -> None:
    """Keep a completed exchange until the person confirms it (one per browser, a newer replaces it)."""
    box = keyring().data
    browser_hash = hash_token(browser_token)
    db.session.execute(db.delete(HeldSignIn).where(HeldSignIn.browser_hash == browser_hash))
    db.session.add(HeldSignIn(
        browser_hash=browser_hash, kind=kind, identity_json=box.encrypt(json.dumps(asdict(identity))),
        access_token_enc=box.encrypt(tokens.access_token),
        refresh_token_enc=box.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
        expires_in=tokens.expires_in, next_url=next_url,
        expires_at=utcnow() + timedelta(seconds=current_app.config["HELD_SIGN_IN_SECONDS"])))
    db.session.commit()


@dataclass(frozen=True)
class Held:
    identity: Identity
    tokens: Tokens
    kind: str
    next_url: str | None


def held_sign_in(browser_token: str | None, *, take: bool = False) -> Held | None:
    """The browser's unexpired held sign-in (removed when taken), or None."""
    if not browser_token:
        return None
    row = db.session.get(HeldSignIn, hash_token(browser_token), with_for_update=take)
    if row is None or aware(row.expires_at) <= utcnow():
        return None
    box = keyring().data
    held = Held(Identity(**json.loads(box.decrypt(row.identity_json))),
                Tokens(box.decrypt(row.access_token_enc),
                       box.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None, row.expires_in),
                row.kind, row.next_url)
    if take:
        db.session.delete(row)
    return held


def drop_held_sign_in(browser_token: str | None) -> None:
    if browser_token:
        db.session.execute(db.delete(HeldSignIn).where(HeldSignIn.browser_hash == hash_token(browser_token)))
        db.session.commit()


def sign_out(user_session: UserSession, *, reason: str, request_id: str, remote_addr: str | None,
             detail: str | None = None) -> None:
    end_session(user_session, reason)
    db.session.commit()
    services.record_login_event("logout", request_id=request_id, tenant_id=user_session.tenant_id,
                                user_name=user_session.user_name, detail=detail, remote_addr=remote_addr)


# --- every signed-in request ----------------------------------------------------------------------


def current_session(cookie: str | None) -> UserSession | None:
    """The live session behind this cookie, or None. A refused session (revoked, expired, idle) is
    ended here; the centre's access token is refreshed while the user is active."""
    user_session = find_session(unsign_session_id(cookie))
    if user_session is None:
        return None
    reason = admission.session_refusal(user_session)
    if reason:
        if user_session.ended_at is None:
            end_session(user_session, reason)
            db.session.commit()
        return None
    if needs_refresh(user_session):
        _refresh(user_session)
        if user_session.ended_at is not None:
            return None
    touch(user_session)
    db.session.commit()
    return user_session


REFRESH_CLAIM = timedelta(seconds=30)


def _refresh(user_session: UserSession) -> None:
    """One refresh per session at a time, across processes: a refresh token is single-use at most
    centres, so parallel requests leave it to the one that claimed it and go on with the access
    token they have (still valid for the refresh margin). No transaction is open during the call."""
    now = utcnow()
    claimed = db.session.execute(
        db.update(UserSession).where(UserSession.id_hash == user_session.id_hash, UserSession.ended_at.is_(None),
                                     db.or_(UserSession.refresh_claimed_until.is_(None),
                                            UserSession.refresh_claimed_until < now))
        .values(refresh_claimed_until=now + REFRESH_CLAIM)
        # No in-Python evaluation against the loaded row: SQLite gives naive times, `now` is aware.
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        db.session.rollback()
        return
    refresh_token = keyring().data.decrypt(user_session.refresh_token_enc)
    tenant_id, id_hash = user_session.tenant_id, user_session.id_hash
    try:
        client = services.client_for_tenant_id(tenant_id)
    except LoginError:
        end_session(user_session, "app_missing")
        db.session.commit()
        return
    db.session.commit()  # the claim is visible to every process before the outbound call
    try:
        tokens = services.auth_centre().refresh(client, refresh_token)
    except AuthCentreError as exc:
        user_session = db.session.get(UserSession, id_hash, with_for_update=True)
        if exc.reason in ("invalid_grant", "invalid_client"):
            end_session(user_session, "refresh_rejected")
        else:  # an IdP outage does not sign people out; the next request tries again
            log.warning("token_refresh_failed tenant=%s reason=%s", tenant_id, exc.reason)
        user_session.refresh_claimed_until = None
        db.session.commit()
        return
    user_session = db.session.get(UserSession, id_hash, with_for_update=True)
    store_refreshed_tokens(user_session, tokens.access_token, tokens.refresh_token, tokens.expires_in)
    user_session.refresh_claimed_until = None


def touch(user_session: UserSession, now: datetime | None = None) -> None:
    now = now or utcnow()
    if aware(user_session.last_seen_at) + LAST_SEEN_RESOLUTION <= now:
        user_session.last_seen_at = now


def needs_refresh(user_session: UserSession, now: datetime | None = None) -> bool:
    margin = timedelta(seconds=current_app.config["ACCESS_TOKEN_REFRESH_MARGIN_SECONDS"])
    return (user_session.refresh_token_enc is not None and user_session.access_expires_at is not None
            and aware(user_session.access_expires_at) - margin <= (now or utcnow()))


def store_refreshed_tokens(user_session: UserSession, access_token: str, refresh_token: str | None,
                           expires_in: int) -> None:
    box = keyring().data
    user_session.access_token_enc = box.encrypt(access_token)
    if refresh_token:
        user_session.refresh_token_enc = box.encrypt(refresh_token)
    user_session.access_expires_at = utcnow() + timedelta(seconds=expires_in)


def identity_of(user_session: UserSession) -> dict:
    tenant = queries.tenant(user_session.tenant_id)
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
        "signed_in_at": aware(user_session.created_at).isoformat(),
        "expires_at": aware(user_session.expires_at).isoformat(),
    }
