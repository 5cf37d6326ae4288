"""The simulator's page text, in Simplified Chinese (the default, as KooGallery's own pages) and
English: its own gettext catalogs (simulator/translations/) and its own Flask-Babel, since it shares
nothing with the bridge. Message ids are stable keys ('portal.heading'); `make translations`
extracts, updates and compiles them. web.choose_language picks the language (g.lang)."""

from __future__ import annotations

from flask import g
from flask_babel import Babel, force_locale, gettext

LANGUAGES = ("zh", "en")
LOCALES = {"zh": "zh_Hans_CN", "en": "en"}  # ?lang= and cookie values -> catalog locales (Babel's names)


def N_(key: str) -> str:
    """Marks a message id that is looked up later or under a computed name, so pybabel extracts it."""
    return key


# Templates show 'role.<role>' for a demo user's role (seed.json: admin or user).
ROLES = (N_("role.admin"), N_("role.user"))


def select_locale() -> str:
    return LOCALES[g.get("lang", "zh")]


def translate(lang: str, key: str, **values) -> str:
    """`key` in `lang` outside a page (the CLI), where no request picked a language."""
    with force_locale(LOCALES[lang]):
        return gettext(key, **values)


def init_app(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", LOCALES["zh"])
    Babel(app, locale_selector=select_locale)
