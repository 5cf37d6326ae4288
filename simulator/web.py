"""What every browser page shares: the language, the CSRF token, the browser's sign-in id, and
error pages. The simulator runs on the same host as the bridge (127.0.0.1, another port), and
browsers do not separate cookies by port, so every cookie name here starts with `kgsim_`."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import abort, current_app, g, render_template, request, session
from flask_babel import gettext

from simulator.i18n import LANGUAGES

LANG_COOKIE = "kgsim_lang"


def choose_language() -> str:
    """?lang= (then remembered in a cookie), else the cookie, else Accept-Language, else Chinese."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        g.remember_lang = asked
        return asked
    if request.cookies.get(LANG_COOKIE) in LANGUAGES:
        return request.cookies[LANG_COOKIE]
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh")
    return "en" if best.startswith("en") else "zh"


def remember_language(response):
    if g.get("remember_lang"):
        response.set_cookie(LANG_COOKIE, g.remember_lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def url_in_language(lang: str) -> str:
    """The current page in another language (query kept, ?lang= replaced)."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"] + [("lang", lang)]
    return f"{request.path}?{urlencode(args)}"


def _(key: str, **values) -> str:
    """`key` in the page's language (g.lang, through simulator.i18n.select_locale)."""
    return gettext(key, **values)


def browser_id(create: bool = False) -> str | None:
    """An opaque id for this browser, kept in the signed session cookie; sign-ins are stored
    against it in the state DB, so the CLI and other processes see them."""
    if "sid" not in session and create:
        session["sid"] = secrets.token_urlsafe(24)
    return session.get("sid")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description=_("error.csrf"))


def render_page(template: str, status: int = 200, /, **context):
    return render_template(template, **context), status, {"Cache-Control": "no-store"}


def error_page(title: str, detail: str = "", status: int = 400):
    return render_page("error.html", status, title=title, detail=detail, status=status)


def with_query(url: str, **params) -> str:
    """`url` with these query parameters added (None values left out), keeping its own query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def user_purpose(user) -> str:
    """What a demo account demonstrates, from its state now (so it follows `sim revoke` etc.)."""
    return _(user.demonstrates)


def is_loopback() -> bool:
    return (request.remote_addr or "") in ("127.0.0.1", "::1") or (request.remote_addr or "").startswith("127.")


def sign_in_ttl() -> int:
    return int(current_app.config["SIGN_IN_TTL_SECONDS"])
