"""`flask tenants|users|sync ...`: what KooGallery synced, for operators. Secrets are never shown."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from extensions import db
from tenants.models import Department, Instance, SyncCall, Tenant, TenantApp, TenantInstance, TenantUser
from tenants.services import RecordError, purge_expired_nonces, record_domain_id


def _table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    cells = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _count(model, **where) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(model).filter_by(**where))


def _find_tenant(ref: str) -> Tenant:
    tenant = db.session.get(Tenant, ref) or db.session.execute(
        db.select(Tenant).filter_by(tenant_code=ref).order_by(Tenant.deleted_at.isnot(None))).scalars().first()
    if tenant is None:
        raise click.ClickException(f"no tenant with id or code {ref!r}")
    return tenant


def _status(row) -> str:
    return "deleted" if row.deleted_at else "active"


@click.group("tenants", help="Tenants synced by KooGallery.")
def tenants_cli():
    pass


@tenants_cli.command("list")
@with_appcontext
def list_tenants():
    """One line per tenant."""
    tenants = db.session.execute(db.select(Tenant).order_by(Tenant.tenant_code)).scalars().all()
    if not tenants:
        click.echo("no tenants yet")
        return
    rows = [(t.tenant_id, t.tenant_code, t.name, t.domain_name, _status(t), "debug" if t.test_flag else "",
             _count(TenantInstance, tenant_id=t.tenant_id), _count(TenantUser, tenant_id=t.tenant_id, deleted_at=None))
            for t in tenants]
    _table(rows, ("TENANT ID", "CODE", "NAME", "AUTH CENTRE", "STATUS", "DATA", "ORDERS", "USERS"))


@tenants_cli.command("show")
@click.argument("tenant")
@with_appcontext
def show_tenant(tenant):
    """Everything stored for one tenant (by tenant ID or tenant code)."""
    t = _find_tenant(tenant)
    click.echo(f"Tenant       {t.tenant_id}")
    click.echo(f"Code         {t.tenant_code}")
    click.echo(f"Name         {t.name}")
    click.echo(f"Auth centre  {t.domain_name}")
    click.echo(f"domainId     {t.domain_id or '-'}")
    click.echo(f"Status       {_status(t)}{' (debug data)' if t.test_flag else ''}")
    click.echo(f"Last sync    {t.last_sync_ts}")
    click.echo("")
    links = db.session.execute(db.select(TenantInstance).filter_by(tenant_id=t.tenant_id)).scalars().all()
    instances = {i.instance_id: i for i in db.session.execute(
        db.select(Instance).where(Instance.instance_id.in_([link.instance_id for link in links]))).scalars()}
    click.echo(f"Orders ({len(links)})")
    for link in links:
        inst = instances.get(link.instance_id)
        state = f"{inst.status}, expires {inst.expire_time or 'never'}" if inst else "no newInstance received"
        click.echo(f"  {link.instance_id}  order {link.order_id or '-'}  {state}")
    apps = db.session.execute(db.select(TenantApp).filter_by(tenant_id=t.tenant_id)).scalars().all()
    click.echo(f"Apps ({len(apps)})")
    for app in apps:
        secret = "secret stored" if app.client_secret_enc else "no secret"
        click.echo(f"  app {app.app_id}  client {app.client_id or '-'}  {secret}  {_status(app)}")
    users = _count(TenantUser, tenant_id=t.tenant_id, deleted_at=None)
    allowed = _count(TenantUser, tenant_id=t.tenant_id, deleted_at=None, authorized=True, enabled=True)
    click.echo(f"Users        {users} ({allowed} authorised and enabled)")
    click.echo(f"Departments  {_count(Department, tenant_id=t.tenant_id, deleted_at=None)}")


@tenants_cli.command("set-domain-id")
@click.argument("tenant")
@click.argument("domain_id", required=False)
@click.option("--clear", is_flag=True, help="Forget the recorded domainId.")
@with_appcontext
def set_domain_id(tenant, domain_id, clear):
    """Record the enterprise's domainId that TENANT's authentication centre reports in userinfo
    `tenant` (admitted when BRIDGE_USERINFO_TENANT_MATCH=domain_id). The refusal of a login whose
    userinfo tenant differed names the value (console, Login audit)."""
    if clear == bool(domain_id):
        raise click.UsageError("give a DOMAIN_ID, or --clear")
    t = _find_tenant(tenant)
    try:
        record_domain_id(t, None if clear else domain_id.strip())
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"{t.tenant_id} ({t.tenant_code}): domainId {'cleared' if clear else repr(t.domain_id)}")


@click.group("users", help="Users authorised by authSync.")
def users_cli():
    pass


@users_cli.command("list")
@click.argument("tenant")
@click.option("--all", "show_all", is_flag=True, help="Include deleted users.")
@with_appcontext
def list_users(tenant, show_all):
    """The tenant's users (by tenant ID or code)."""
    t = _find_tenant(tenant)
    stmt = db.select(TenantUser).filter_by(tenant_id=t.tenant_id).order_by(TenantUser.user_name)
    if not show_all:
        stmt = stmt.filter_by(deleted_at=None)
    users = db.session.execute(stmt).scalars().all()
    if not users:
        click.echo("no users")
        return
    rows = [(u.user_name, u.name, u.role, u.org_code, _status(u), "debug" if u.test_flag else "production",
             "yes" if u.authorized else "no", "yes" if u.enabled else "no") for u in users]
    _table(rows, ("USER", "NAME", "ROLE", "DEPT", "STATUS", "DATA", "AUTHORISED", "ENABLED"))


@click.group("sync", help="The sync-call audit.")
def sync_cli():
    pass


@sync_cli.command("log")
@click.option("--tenant", help="Only calls for this tenant ID.")
@click.option("--failed", is_flag=True, help="Only calls that did not answer 000000.")
@click.option("--limit", default=50, show_default=True)
@click.option("--bodies", is_flag=True, help="Print each call's (redacted) body.")
@with_appcontext
def sync_log(tenant, failed, limit, bodies):
    """The newest calls first."""
    stmt = db.select(SyncCall).order_by(SyncCall.id.desc()).limit(limit)
    if tenant:
        stmt = stmt.filter_by(tenant_id=tenant)
    if failed:
        stmt = stmt.where(SyncCall.result_code != "000000")
    calls = db.session.execute(stmt).scalars().all()
    if not calls:
        click.echo("no calls")
        return
    for c in calls:
        click.echo(f"{c.created_at:%Y-%m-%d %H:%M:%S}  {c.result_code}  {c.interface:<24} tenant={c.tenant_id or '-'} "
                   f"{c.duration_ms}ms  {c.result_msg}  [req {c.request_id}]")
        if bodies and c.body:
            click.echo(f"    {c.body}")


@sync_cli.command("purge-nonces")
@with_appcontext
def purge_nonces():
    """Forget nonces past their expiry (safe to run at any time, from any host)."""
    removed = purge_expired_nonces()
    db.session.commit()
    click.echo(f"removed {removed} expired nonce(s)")
