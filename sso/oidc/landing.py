"""Where a login with no destination (a workbench launch) goes: the registered app's
"initiate login" URI (OIDC third-party-initiated login), so the user lands in the app signed in."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import current_app

from extensions import db
from sso.oidc.models import OidcClient


def launchable_apps() -> list[OidcClient]:
    clients = db.session.execute(db.select(OidcClient).order_by(OidcClient.id)).scalars().all()
    return [c for c in clients if c.initiate_login_uri]


def initiate_login_url(client: OidcClient) -> str:
    from sso.oidc.server import issuer

    uri = client.initiate_login_uri
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'iss': issuer()})}"


def landing_url() -> str | None:
    chosen = current_app.config.get("OIDC_LANDING_APP")
    apps = launchable_apps()
    if chosen:
        apps = [c for c in apps if c.client_id == chosen]
    return initiate_login_url(apps[0]) if len(apps) == 1 else None
