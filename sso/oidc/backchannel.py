"""OIDC back-channel logout: when a bridge session ends, every app that received tokens in it
gets a signed logout token (OpenID Connect Back-Channel Logout 1.0), and its tokens are revoked.

Ending a session only writes outbox rows, in the same transaction; delivery happens after the
commit, by a background thread in each bridge process (woken at once, then on a timer for
retries) or by `flask apps deliver-logouts` from cron. Rows are claimed with SKIP LOCKED on
PostgreSQL, so any number of processes deliver without sending one twice at the same time."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import timedelta

import requests
from flask import current_app
from joserfc import jwt

from common.clock import utcnow
from extensions import db
from keys.signing import active_signing_key
from sso.models import UserSession
from sso.oidc.models import BackchannelLogout, OidcAuthorizationCode, OidcClient, OidcToken
from sso.oidc.server import issuer, revoke_tokens, session_sid, subject

log = logging.getLogger(__name__)

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def on_sessions_ended(id_hashes: list[str]) -> int:
    """Revoke the apps' tokens of these sessions and queue their logout tokens."""
    queued = 0
    for id_hash in id_hashes:
        client_ids = set(db.session.execute(db.select(OidcToken.client_id).filter_by(session_hash=id_hash)).scalars())
        client_ids |= set(db.session.execute(
            db.select(OidcAuthorizationCode.client_id).filter_by(session_hash=id_hash)).scalars())
        if not client_ids:
            continue
        revoke_tokens(session_hash=id_hash)
        user_session = db.session.get(UserSession, id_hash)
        clients = db.session.execute(db.select(OidcClient).where(OidcClient.client_id.in_(client_ids))).scalars()
        for client in clients:
            if client.backchannel_logout_uri:
                db.session.add(BackchannelLogout(
                    client_id=client.client_id, uri=client.backchannel_logout_uri, issuer=issuer(),
                    sub=subject(user_session.tenant_id, user_session.user_name), sid=session_sid(id_hash)))
                queued += 1
    return queued


def logout_token(row: BackchannelLogout) -> str:
    key = active_signing_key(current_app.config["OIDC_ID_TOKEN_LIFETIME"])
    now = int(time.time())
    claims = {"iss": row.issuer, "aud": row.client_id, "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(16),
              "sub": row.sub, "sid": row.sid, "events": {LOGOUT_EVENT: {}}}
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}, claims, key)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, attempts - 1)))


def deliver_due(limit: int = 50) -> tuple[int, int]:
    """Send what is due; (delivered, failed). Each row is claimed by pushing its next attempt
    into the future before the HTTP call, so a crash mid-way only delays it."""
    cfg = current_app.config
    stmt = (db.select(BackchannelLogout)
            .where(BackchannelLogout.delivered_at.is_(None), BackchannelLogout.given_up_at.is_(None),
                   BackchannelLogout.next_attempt_at <= utcnow())
            .order_by(BackchannelLogout.id).limit(limit))
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = db.session.execute(stmt).scalars().all()
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = utcnow() + _backoff(row.attempts)
    jobs = [(row.id, row.uri, logout_token(row)) for row in rows]
    db.session.commit()

    delivered = failed = 0
    for row_id, uri, token in jobs:
        error = None
        try:
            resp = requests.post(uri, data={"logout_token": token}, timeout=cfg["OIDC_BACKCHANNEL_TIMEOUT"],
                                 allow_redirects=False, headers={"Cache-Control": "no-store"})
            if resp.status_code != 200 and resp.status_code != 204:
                error = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            error = type(exc).__name__
        row = db.session.get(BackchannelLogout, row_id)
        if error is None:
            row.delivered_at = utcnow()
            delivered += 1
        else:
            row.last_error = error
            if row.attempts >= cfg["OIDC_BACKCHANNEL_MAX_ATTEMPTS"]:
                row.given_up_at = utcnow()
            failed += 1
        log.info("backchannel_logout client=%s attempt=%d outcome=%s", row.client_id, row.attempts, error or "delivered")
        db.session.commit()
    return delivered, failed


class Deliverer:
    """One daemon thread per bridge process: woken after a request queued logouts, and every
    `interval` seconds for retries."""

    def __init__(self, app, interval: float = 15):
        self.app = app
        self.interval = interval
        self.wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="backchannel-logout", daemon=True)
                self._thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                with self.app.app_context():
                    while sum(deliver_due(limit=50)) >= 50:  # a full batch: there may be more
                        pass
                    db.session.remove()
            except Exception:  # never let the thread die: the next round retries
                log.exception("backchannel_delivery_round_failed")
