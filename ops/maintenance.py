"""`flask maintenance run`: keep the tables bounded. Every step is a plain DELETE of rows past
their use, so it is safe from cron on every host at once (two runs delete the same rows once)."""

from __future__ import annotations

import time
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from admin.models import AuditEntry, OperatorSession
from common.clock import utcnow
from extensions import db
from sso.models import HeldSignIn, LoginEvent, LoginState, UserSession
from sso.oidc.models import CODE_LIFETIME, BackchannelLogout, OidcAuthorizationCode, OidcToken
from sso.ratelimit import RateWindow
from tenants.models import (
    Department,
    Instance,
    InstanceStatus,
    SeenNonce,
    SyncCall,
    TenantInstance,
    TenantUser,
)


def run_maintenance() -> dict[str, int]:
    cfg = current_app.config
    now = utcnow()
    session_cutoff = now - timedelta(days=cfg["SESSION_RETENTION_DAYS"])
    audit_cutoff = now - timedelta(days=cfg["AUDIT_RETENTION_DAYS"])
    epoch = int(time.time())
    released = _tenants_of_released_instances(now - timedelta(days=cfg["RELEASED_DATA_RETENTION_DAYS"]))
    steps = {
        "nonces": db.delete(SeenNonce).where(SeenNonce.expires_at < now),
        "login_states": db.delete(LoginState).where(LoginState.expires_at < now),
        "held_sign_ins": db.delete(HeldSignIn).where(HeldSignIn.expires_at < now),
        # A released order's people: kept for the retention period (the marketplace asks 15 days
        # for a frozen one), then gone, with their sessions and departments.
        "released_users": db.delete(TenantUser).where(TenantUser.tenant_id.in_(released)),
        "released_departments": db.delete(Department).where(Department.tenant_id.in_(released)),
        "released_sessions": db.delete(UserSession).where(UserSession.tenant_id.in_(released)),
        # Rate-limit counters of windows that have ended (sso/ratelimit.py).
        "rate_windows": db.delete(RateWindow).where(
            RateWindow.window_start < epoch - epoch % max(1, int(cfg["RATE_LIMIT_WINDOW_SECONDS"]))),
        "sessions": db.delete(UserSession).where(
            db.or_(UserSession.ended_at < session_cutoff, UserSession.expires_at < session_cutoff)),
        "oidc_codes": db.delete(OidcAuthorizationCode).where(OidcAuthorizationCode.created_at_ts < epoch - CODE_LIFETIME
                                                             - 86400),
        # A token is kept while its refresh token could still be presented (to detect reuse).
        "oidc_tokens": db.delete(OidcToken).where(
            OidcToken.issued_at + OidcToken.expires_in < epoch - 86400,
            db.or_(OidcToken.refresh_expires_at.is_(None), OidcToken.refresh_expires_at < epoch)),
        "backchannel_logouts": db.delete(BackchannelLogout).where(db.or_(
            BackchannelLogout.delivered_at < session_cutoff, BackchannelLogout.given_up_at < session_cutoff)),
        "sync_calls": db.delete(SyncCall).where(SyncCall.created_at < audit_cutoff),
        "login_events": db.delete(LoginEvent).where(LoginEvent.created_at < audit_cutoff),
        "operator_sessions": db.delete(OperatorSession).where(
            db.or_(OperatorSession.ended_at < session_cutoff, OperatorSession.expires_at < session_cutoff)),
        "operator_audit": db.delete(AuditEntry).where(AuditEntry.created_at < audit_cutoff),
    }
    removed = {}
    for name, statement in steps.items():
        removed[name] = db.session.execute(statement).rowcount or 0
        db.session.commit()  # one short transaction per table: no long locks
    return removed


def _tenants_of_released_instances(cutoff):
    """Tenants every order of which was released before `cutoff`."""
    expired = db.select(Instance.instance_id).where(Instance.status == InstanceStatus.RELEASED,
                                                    Instance.released_at < cutoff)
    live = db.select(TenantInstance.tenant_id).where(TenantInstance.instance_id.not_in(expired))
    return db.select(TenantInstance.tenant_id).where(TenantInstance.instance_id.in_(expired),
                                                     TenantInstance.tenant_id.not_in(live))


@click.group("maintenance", help="Housekeeping that keeps the tables bounded.")
def maintenance_cli():
    pass


@maintenance_cli.command("run")
@with_appcontext
def run():
    """Delete expired nonces, login states, codes and tokens, old sessions, delivered logouts, audit
    rows past BRIDGE_AUDIT_RETENTION_DAYS, and the users of orders released more than
    BRIDGE_RELEASED_DATA_RETENTION_DAYS ago. Safe to run from cron on every host."""
    for name, count in run_maintenance().items():
        click.echo(f"{name:<22}{count} removed")
