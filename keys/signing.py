"""RS256 keys for ID tokens, kept in the database (every bridge process and host signs with the
same key and publishes the same JWKS). Rotation: a new key signs from now on; the previous ones
stay published for as long as a token they signed can still be valid."""

from __future__ import annotations

import threading
import time
from datetime import UTC, timedelta

from flask import current_app
from joserfc.jwk import RSAKey

from common.clock import utcnow
from extensions import db
from keys import keyring
from keys.models import SigningKey
from keys.rsa import MIN_KEY_BITS

_CACHE_SECONDS = 30
_lock = threading.Lock()


def _cache() -> dict:
    return current_app.extensions.setdefault("signing_key_cache", {})


def _load(row: SigningKey) -> RSAKey:
    """A key's PEM never changes under its kid, and importing a 3072-bit private key (the library
    checks it) costs a tenth of a second of CPU: each kid is imported once per process."""
    loaded = _cache().setdefault("loaded", {})
    key = loaded.get(row.kid)
    if key is None:
        key = loaded[row.kid] = RSAKey.import_key(keyring().data.decrypt(row.private_pem_enc),
                                                  parameters={"kid": row.kid, "use": "sig", "alg": "RS256"})
    return key


def create_signing_key(bits: int = MIN_KEY_BITS) -> SigningKey:
    key = RSAKey.generate_key(bits, private=True)
    row = SigningKey(kid=key.thumbprint(), private_pem_enc=keyring().data.encrypt(key.as_pem(private=True).decode()),
                     created_at=utcnow())
    db.session.add(row)
    return row


def rotate_signing_key() -> SigningKey:
    """Retire the current key(s) and make a new one. The caller commits."""
    now = utcnow()
    db.session.execute(db.update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now))
    row = create_signing_key()
    invalidate_cache()
    return row


def invalidate_cache() -> None:
    with _lock:
        _cache().clear()


def _keys(max_token_lifetime: int):
    """(active key, published keys), cached briefly per process."""
    with _lock:
        cached = _cache().get("keys")
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
    rows = db.session.execute(db.select(SigningKey).order_by(SigningKey.created_at.desc())).scalars().all()
    live = [r for r in rows if r.retired_at is None]
    if not live:
        # First use: make a key. Two processes racing make two keys; both are published and the
        # newest signs, which is harmless.
        live = [create_signing_key()]
        db.session.commit()
        rows = [*live, *rows]
    cutoff = utcnow() - timedelta(seconds=max_token_lifetime)
    published = [r for r in rows if r.retired_at is None
                 or (r.retired_at if r.retired_at.tzinfo else r.retired_at.replace(tzinfo=UTC)) > cutoff]
    with _lock:
        active, public = _load(live[0]), [_load(r) for r in published]
        _cache()["keys"] = (time.monotonic() + _CACHE_SECONDS, active, public)
    return active, public


def active_signing_key(max_token_lifetime: int) -> RSAKey:
    return _keys(max_token_lifetime)[0]


def public_jwks(max_token_lifetime: int) -> dict:
    return {"keys": [k.as_dict(private=False) for k in _keys(max_token_lifetime)[1]]}
