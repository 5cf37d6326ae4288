"""Who may sign in, and who may stay signed in (DESIGN invariant 5): the one home of the rule.

The login, every signed-in request, the OIDC provider and the operator console all ask here.
Facts come from `tenants.queries`; the decision and its reason (a code of sso.errors.REASONS) are
made only in this module: one tenant rule, one user rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app

from common.clock import aware, utcnow
from sso.errors import LoginError
from sso.models import UserSession
from tenants import queries
from tenants.models import Instance, InstanceStatus, Tenant, TenantUser

# --- the tenant rule ------------------------------------------------------------------------------


def instance_admits(instance: Instance, now: datetime) -> bool:
    """An order admits logins while it is active and unexpired."""
    if instance.status != InstanceStatus.ACTIVE:
        return False
    return instance.expire_time is None or aware(instance.expire_time) > now


def tenant_refusal(tenant: Tenant | None, orders: list[tuple[str, Instance | None]], now: datetime) -> str | None:
    """Why nobody of this tenant may sign in now, or None.

    A tenant bound by no order (the seller's test credential) is admitted; so is debug data, whose
    orders the marketplace's debug calls never change. Otherwise at least one order must admit
    logins, and an order the bridge has no instance for admits nothing (fail closed: the operator
    sees it as `instance_unknown`)."""
    if tenant is None:
        return "unknown_tenant"
    if tenant.deleted_at is not None:
        return "tenant_deleted"
    if not orders or tenant.test_flag:
        return None
    if any(instance is not None and instance_admits(instance, now) for _, instance in orders):
        return None
    if all(instance is None for _, instance in orders):
        return "instance_unknown"
    return "instance_suspended"


def seats_of(orders: list[tuple[str, Instance | None]], now: datetime) -> int | None:
    """The seats bought by the tenant's live orders (None: not sold by seat)."""
    counts = [i.seats for _, i in orders if i is not None and i.seats is not None and instance_admits(i, now)]
    return sum(counts) if counts else None


# --- the user rule --------------------------------------------------------------------------------


def user_refusal(tenant: Tenant, user: TenantUser | None, *, jit: bool, seats: int | None) -> str | None:
    """Why this user may not sign in, or None. `jit`: admit users not (yet) in authSync."""
    if user is None or user.deleted_at is not None:
        return None if jit else "not_authorised"
    if not user.authorized:
        return "not_authorised"
    if not user.enabled:
        return "user_disabled"
    if user.test_flag and not tenant.test_flag:
        return "not_authorised"  # debug data never admits anyone to a production tenant
    if seats is not None and queries.authorised_before(user) >= seats:
        return "seats_exceeded"
    return None


def _jit_allowed(tenant: Tenant) -> bool:
    return bool(current_app.config["JIT_USERS"]) and queries.user_count(tenant.tenant_id) == 0


def _seats_enforced(orders, now) -> int | None:
    return seats_of(orders, now) if current_app.config["SEATS_FROM_LINEAR_VALUE"] else None


# --- what the callers ask -------------------------------------------------------------------------


def check_tenant(tenant: Tenant | None, now: datetime | None = None, *,
                 orders: list[tuple[str, Instance | None]] | None = None) -> None:
    """Before a login starts and before a code is exchanged (`orders`: the tenant's order links,
    when the caller has read them with the tenant)."""
    if orders is None:
        orders = queries.orders_of(tenant.tenant_id) if tenant else []
    reason = tenant_refusal(tenant, orders, now or utcnow())
    if reason:
        raise LoginError(reason, tenant_id=tenant.tenant_id if tenant else None)


@dataclass(frozen=True)
class Admitted:
    user: TenantUser | None  # None: admitted just in time (no authSync row)
    jit: bool
    tenant: Tenant | None = field(default=None, compare=False)  # as read after the centre's calls


def admit_user(tenant: Tenant, user_name: str, centre_tenant: str | None) -> Admitted:
    """After the code exchange: the centre's word on who this is, against what KooGallery says now
    (read again, with the user: KooGallery may have changed the tenant while the centre answered)."""
    facts = queries.tenant_and_user(tenant.tenant_id, user_name)
    if facts.tenant is not None:  # the centre's word first, against the tenant as it is now
        check_centre_tenant(facts.tenant, centre_tenant, user_name)
    now = utcnow()
    reason = tenant_refusal(facts.tenant, facts.orders, now)
    if reason:
        raise LoginError(reason, tenant_id=tenant.tenant_id, user_name=user_name)
    tenant, orders, user = facts.tenant, facts.orders, facts.user
    jit = _jit_allowed(tenant)  # only a tenant with no user rows at all, so `user` is None then
    reason = user_refusal(tenant, user, jit=jit, seats=_seats_enforced(orders, now))
    if reason:
        raise LoginError(reason, f"user {user_name!r}", tenant_id=tenant.tenant_id, user_name=user_name)
    return Admitted(user, jit, tenant)


def recheck(tenant_id: str, user_name: str, *, jit: bool) -> None:
    """A held sign-in, minutes later: KooGallery may have revoked the user or frozen the order since."""
    facts = queries.tenant_and_user(tenant_id, user_name)
    now = utcnow()
    reason = tenant_refusal(facts.tenant, facts.orders, now)
    if not reason:
        reason = user_refusal(facts.tenant, facts.user, jit=jit, seats=_seats_enforced(facts.orders, now))
    if reason:
        raise LoginError(reason, tenant_id=tenant_id, user_name=user_name)


def check_centre_tenant(tenant: Tenant, centre_tenant: str | None, user_name: str) -> None:
    """The centre documents userinfo `tenant` as the enterprise's domainId; the bridge expects the
    tenantId of the callback, or the documented alternative the operator chose (the tenantCode, or
    the domainId recorded for the tenant). A refusal names both values for the operator."""
    if centre_tenant is None:
        if not current_app.config["USERINFO_TENANT_OPTIONAL"]:
            raise LoginError("tenant_missing", "userinfo has no tenant", tenant_id=tenant.tenant_id,
                             user_name=user_name)
        return
    alternative = {"tenant_code": tenant.tenant_code, "domain_id": tenant.domain_id}.get(
        current_app.config["USERINFO_TENANT_MATCH"])
    if centre_tenant in {tenant.tenant_id, alternative} - {None, ""}:
        return
    expected = f"callback tenant {tenant.tenant_id!r}"
    if current_app.config["USERINFO_TENANT_MATCH"] == "domain_id":
        expected += (f", recorded domainId {tenant.domain_id!r}" if tenant.domain_id else
                     ", no domainId recorded (flask tenants set-domain-id)")
    raise LoginError("tenant_mismatch", f"userinfo tenant {centre_tenant!r}, {expected}",
                     tenant_id=tenant.tenant_id, user_name=user_name)


def session_refusal(user_session: UserSession, now: datetime | None = None, *,
                    facts: queries.TenantFacts | None = None) -> str | None:
    """Why this session may not be used any more, or None. Checked on every signed-in request, so
    a revocation takes effect even if its signal was missed. `facts`: the session's tenant, its
    order links and its user, when the caller has already read them (tenants.queries.tenant_and_user)."""
    now = now or utcnow()
    if user_session.ended_at is not None:
        return user_session.end_reason or "ended"
    if aware(user_session.expires_at) <= now:
        return "expired"
    if aware(user_session.last_seen_at) + timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"]) <= now:
        return "idle"
    if facts is None or not facts.user_read:
        facts = queries.tenant_and_user(user_session.tenant_id, user_session.user_name)
    tenant, orders, user = facts.tenant, facts.orders, facts.user
    reason = tenant_refusal(tenant, orders, now)
    if reason:
        return reason
    if user_refusal(tenant, user, jit=user_session.jit, seats=_seats_enforced(orders, now)):
        return "user_revoked"
    return None


def live_instance_of(tenant_id: str, now: datetime | None = None) -> str | None:
    """The order a signed-in user is using: the newest one that admits logins, else the newest."""
    return live_instance_in(queries.orders_of(tenant_id), now or utcnow())


def live_instance_in(orders: list[tuple[str, Instance | None]], now: datetime) -> str | None:
    return next((iid for iid, i in orders if i is not None and instance_admits(i, now)),
                orders[0][0] if orders else None)
