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


def rate_limit_login_routes():
    """Before sso/ routes: anonymous requests that start a login or complete one are counted per
    client (sso.ratelimit); over the limit, a clear 429 page with Retry-After, and nothing stored."""
    from flask import make_response, render_template

    from sso import ratelimit

    if request.endpoint == "sso.callback":
        bucket = "callback"
    elif request.endpoint == "sso.login_form" or (
            request.endpoint == "sso.login" and (request.args.get("tenant") or request.args.get("instance"))):
        bucket = "login"
    else:
        return None
    retry_after = ratelimit.hit(bucket, request.remote_addr)
    if retry_after is None:
        return None
    response = make_response(render_template("error.html", status=429, key="rate_limited"), 429)
    response.headers["Retry-After"] = str(retry_after)
    response.headers["Cache-Control"] = "no-store"
    return response


def no_store_if_personal(response):
    """After every request: an answer that looked at the session cookie is personal. It must not
    be kept by a browser or a shared cache, nor served to anyone with another cookie."""
    if "bridge_session" in g:
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
    return response
