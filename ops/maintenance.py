"""`flask maintenance run`: keep the tables bounded. Every step deletes rows past their use in
batches of at most MAINTENANCE_BATCH_SIZE rows, each batch its own short transaction, so a table
of millions of rows is never locked for long and syncs keep answering meanwhile. Safe from cron on
every host at once (two runs delete the same rows once)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
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

log = logging.getLogger(__name__)
PROGRESS_LOG_SECONDS = 5  # a long step logs how far it got this often


def run_maintenance(progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Run every step; `progress(step, removed so far)` is called after each batch."""
    cfg = current_app.config
    now = utcnow()
    session_cutoff = now - timedelta(days=cfg["SESSION_RETENTION_DAYS"])
    audit_cutoff = now - timedelta(days=cfg["AUDIT_RETENTION_DAYS"])
    epoch = int(time.time())
    released = _tenants_of_released_instances(now - timedelta(days=cfg["RELEASED_DATA_RETENTION_DAYS"]))
    steps = {
        "nonces": (SeenNonce, SeenNonce.expires_at < now),
        "login_states": (LoginState, LoginState.expires_at < now),
        "held_sign_ins": (HeldSignIn, HeldSignIn.expires_at < now),
        # A released order's people: kept for the retention period (the marketplace asks 15 days
        # for a frozen one), then gone, with their sessions and departments.
        "released_users": (TenantUser, TenantUser.tenant_id.in_(released)),
        "released_departments": (Department, Department.tenant_id.in_(released)),
        "released_sessions": (UserSession, UserSession.tenant_id.in_(released)),
        # Rate-limit counters of windows that have ended (sso/ratelimit.py).
        "rate_windows": (RateWindow,
                         RateWindow.window_start < epoch - epoch % max(1, int(cfg["RATE_LIMIT_WINDOW_SECONDS"]))),
        "sessions": (UserSession,
                     db.or_(UserSession.ended_at < session_cutoff, UserSession.expires_at < session_cutoff)),
        "oidc_codes": (OidcAuthorizationCode, OidcAuthorizationCode.created_at_ts < epoch - CODE_LIFETIME - 86400),
        # A token is kept while its refresh token could still be presented (to detect reuse).
        "oidc_tokens": (OidcToken,
                        OidcToken.issued_at + OidcToken.expires_in < epoch - 86400,
                        db.or_(OidcToken.refresh_expires_at.is_(None), OidcToken.refresh_expires_at < epoch)),
        "backchannel_logouts": (BackchannelLogout, db.or_(
            BackchannelLogout.delivered_at < session_cutoff, BackchannelLogout.given_up_at < session_cutoff)),
        "sync_calls": (SyncCall, SyncCall.created_at < audit_cutoff),
        "login_events": (LoginEvent, LoginEvent.created_at < audit_cutoff),
        "operator_sessions": (OperatorSession,
                              db.or_(OperatorSession.ended_at < session_cutoff, OperatorSession.expires_at < session_cutoff)),
        "operator_audit": (AuditEntry, AuditEntry.created_at < audit_cutoff),
    }
    batch = max(1, int(cfg["MAINTENANCE_BATCH_SIZE"]))
    pause = max(0.0, float(cfg["MAINTENANCE_BATCH_PAUSE_MS"]) / 1000)
    busy = min(100, max(1, int(cfg["MAINTENANCE_BUSY_PERCENT"])))
    removed = {}
    for name, (model, *conditions) in steps.items():
        removed[name] = _delete_in_batches(name, model, conditions, batch, lambda took: wait_after(took, pause, busy),
                                           progress)
        log.info("maintenance: %s %d removed", name, removed[name])
    return removed


def wait_after(took: float, pause: float, busy_percent: int) -> float:
    """Seconds to wait after a full batch that took `took`: enough that batches fill at most
    `busy_percent` of the run's time (a batch's deletes and their index entries cost the database
    CPU the syncs need), and never less than `pause`."""
    return max(pause, took * (100 / busy_percent - 1))


def _delete_in_batches(name: str, model, conditions, batch: int, wait: Callable[[float], float], progress) -> int:
    """DELETE … WHERE key IN (the first `batch` matching keys), committed, until fewer match: each
    transaction touches at most `batch` rows, whatever the table's size. Between full batches,
    `wait(seconds the batch took)` leaves the database to the sync calls."""
    key = list(model.__table__.primary_key.columns)
    total, logged_at = 0, time.monotonic()
    while True:
        started = time.monotonic()
        chosen = db.select(*key).where(*conditions).limit(batch)
        if len(key) == 1:
            count = db.session.execute(db.delete(model).where(key[0].in_(chosen.scalar_subquery()))).rowcount
        else:  # a row value IN (subquery) is not portable: the keys travel as parameters
            keys = db.session.execute(chosen).all()
            count = db.session.execute(db.delete(model).where(db.tuple_(*key).in_(keys))).rowcount if keys else 0
        db.session.commit()
        total += count or 0
        if count and progress is not None:
            progress(name, total)
        if count and time.monotonic() - logged_at > PROGRESS_LOG_SECONDS:
            log.info("maintenance: %s %d removed so far", name, total)
            logged_at = time.monotonic()
        if not count or count < batch:
            return total
        if seconds := wait(time.monotonic() - started):
            time.sleep(seconds)


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
    on_tty = sys.stderr.isatty()

    def progress(name: str, count: int) -> None:
        click.echo(f"\r{name:<22}{count} removed so far", nl=False, err=True)

    for name, count in run_maintenance(progress if on_tty else None).items():
        if on_tty:
            click.echo("\r\033[K", nl=False, err=True)
        click.echo(f"{name:<22}{count} removed")
