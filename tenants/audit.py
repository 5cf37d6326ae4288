"""The sync-call audit: every call, accepted or refused, with its body minus secrets."""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy.exc import SQLAlchemyError

from extensions import db
from tenants.models import SyncCall

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_SECRET_KEYS = {"clientsecret", "client_secret", "password", "accesskey", "secret", "access_token", "refresh_token"}


def redact(value):
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in _SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def body_for_audit(body: dict | None, raw: bytes, max_chars: int) -> str:
    if body is not None:
        text = json.dumps(redact(body), ensure_ascii=False)
    else:
        # Unparseable: keep only a short, decoded prefix; it cannot be redacted field by field.
        text = raw[:512].decode("utf-8", errors="replace")
    return text if len(text) <= max_chars else text[:max_chars] + "…[truncated]"


def unverified_summary(raw: bytes) -> str:
    """What is kept of a call whose signature was not verified: its size and a digest, so a flood
    of forged calls costs a fixed, small row each (DESIGN invariant 10)."""
    return f"unverified: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}"


def storable(value):
    """Text every database can hold: NUL removed, lone surrogates replaced (they have no UTF-8)."""
    if not isinstance(value, str):
        return value
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def record_sync_call(**fields) -> None:
    """Written in its own transaction, after the call's own commit or rollback. If the database
    is down the call already answered 000005; the line in the log is then the only record. It
    never raises: the caller must still answer in KooGallery JSON."""
    try:
        db.session.add(SyncCall(**{k: storable(v) for k, v in fields.items()}))
        db.session.commit()
    except (SQLAlchemyError, ValueError) as exc:
        db.session.rollback()
        log.error("sync_audit_write_failed interface=%r result=%s error=%s", fields.get("interface"),
                  fields.get("result_code"), type(exc).__name__)
