"""KooGallery's side of the signed calls: signs exactly as spec §3.2/§3.3 say, written
independently of tenants.signing so the two check each other (tests/koogallery.py, bench/)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time


def _hex(key: str, msg: str) -> str:
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sorted_payload(body: dict) -> str:
    return json.dumps({k: body[k] for k in sorted(body) if body[k] is not None}, separators=(",", ":"),
                      ensure_ascii=False)


def kit_headers(key: str, body: dict, *, nonce=None, timestamp=None, raw: str | None = None) -> dict:
    nonce = nonce or secrets.token_hex(32).upper()
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    payload = raw if raw is not None else sorted_payload(body)
    return {"Content-Type": "application/json", "x-sign": _hex(key, key + nonce + timestamp + payload).upper(),
            "x-timestamp": timestamp, "x-nonce": nonce}


def basic_query(key: str, body: dict, *, nonce=None, timestamp=None, raw: str | None = None) -> dict:
    nonce = nonce or secrets.token_hex(32)
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    payload = raw if raw is not None else sorted_payload(body)
    inner = _hex(key, payload).lower()
    return {"signature": _hex(key, key + nonce + timestamp + inner), "timestamp": timestamp, "nonce": nonce}
