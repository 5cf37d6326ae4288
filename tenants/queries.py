"""The read side of what KooGallery told us: facts only, no decisions (sso's admission decides).
Every function is one query."""

from __future__ import annotations

from extensions import db
from tenants.models import Department, Instance, Tenant, TenantApp, TenantInstance, TenantUser


def tenant(tenant_id: str) -> Tenant | None:
    return db.session.get(Tenant, tenant_id)


def tenant_by_ref(ref: str) -> Tenant | None:
    """By tenant ID or tenant code (what a person types, any case); a live tenant before a deleted one."""
    found = db.session.get(Tenant, ref)
    if found is None:
        found = db.session.execute(
            db.select(Tenant).where(db.func.lower(Tenant.tenant_code) == ref.lower())
            .order_by(Tenant.deleted_at.is_not(None))).scalars().first()
    return found


def tenants_of_instance(instance_id: str) -> list[Tenant]:
    """The tenants an order binds, live ones first."""
    return list(db.session.execute(
        db.select(Tenant).join(TenantInstance, TenantInstance.tenant_id == Tenant.tenant_id)
        .where(TenantInstance.instance_id == instance_id).order_by(Tenant.deleted_at.is_not(None))).scalars())


def orders_of(tenant_id: str) -> list[tuple[str, Instance | None]]:
    """The tenant's order links, each with its instance (None: the bridge has no such instance)."""
    return [tuple(row) for row in db.session.execute(
        db.select(TenantInstance.instance_id, Instance)
        .outerjoin(Instance, Instance.instance_id == TenantInstance.instance_id)
        .where(TenantInstance.tenant_id == tenant_id).order_by(TenantInstance.created_at.desc()))]


def credentials(tenant_id: str, app_id: str | None) -> TenantApp | None:
    """The tenant's newest usable OAuth client (of `app_id` when the deployment names one)."""
    stmt = (db.select(TenantApp).filter_by(tenant_id=tenant_id, deleted_at=None)
            .where(TenantApp.client_secret_enc.is_not(None), TenantApp.client_id.is_not(None))
            .order_by(TenantApp.last_sync_ts.desc()))
    if app_id:
        stmt = stmt.filter_by(app_id=app_id)
    return db.session.execute(stmt).scalars().first()


def user(tenant_id: str, user_name: str) -> TenantUser | None:
    return db.session.get(TenantUser, (tenant_id, user_name))


def user_count(tenant_id: str) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(TenantUser).filter_by(tenant_id=tenant_id)) or 0


def authorised_before(found: TenantUser) -> int:
    """How many of the tenant's authorised, enabled production users were authorised before this one."""
    earlier = db.or_(TenantUser.created_at < found.created_at,
                     db.and_(TenantUser.created_at == found.created_at, TenantUser.user_name < found.user_name))
    return db.session.scalar(db.select(db.func.count()).select_from(TenantUser).where(
        TenantUser.tenant_id == found.tenant_id, TenantUser.authorized.is_(True), TenantUser.enabled.is_(True),
        TenantUser.deleted_at.is_(None), TenantUser.test_flag.is_(False), earlier)) or 0


def department_name(tenant_id: str, org_code: str) -> str | None:
    dept = db.session.get(Department, (tenant_id, org_code))
    return dept.org_name if dept else None
