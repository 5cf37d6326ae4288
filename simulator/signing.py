"""What KooGallery does to a call before sending it: the kit header signature (spec §3.2), the
basic query signature (§3.3), and the RSA encryption of applicationSync.clientSecret (§5.2).

Written from the spec alone, independently of the bridge's verifier, so each checks the other."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def canonical_json(body: dict) -> str:
    """Huawei's sample: top-level keys sorted, nulls dropped, compact, non-ASCII as raw UTF-8."""
    return json.dumps({k: body[k] for k in sorted(body) if body[k] is not None}, separators=(",", ":"),
                      ensure_ascii=False)


def hmac_sha256_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def _nonce_and_timestamp(nonce: str | None, timestamp: str | int | None) -> tuple[str, str]:
    nonce = nonce or secrets.token_hex(32).upper()
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    return nonce, timestamp


def kit_headers(access_key: str, body: dict, *, nonce: str | None = None,
                timestamp: str | int | None = None) -> dict[str, str]:
    """x-sign = HEX(HMAC_SHA256(accessKey, accessKey + nonce + timestamp + canonical JSON)).
    Upper-case hex, as in Huawei's examples."""
    nonce, timestamp = _nonce_and_timestamp(nonce, timestamp)
    signature = hmac_sha256_hex(access_key, access_key + nonce + timestamp + canonical_json(body))
    return {"x-sign": signature.upper(), "x-timestamp": timestamp, "x-nonce": nonce}


def basic_query(access_key: str, body: dict, *, nonce: str | None = None,
                timestamp: str | int | None = None) -> dict[str, str]:
    """signature = HEX(HMAC_SHA256(accessKey, accessKey + nonce + timestamp + inner)), where
    inner = lower HEX(HMAC_SHA256(accessKey, canonical JSON))."""
    nonce, timestamp = _nonce_and_timestamp(nonce, timestamp)
    inner = hmac_sha256_hex(access_key, canonical_json(body)).lower()
    return {"signature": hmac_sha256_hex(access_key, access_key + nonce + timestamp + inner),
            "timestamp": timestamp, "nonce": nonce}


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The bridge's public key as the seller pastes it into the application credential: base64
    SubjectPublicKeyInfo on one line (`flask keys show-public`), or a PEM public key."""
    body = "".join(line.strip() for line in str(text).strip().splitlines() if not line.startswith("-----"))
    try:
        key = serialization.load_der_public_key(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("the bridge public key is not base64 SubjectPublicKeyInfo or a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the bridge public key is not an RSA key")
    return key


def encrypt_client_secret(secret: str, public_key: rsa.RSAPublicKey) -> str:
    """RSA-OAEP with SHA-256 and MGF1-SHA-256, base64: the first parameter set of spec §5.2."""
    ciphertext = public_key.encrypt(
        secret.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return base64.b64encode(ciphertext).decode("ascii")
