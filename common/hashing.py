"""Digests of bearer secrets (session ids, states, tokens): what the database keeps instead of them."""

from __future__ import annotations

import hashlib


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()
