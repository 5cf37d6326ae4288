"""Where a login with no destination (a workbench launch) goes: the registered app's
"initiate login" URI (OIDC third-party-initiated login), so the user lands in the app signed in."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import current_app

from extensions import db
from sso.oidc.models import OidcClient


def _with_issuer(uri: str) -> str:
    from sso.oidc.server import issuer

    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'iss': issuer()})}"


def landing_url() -> str | None:
    """After every login with no destination, so two plain columns rather than whole clients."""
    stmt = db.select(OidcClient._client_metadata).order_by(OidcClient.id)
    chosen = current_app.config.get("OIDC_LANDING_APP")
    if chosen:
        stmt = stmt.where(OidcClient.client_id == chosen)
    uris = [uri for metadata in db.session.scalars(stmt)
            if (uri := json.loads(metadata or "{}").get("initiate_login_uri"))]
    if len(uris) != 1:
        return None
    return _with_issuer(uris[0])
