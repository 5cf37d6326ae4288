"""Random bearer secrets in the one alphabet every party accepts unescaped: letters and digits."""

from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits


def random_text(length: int) -> str:
    """`length` characters of [A-Za-z0-9], each uniform (5.95 bits). One read of the system's random
    source instead of one per character (`secrets.choice`): a token costs microseconds, not tenths
    of a millisecond."""
    chars: list[str] = []
    while len(chars) < length:
        # 248 = 4 × 62: bytes below it map evenly onto the alphabet; the rest are drawn again.
        chars += [ALPHABET[b % 62] for b in secrets.token_bytes(length + 8) if b < 248]
    return "".join(chars[:length])
