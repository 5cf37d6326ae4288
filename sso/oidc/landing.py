"""Where a login with no destination (a workbench launch) goes: the registered app's
"initiate login" URI (OIDC third-party-initiated login), so the user lands in the app signed in."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import current_app

from extensions import db
from sso.oidc.models import OidcClient


def _with_issuer(uri: str) -> str:
    from sso.oidc.server import issuer

    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'iss': issuer()})}"


def landing_url() -> str | None:
    """The one launchable app's initiate-login URI (the app BRIDGE_OIDC_LANDING_APP names, if set)."""
    stmt = db.select(OidcClient).order_by(OidcClient.id)
    chosen = current_app.config.get("OIDC_LANDING_APP")
    if chosen:
        stmt = stmt.filter_by(client_id=chosen)
    uris = [c.initiate_login_uri for c in db.session.scalars(stmt) if c.initiate_login_uri]
    return _with_issuer(uris[0]) if len(uris) == 1 else None
