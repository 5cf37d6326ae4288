"""`flask apps ...`: register and manage the SaaS apps that sign users in through the bridge."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

from extensions import db
from sso.oidc.backchannel import deliver_due
from sso.oidc.models import OidcClient, OidcToken, secret_hash
from sso.oidc.server import SCOPES, revoke_tokens


@click.group("apps", help="SaaS apps (OIDC clients) that sign users in through the bridge.")
def apps_cli():
    pass


def _find(client_id: str) -> OidcClient:
    client = db.session.execute(db.select(OidcClient).filter_by(client_id=client_id)).scalar_one_or_none()
    if client is None:
        raise click.ClickException(f"no app with client id {client_id!r}")
    return client


def _check_uri(value: str, option: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise click.BadParameter(f"{value!r} must be an absolute http(s) URL without a fragment", param_hint=option)
    return value


@apps_cli.command("register")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="Repeat for several.")
@click.option("--public", is_flag=True, help="No client secret (SPA, mobile); PKCE S256 is then required.")
@click.option("--initiate-login-uri", help="Where a workbench launch sends the user to start the app's login.")
@click.option("--backchannel-logout-uri", help="Receives OIDC back-channel logout tokens.")
@click.option("--post-logout-redirect-uri", "post_logout_uris", multiple=True)
@click.option("--client-id", help="Choose the client id (default: random).")
@with_appcontext
def register(name, redirect_uris, public, initiate_login_uri, backchannel_logout_uri, post_logout_uris, client_id):
    """Register an app; prints its client id and secret (the secret is shown only now)."""
    # Hex: never starts with "-" (which a shell command would take for an option), URL-safe as is.
    client_id = client_id or secrets.token_hex(12)
    if len(client_id) > 48:  # the column's size
        raise click.BadParameter(f"{client_id!r} is longer than 48 characters", param_hint="--client-id")
    if db.session.execute(db.select(OidcClient).filter_by(client_id=client_id)).first():
        raise click.ClickException(f"client id {client_id!r} is taken")
    metadata = {
        "client_name": name,
        "redirect_uris": [_check_uri(u, "--redirect-uri") for u in redirect_uris],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": " ".join(SCOPES),
        "token_endpoint_auth_method": "none" if public else "client_secret_basic",
        "post_logout_redirect_uris": [_check_uri(u, "--post-logout-redirect-uri") for u in post_logout_uris],
    }
    if initiate_login_uri:
        metadata["initiate_login_uri"] = _check_uri(initiate_login_uri, "--initiate-login-uri")
    if backchannel_logout_uri:
        metadata["backchannel_logout_uri"] = _check_uri(backchannel_logout_uri, "--backchannel-logout-uri")
    secret = None if public else secrets.token_urlsafe(32)
    client = OidcClient(client_id=client_id, client_secret=secret_hash(secret) if secret else None)
    client.set_client_metadata(metadata)
    db.session.add(client)
    db.session.commit()
    click.echo(f"client_id:     {client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is stored hashed and cannot be shown again; `flask apps rotate-secret` makes a new one)")


@apps_cli.command("list")
@with_appcontext
def list_apps():
    clients = db.session.execute(db.select(OidcClient).order_by(OidcClient.id)).scalars().all()
    if not clients:
        click.echo("no apps registered")
        return
    for c in clients:
        kind = "public" if c.is_public else "confidential"
        click.echo(f"{c.client_id}  {c.client_name}  ({kind})  {' '.join(c.redirect_uris)}")


@apps_cli.command("show")
@click.argument("client_id")
@with_appcontext
def show(client_id):
    c = _find(client_id)
    active = db.session.scalar(db.select(db.func.count()).select_from(OidcToken)
                               .filter_by(client_id=c.client_id, access_token_revoked_at=0))
    click.echo(f"Client id            {c.client_id}")
    click.echo(f"Name                 {c.client_name}")
    click.echo(f"Type                 {'public (PKCE required)' if c.is_public else 'confidential'}")
    click.echo(f"Redirect URIs        {', '.join(c.redirect_uris)}")
    click.echo(f"Initiate login URI   {c.initiate_login_uri or '-'}")
    click.echo(f"Back-channel logout  {c.backchannel_logout_uri or '-'}")
    click.echo(f"Post-logout URIs     {', '.join(c.post_logout_redirect_uris) or '-'}")
    click.echo(f"Unrevoked tokens     {active}")


@apps_cli.command("rotate-secret")
@click.argument("client_id")
@with_appcontext
def rotate_secret(client_id):
    """A new client secret; the old one stops working at once."""
    c = _find(client_id)
    if c.is_public:
        raise click.ClickException("public apps have no secret")
    secret = secrets.token_urlsafe(32)
    c.client_secret = secret_hash(secret)
    db.session.commit()
    click.echo(f"client_secret: {secret}")


@apps_cli.command("remove")
@click.argument("client_id")
@with_appcontext
def remove(client_id):
    """Remove the app and revoke every token it holds."""
    c = _find(client_id)
    revoked = revoke_tokens(client_id=c.client_id)
    db.session.delete(c)
    db.session.commit()
    click.echo(f"removed {client_id}; revoked {revoked} token(s)")


@apps_cli.command("deliver-logouts")
@with_appcontext
def deliver_logouts():
    """Send due back-channel logout tokens (for cron, or when BRIDGE_OIDC_BACKCHANNEL_DELIVERY=cron)."""
    delivered, failed = deliver_due(limit=500)
    click.echo(f"delivered {delivered}, failed {failed} (failures are retried with backoff)")
