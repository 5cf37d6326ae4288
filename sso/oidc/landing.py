"""Where a login with no destination (a workbench launch) goes: the registered app's
"initiate login" URI (OIDC third-party-initiated login), so the user lands in the app signed in."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import current_app

from extensions import db
from sso.oidc.models import CLIENT_RECORD_COLUMNS, ClientRecord, OidcClient


def _with_issuer(uri: str) -> str:
    from sso.oidc.server import issuer

    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'iss': issuer()})}"


_CLIENTS = OidcClient.__table__
# Rows, not ORM objects: a workbench login reads this at every sign-in.
_APPS = db.select(*CLIENT_RECORD_COLUMNS).order_by(_CLIENTS.c.id)
_CHOSEN_APP = _APPS.where(_CLIENTS.c.client_id == db.bindparam("client_id"))


def landing_url() -> str | None:
    """The one launchable app's initiate-login URI (the app BRIDGE_OIDC_LANDING_APP names, if set)."""
    chosen = current_app.config.get("OIDC_LANDING_APP")
    rows = db.session.execute(_CHOSEN_APP, {"client_id": chosen}) if chosen else db.session.execute(_APPS)
    uris = [uri for uri in (ClientRecord(row).initiate_login_uri for row in rows) if uri]
    return _with_issuer(uris[0]) if len(uris) == 1 else None
