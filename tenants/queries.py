"""The read side of what KooGallery told us: facts only, no decisions (sso's admission decides).
Every function is one query.

The facts every login and every signed-in request reads (a tenant, its orders, its credentials, a
user) come back as plain rows, read-only, with the models' attribute names: loading a row costs
about a quarter of loading an ORM object, and nothing here is meant to be changed and saved."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

from extensions import db
from tenants.models import Department, Instance, Tenant, TenantApp, TenantInstance, TenantUser

_TENANT, _INSTANCE, _APP, _USER = (model.__table__ for model in (Tenant, Instance, TenantApp, TenantUser))
# Built once: building and keying a statement costs as much as running it.
_TENANT_BY_ID = db.select(_TENANT).where(_TENANT.c.tenant_id == db.bindparam("tenant_id"))
_ORDERS = (db.select(TenantInstance.instance_id.label("linked_id"), _INSTANCE)
           .outerjoin(_INSTANCE, _INSTANCE.c.instance_id == TenantInstance.instance_id)
           .where(TenantInstance.tenant_id == db.bindparam("tenant_id")).order_by(TenantInstance.created_at.desc()))


def tenant(tenant_id: str) -> Tenant | None:
    return db.session.execute(_TENANT_BY_ID, {"tenant_id": tenant_id}).first()


def tenants_of_instance(instance_id: str) -> list[Tenant]:
    """The tenants an order binds, live ones first."""
    return list(db.session.execute(
        db.select(Tenant).join(TenantInstance, TenantInstance.tenant_id == Tenant.tenant_id)
        .where(TenantInstance.instance_id == instance_id).order_by(Tenant.deleted_at.is_not(None))).scalars())


def orders_of(tenant_id: str) -> list[tuple[str, Instance | None]]:
    """The tenant's order links, each with its instance (None: the bridge has no such instance)."""
    rows = db.session.execute(_ORDERS, {"tenant_id": tenant_id})
    return [(row.linked_id, row if row.instance_id is not None else None) for row in rows]


def orders_without_instance() -> int:
    """Order links of live production tenants whose instanceId matches no instance the bridge knows
    (no newInstance received): admission refuses those tenants' sign-ins as `instance_unknown`."""
    return db.session.scalar(
        db.select(db.func.count()).select_from(TenantInstance)
        .join(Tenant, Tenant.tenant_id == TenantInstance.tenant_id)
        .outerjoin(Instance, Instance.instance_id == TenantInstance.instance_id)
        .where(Instance.instance_id.is_(None), Tenant.deleted_at.is_(None), Tenant.test_flag.is_(False))) or 0


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


# --- a tenant and its orders, read with other rows in one round trip ----------------------------
# A login reads the tenant with its order links and its OAuth client before the centre's calls, and
# again with the user's row after them; the OIDC token and userinfo endpoints read a session with
# its tenant, order links and user. The joins and the reading of their rows live here.

_TENANT_INSTANCE = TenantInstance.__table__
_TenantRow = namedtuple("TenantRow", [c.key for c in _TENANT.c])
_InstanceRow = namedtuple("InstanceRow", [c.key for c in _INSTANCE.c])
_AppRow = namedtuple("AppRow", [c.key for c in _APP.c])
_UserRow = namedtuple("UserRow", [c.key for c in _USER.c])
TENANT_AND_ORDERS_COLUMNS = (*_TENANT.c, _TENANT_INSTANCE.c.instance_id.label("linked_id"),
                             *(c.label(f"instance_{c.key}") for c in _INSTANCE.c))
ORDERS_NEWEST_FIRST = _TENANT_INSTANCE.c.created_at.desc()


def _with_orders(tenant_join):
    return (tenant_join.outerjoin(_TENANT_INSTANCE, _TENANT_INSTANCE.c.tenant_id == _TENANT.c.tenant_id)
            .outerjoin(_INSTANCE, _INSTANCE.c.instance_id == _TENANT_INSTANCE.c.instance_id))


USER_COLUMNS = tuple(c.label(f"kg_user_{c.key}") for c in _USER.c)


def _with_user(tenant_join, user_name):
    return tenant_join.outerjoin(_USER, db.and_(_USER.c.tenant_id == _TENANT.c.tenant_id,
                                                _USER.c.user_name == user_name))


def joined_to_tenant_user_and_orders(left, tenant_id_column, user_name_column):
    """`left` LEFT JOIN the tenant `tenant_id_column` names, that tenant's user `user_name_column`
    names, its order links and their instances. Select USER_COLUMNS, then TENANT_AND_ORDERS_COLUMNS
    last, order by ORDERS_NEWEST_FIRST, read with tenant_user_and_orders_from."""
    return _with_orders(_with_user(left.outerjoin(_TENANT, _TENANT.c.tenant_id == tenant_id_column),
                                   user_name_column))


def _tenant_and_orders(rows, start: int) -> tuple[Tenant | None, list[tuple[str, Instance | None]]]:
    """What tenant() and orders_of() answer, from the rows of such a join (no query of its own):
    TENANT_AND_ORDERS_COLUMNS begin at `start` in every row."""
    linked = start + len(_TenantRow._fields)
    if not rows or rows[0][start] is None:  # no such tenant (tenant_id is never NULL in a stored one)
        return None, []
    orders = [(row[linked], _InstanceRow(*row[linked + 1:]) if row[linked + 1] is not None else None)
              for row in rows if row[linked] is not None]
    return _TenantRow(*rows[0][start:linked]), orders


def tenant_user_and_orders_from(rows, start: int) -> TenantFacts:
    """The tenant, its orders and the user from the rows of such a join: USER_COLUMNS at `start`."""
    width = len(_UserRow._fields)
    tenant, orders = _tenant_and_orders(rows, start + width)
    found = _UserRow(*rows[0][start:start + width]) if tenant is not None and rows[0][start] is not None else None
    return TenantFacts(tenant, orders, user=found, user_read=True)


@dataclass(frozen=True)
class TenantFacts:
    """A tenant (None: no such tenant), its order links newest first, and what was asked with them:
    its newest usable OAuth client (of the deployment's app, if it names one), or one user's row
    (`user_read`: it was asked for, so None says there is no such user)."""

    tenant: Tenant | None
    orders: list[tuple[str, Instance | None]] = field(default_factory=list)
    credentials: TenantApp | None = None
    user: TenantUser | None = None
    user_read: bool = False


def _newest_usable_app(of_app: bool):
    usable = _APP.alias("usable")
    newest = (db.select(usable.c.app_id)
              .where(usable.c.tenant_id == _TENANT.c.tenant_id, usable.c.deleted_at.is_(None),
                     usable.c.client_secret_enc.is_not(None), usable.c.client_id.is_not(None)))
    if of_app:
        newest = newest.where(usable.c.app_id == db.bindparam("app_id"))
    return newest.order_by(usable.c.last_sync_ts.desc()).limit(1).correlate(_TENANT).scalar_subquery()


def _tenant_facts_statement(*, credentials: bool = False, of_app: bool = False, user: bool = False,
                            by_ref: bool = False):
    joined, extra = _TENANT, []
    if credentials:  # the newest usable client, joined by its key
        joined = joined.outerjoin(_APP, db.and_(_APP.c.tenant_id == _TENANT.c.tenant_id,
                                                _APP.c.app_id == _newest_usable_app(of_app)))
        extra += [c.label(f"app_{c.key}") for c in _APP.c]
    if user:
        joined, extra = _with_user(joined, db.bindparam("user_name")), [*extra, *USER_COLUMNS]
    wanted = db.bindparam("tenant_id")
    if by_ref:
        by_id, by_code = _TENANT.alias("by_id"), _TENANT.alias("by_code")
        wanted = db.func.coalesce(
            db.select(by_id.c.tenant_id).where(by_id.c.tenant_id == db.bindparam("ref")).scalar_subquery(),
            db.select(by_code.c.tenant_id).where(db.func.lower(by_code.c.tenant_code) == db.bindparam("code"))
            .order_by(by_code.c.deleted_at.is_not(None)).limit(1).scalar_subquery())
    return (db.select(*extra, *TENANT_AND_ORDERS_COLUMNS).select_from(_with_orders(joined))
            .where(_TENANT.c.tenant_id == wanted).order_by(ORDERS_NEWEST_FIRST))


_FOR_LOGIN = {(by_ref, of_app): _tenant_facts_statement(credentials=True, of_app=of_app, by_ref=by_ref)
              for by_ref in (False, True) for of_app in (False, True)}
_WITH_USER = _tenant_facts_statement(user=True)


def _login_facts(by_ref: bool, params: dict, app_id: str | None) -> TenantFacts:
    rows = db.session.execute(_FOR_LOGIN[by_ref, bool(app_id)], params | ({"app_id": app_id} if app_id else {})).all()
    width = len(_AppRow._fields)
    tenant, orders = _tenant_and_orders(rows, width)
    app = _AppRow(*rows[0][:width]) if tenant is not None and rows[0][0] is not None else None
    return TenantFacts(tenant, orders, credentials=app)


def tenant_for_login(tenant_id: str, app_id: str | None) -> TenantFacts:
    """tenant(), orders_of() and the tenant's newest usable OAuth client in one query: what a login
    reads before it calls the tenant's centre."""
    return _login_facts(False, {"tenant_id": tenant_id}, app_id)


def tenant_for_login_by_ref(ref: str, app_id: str | None) -> TenantFacts:
    """The same for the tenant a person names: by tenant ID, else by code in any case (a live
    tenant before a deleted one)."""
    return _login_facts(True, {"ref": ref, "code": ref.lower()}, app_id)


def tenant_and_user(tenant_id: str, user_name: str) -> TenantFacts:
    """tenant(), orders_of() and the tenant's user of that name in one query: what admission
    decides a user on."""
    rows = db.session.execute(_WITH_USER, {"tenant_id": tenant_id, "user_name": user_name}).all()
    return tenant_user_and_orders_from(rows, 0)
