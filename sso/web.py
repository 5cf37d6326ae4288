"""Request-bound helpers that the bridge's browser-facing views share (sso, the OIDC provider).
Not a views module: it routes nothing; it reads the request and caches per request."""

from __future__ import annotations

from flask import g, request

from sso import sessions


def current_session():
    """The signed-in session of this request (looked up once per request), or None."""
    if "bridge_session" not in g:
        g.bridge_session = sessions.current_session(request.cookies.get(sessions.SESSION_COOKIE))
    return g.bridge_session
