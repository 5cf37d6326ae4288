"""The language of the bridge's and the console's pages. The words themselves are gettext catalogs
under translations/ (zh_Hans_CN, en), read through Flask-Babel; `make translations` extracts, updates
and compiles them. Message ids are stable keys ('unknown_tenant.title'), not English sentences:
code and templates name what a text is for, and both languages are translations of it."""

from __future__ import annotations

from flask import current_app, request, session, url_for
from flask_babel import Babel, gettext

# Language codes of ?lang= and the session -> catalog locales under translations/ (Babel names
# Simplified Chinese zh_Hans_CN: a zh_CN folder would not be found).
LOCALES = {"zh": "zh_Hans_CN", "en": "en"}


def N_(key: str) -> str:
    """Marks a message id that is looked up under a computed name, so pybabel extracts it."""
    return key


# refused.html and error.html look their texts up as '<code>.title' and '<code>.text', the code
# being a refusal reason (sso/errors.py) or an error page's key (app.py); pybabel needs them literal.
PAGE_TEXTS = (
    N_("unknown_tenant.title"), N_("unknown_tenant.text"),
    N_("tenant_deleted.title"), N_("tenant_deleted.text"),
    N_("instance_suspended.title"), N_("instance_suspended.text"),
    N_("app_missing.title"), N_("app_missing.text"),
    N_("not_authorised.title"), N_("not_authorised.text"),
    N_("user_disabled.title"), N_("user_disabled.text"),
    N_("instance_unknown.title"), N_("instance_unknown.text"),
    N_("seats_exceeded.title"), N_("seats_exceeded.text"),
    N_("tenant_missing.title"), N_("tenant_missing.text"),
    N_("tenant_mismatch.title"), N_("tenant_mismatch.text"),
    N_("state_invalid.title"), N_("state_invalid.text"),
    N_("state_expired.title"), N_("state_expired.text"),
    N_("state_replayed.title"), N_("state_replayed.text"),
    N_("state_mismatch.title"), N_("state_mismatch.text"),
    N_("code_missing.title"), N_("code_missing.text"),
    N_("code_invalid.title"), N_("code_invalid.text"),
    N_("idp_denied.title"), N_("idp_denied.text"),
    N_("idp_unreachable.title"), N_("idp_unreachable.text"),
    N_("idp_timeout.title"), N_("idp_timeout.text"),
    N_("idp_error.title"), N_("idp_error.text"),
    N_("idp_garbage.title"), N_("idp_garbage.text"),
    N_("idp_rejected_client.title"), N_("idp_rejected_client.text"),
    N_("idp_no_state.title"), N_("idp_no_state.text"),
    N_("idp_forbidden_host.title"), N_("idp_forbidden_host.text"),
    N_("idp_busy.title"), N_("idp_busy.text"),
    N_("idp_circuit_open.title"), N_("idp_circuit_open.text"),
    N_("too_many_logins.title"), N_("too_many_logins.text"),
    N_("rate_limited.title"), N_("rate_limited.text"),
    N_("confirm_expired.title"), N_("confirm_expired.text"),
    N_("bad_request.title"), N_("bad_request.text"),
    N_("csrf.title"), N_("csrf.text"),
    N_("not_found.title"), N_("not_found.text"),
    N_("server_error.title"), N_("server_error.text"),
    N_("unavailable.title"), N_("unavailable.text"),
)

# oidc_error.html explains the standard OAuth 2.0 / OpenID Connect error codes as 'oauth.<code>'
# (Authlib's descriptions are English); the code itself stays on the page.
OAUTH_ERRORS = (
    N_("oauth.invalid_request"), N_("oauth.invalid_client"), N_("oauth.invalid_grant"),
    N_("oauth.unauthorized_client"), N_("oauth.unsupported_grant_type"), N_("oauth.unsupported_response_type"),
    N_("oauth.invalid_scope"), N_("oauth.access_denied"), N_("oauth.server_error"),
    N_("oauth.temporarily_unavailable"), N_("oauth.login_required"), N_("oauth.consent_required"),
    N_("oauth.interaction_required"), N_("oauth.invalid_request_uri"), N_("oauth.request_not_supported"),
)


def current_language() -> str:
    languages = current_app.config["LANGUAGES"]
    chosen = request.args.get("lang")
    if chosen in languages:
        session["lang"] = chosen
        return chosen
    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages, default=languages[0]) or languages[0]


def known_text(key: str) -> str:
    """The translation of `key` if the catalog has it, else nothing (for optional explanations)."""
    text = gettext(key)
    return "" if text == key else text


def language_switch_url(language: str) -> str:
    """This page in another language: the same GET with every query argument kept. A page that
    must not be fetched again (a callback's refusal, a confirmation) passes its own link instead."""
    if request.method != "GET" or request.endpoint is None:
        return f"?lang={language}"
    args = {k: v for k, v in request.args.items() if not k.startswith("_")}  # url_for reserves _names
    return url_for(request.endpoint, **{**(request.view_args or {}), **args, "lang": language})


def select_locale() -> str:
    return LOCALES[current_language()]


def init_app(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", LOCALES["zh"])
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(current_language=current_language, known_text=known_text,
                                 language_switch_url=language_switch_url)
