"""Where a browser may be sent after a login or a console action (DESIGN invariant 7)."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """Only same-origin paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(c in target for c in "\\\r\n\t") or urlsplit(target).netloc:
        return None
    return target
