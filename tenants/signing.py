"""KooGallery request signatures (spec §3.2 kit, §3.3 basic) and the Body-Sign answer header (§3.4).

KooGallery signs either the canonical JSON (top-level keys sorted, nulls dropped, compact, raw
UTF-8; what Huawei's Java sample computes) or, possibly, the body as sent; both are accepted
(§11 U2). Every candidate key (current, then rotation fallbacks) is tried; comparisons are
constant-time on the lower-case hex digests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from tenants.errors import auth_failed, invalid

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,16}")
# Nonces are hex in Huawei's examples; allow any printable ASCII token of sane length.
_NONCE = re.compile(r"[\x21-\x7e]{1,128}")


def canonical_json(body: dict) -> str:
    return json.dumps(
        {k: body[k] for k in sorted(body) if body[k] is not None}, separators=(",", ":"), ensure_ascii=False
    )


def hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignatureHeaders:
    signature: str
    nonce: str


@dataclass(frozen=True)
class Verified:
    key_slot: str  # "primary" or "fallback-N"
    form: str  # "canonical" or "raw"

    def __str__(self) -> str:
        return f"{self.key_slot}/{self.form}"


def check_signature_headers(signature, timestamp, nonce, now_ms: int, window_ms: int) -> SignatureHeaders:
    """Presence, shape and freshness of the three values, before any HMAC is computed."""
    if not timestamp:
        raise invalid("timestamp is missing")
    if not nonce:
        raise invalid("nonce is missing")
    if not signature:
        raise auth_failed("signature is missing")
    if not _DIGITS.fullmatch(timestamp):
        raise auth_failed("timestamp is not a millisecond UNIX time")
    if not _NONCE.fullmatch(nonce):
        raise auth_failed("nonce is malformed")
    if not _HEX64.fullmatch(signature):
        raise auth_failed("signature is not a hex HMAC-SHA256")
    ts = int(timestamp)
    if abs(now_ms - ts) > window_ms:
        direction = "old" if ts < now_ms else "far in the future"
        raise invalid(f"timestamp is too {direction} ({abs(now_ms - ts) // 1000}s from the bridge's clock)")
    return SignatureHeaders(signature.lower(), nonce)


def _payloads(raw: bytes, body: dict):
    yield "canonical", canonical_json(body).encode("utf-8")
    yield "raw", raw


def _keys(keys: list[str]):
    for i, key in enumerate(keys):
        yield ("primary" if i == 0 else f"fallback-{i}"), key


def kit_signature(key: str, nonce: str, timestamp: str, payload: bytes) -> str:
    return hmac_hex(key, (key + nonce + timestamp).encode("utf-8") + payload)


def basic_signature(key: str, nonce: str, timestamp: str, payload: bytes) -> str:
    inner = hmac_hex(key, payload).lower()
    return hmac_hex(key, (key + nonce + timestamp + inner).encode("utf-8"))


def _verify(sign_fn, keys, headers: SignatureHeaders, timestamp_text: str, raw: bytes, body: dict) -> Verified:
    match = None
    for slot, key in _keys(keys):
        for form, payload in _payloads(raw, body):
            calc = sign_fn(key, headers.nonce, timestamp_text, payload)
            # No early exit: every candidate is computed whatever matched, so timing says nothing.
            if hmac.compare_digest(calc, headers.signature) and match is None:
                match = Verified(slot, form)
    if match is None:
        raise auth_failed("signature does not match")
    return match


def verify_kit_signature(keys, headers: SignatureHeaders, timestamp_text: str, raw: bytes, body: dict) -> Verified:
    return _verify(kit_signature, keys, headers, timestamp_text, raw, body)


def verify_basic_signature(keys, headers: SignatureHeaders, timestamp_text: str, raw: bytes, body: dict) -> Verified:
    return _verify(basic_signature, keys, headers, timestamp_text, raw, body)


def body_sign_header(key: str, body: bytes) -> str:
    """The V1 `Body-Sign` value: HMAC-SHA256 of the exact answer bytes, key alone (§3.4)."""
    digest = base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")
    return f'sign_type="HMAC-SHA256", signature="{digest}"'
