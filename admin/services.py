"""What the console shows and does: read-only views of what KooGallery synced and what users did,
ending sessions, and the operators' audit. No `request` here: views pass in what they parsed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from math import ceil

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from admin.errors import AdminError
from admin.models import AuditEntry
from common.clock import utcnow
from extensions import db
from ops import activity
from sso.admission import tenant_refusal, user_refusal
from sso.models import LOGIN_OUTCOMES, LoginEvent, UserSession
from sso.oidc.models import BackchannelLogout, OidcClient
from sso.sessions import end_sessions
from tenants import queries
from tenants.audit import redact
from tenants.errors import ResultCode
from tenants.models import Department, Instance, SyncCall, Tenant, TenantApp, TenantInstance, TenantUser

log = logging.getLogger(__name__)

__all__ = ["LOGIN_OUTCOMES"]  # the console's outcome filter (defined beside LoginEvent)
END_SESSIONS_REASON = "operator"  # what an ended user session says in sso_session.end_reason


# --- pages of rows --------------------------------------------------------------------------------


# Rows a list counts exactly. Past this a list says "10000+" and pages on with "next": counting a
# table of millions on every page view would cost more than the page itself.
COUNT_LIMIT = 10_000


@dataclass
class Page:
    items: list
    number: int
    size: int
    total: int
    capped: bool = False  # there are more than `total` (COUNT_LIMIT) rows
    more: bool = False  # a row follows this page

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.size), self.number if self.capped else 1)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.more

    @property
    def total_shown(self) -> str:
        return f"{self.total}+" if self.capped else str(self.total)

    @property
    def pages_shown(self) -> str:
        return f"{self.pages}+" if self.capped else str(self.pages)


def page_size() -> int:
    return current_app.config.get("ADMIN_PAGE_SIZE", 50)


def _count(stmt, limit: int | None = None) -> int:
    inner = stmt.order_by(None) if limit is None else stmt.order_by(None).limit(limit + 1)
    return db.session.scalar(db.select(db.func.count()).select_from(inner.subquery()))


def paginate(stmt, number: int) -> Page:
    return paginate_across([stmt], number)


def paginate_across(parts: list, number: int) -> Page:
    """One page of the lists `parts` shown one after the other (each already ordered), counted up
    to COUNT_LIMIT rows; one row more than a page is read to know whether another follows."""
    size = page_size()
    counts = [_count(part, COUNT_LIMIT) for part in parts]
    capped = sum(counts) > COUNT_LIMIT
    total = min(sum(counts), COUNT_LIMIT)
    if not capped and number > max(1, ceil(total / size)):
        raise AdminError("page_out_of_range", 404)
    skip, items = (number - 1) * size, []
    for part, count in zip(parts, counts, strict=True):
        if count > COUNT_LIMIT and skip >= COUNT_LIMIT:
            count = _count(part)  # a deep page past a long part: where that part ends matters now
        if skip >= count:
            skip -= count
            continue
        items += db.session.execute(part.limit(size + 1 - len(items)).offset(skip)).scalars()
        skip = 0
        if len(items) > size:
            break
    if capped and not items:
        raise AdminError("page_out_of_range", 404)
    return Page(items[:size], number, size, total, capped=capped, more=len(items) > size)


# --- tenants --------------------------------------------------------------------------------------


@dataclass
class TenantSummary:
    instances: list[tuple[str, Instance | None]] = field(default_factory=list)  # (instance id, its row if known)
    apps: list[TenantApp] = field(default_factory=list)
    users: int = 0
    departments: int = 0
    active_sessions: int = 0


def _live_session_conditions():
    now = utcnow()
    idle = timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    return (UserSession.ended_at.is_(None), UserSession.expires_at > now, UserSession.last_seen_at > now - idle)


def _count_by(column, *where) -> dict:
    return dict(db.session.execute(db.select(column, db.func.count()).where(*where).group_by(column)).all())


def _instances_of(tenant_ids: list[str]) -> dict[str, list[tuple[str, Instance | None]]]:
    rows = db.session.execute(
        db.select(TenantInstance.tenant_id, TenantInstance.instance_id, Instance)
        .outerjoin(Instance, Instance.instance_id == TenantInstance.instance_id)
        .where(TenantInstance.tenant_id.in_(tenant_ids)).order_by(TenantInstance.created_at)).all()
    found: dict[str, list] = {}
    for tenant_id, instance_id, instance in rows:
        found.setdefault(tenant_id, []).append((instance_id, instance))
    return found


def _apps_of(tenant_ids: list[str]) -> dict[str, list[TenantApp]]:
    found: dict[str, list] = {}
    for app in db.session.execute(db.select(TenantApp).where(TenantApp.tenant_id.in_(tenant_ids))
                                  .order_by(TenantApp.app_id)).scalars():
        found.setdefault(app.tenant_id, []).append(app)
    return found


def tenant_overview(number: int, search: str | None = None) -> tuple[Page, dict[str, TenantSummary]]:
    """One page of tenants (live ones first), each with what an operator checks first. Counts
    are one grouped query per kind for the whole page, not one per tenant."""
    stmt = db.select(Tenant).order_by(Tenant.deleted_at.isnot(None), Tenant.tenant_code, Tenant.tenant_id)
    if search:
        pattern = f"%{search}%"
        stmt = stmt.where(Tenant.tenant_id.ilike(pattern) | Tenant.tenant_code.ilike(pattern)
                          | Tenant.name.ilike(pattern))
    page = paginate(stmt, number)
    ids = [t.tenant_id for t in page.items]
    summaries = {tenant_id: TenantSummary() for tenant_id in ids}
    for tenant_id, instances in _instances_of(ids).items():
        summaries[tenant_id].instances = instances
    for tenant_id, apps in _apps_of(ids).items():
        summaries[tenant_id].apps = apps
    counts = {
        "users": _count_by(TenantUser.tenant_id, TenantUser.tenant_id.in_(ids), TenantUser.deleted_at.is_(None)),
        "departments": _count_by(Department.tenant_id, Department.tenant_id.in_(ids), Department.deleted_at.is_(None)),
        "active_sessions": _count_by(UserSession.tenant_id, UserSession.tenant_id.in_(ids),
                                     *_live_session_conditions()),
    }
    for name, by_tenant in counts.items():
        for tenant_id, count in by_tenant.items():
            setattr(summaries[tenant_id], name, count)
    return page, summaries


@dataclass
class TenantDetail:
    tenant: Tenant
    login_block: str | None  # why nobody of this tenant may sign in now, or None
    instances: list[tuple[str, Instance | None]]
    apps: list[TenantApp]
    users: Page
    sessions_by_user: dict[str, int]
    departments: Page
    live_sessions: list[UserSession]
    refusals: dict[str, str | None]  # user name -> why admission refuses the user now, or None


def get_tenant(tenant_id: str) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id[:64]) if tenant_id else None
    if tenant is None:
        raise AdminError("unknown_tenant", 404)
    return tenant


def tenant_detail(tenant_id: str, users_page: int, departments_page: int) -> TenantDetail:
    tenant = get_tenant(tenant_id)
    users = paginate(db.select(TenantUser).filter_by(tenant_id=tenant.tenant_id)
                     .order_by(TenantUser.deleted_at.isnot(None), TenantUser.user_name), users_page)
    departments = paginate(db.select(Department).filter_by(tenant_id=tenant.tenant_id)
                           .order_by(Department.deleted_at.isnot(None), Department.org_code), departments_page)
    live = list(db.session.execute(
        db.select(UserSession).where(UserSession.tenant_id == tenant.tenant_id, *_live_session_conditions())
        .order_by(UserSession.user_name, UserSession.created_at.desc()).limit(200)).scalars())
    by_user = _count_by(UserSession.user_name, UserSession.tenant_id == tenant.tenant_id,
                        UserSession.user_name.in_([u.user_name for u in users.items]), *_live_session_conditions())
    return TenantDetail(tenant=tenant, login_block=tenant_refusal(tenant, queries.orders_of(tenant.tenant_id), utcnow()),
                        instances=_instances_of([tenant.tenant_id]).get(tenant.tenant_id, []),
                        apps=_apps_of([tenant.tenant_id]).get(tenant.tenant_id, []), users=users,
                        sessions_by_user=by_user, departments=departments, live_sessions=live,
                        refusals={u.user_name: user_refusal(tenant, u, jit=False, seats=None) for u in users.items})


def end_tenant_sessions(tenant_id: str, user_name: str | None, *, operator: str, remote_addr: str | None,
                        request_id: str | None) -> int:
    """End the sessions of a whole tenant (user_name None) or of one user. Through
    sso.sessions.end_sessions, so the apps' tokens are revoked and back-channel logouts queued in
    the same transaction as the audit entry."""
    tenant = get_tenant(tenant_id)
    ended = end_sessions(tenant.tenant_id, None if user_name is None else [user_name], END_SESSIONS_REASON)
    record(("end_user_sessions" if user_name is not None else "end_tenant_sessions"), operator=operator,
           target=tenant.tenant_id if user_name is None else f"{tenant.tenant_id}/{user_name}",
           detail=f"{ended} session(s) ended", remote_addr=remote_addr, request_id=request_id)
    db.session.commit()
    return ended


# --- sync log, login audit, OIDC apps -------------------------------------------------------------


@dataclass
class LastDay:
    sign_ins: activity.Hourly
    sync_calls: activity.Hourly
    refused_sign_ins: list
    failed_sync_calls: list


def last_day() -> LastDay:
    """The console's home: per-hour counts of the last 24 hours and the last few failures."""
    return LastDay(activity.sign_ins_by_hour(24), activity.sync_calls_by_hour(24),
                   activity.last_refused_sign_ins(10), activity.last_failed_sync_calls(10))


def sync_calls(number: int, tenant_id: str | None = None, result_code: str | None = None) -> Page:
    """Failures first (what an operator is looking for), then the newest. Failures and successes are
    read as two lists, each newest first along an index (the partial one for failures), and the page
    is cut across them: no sort of the whole audit table, however long it grows."""
    stmt = db.select(SyncCall)
    if tenant_id:
        stmt = stmt.filter_by(tenant_id=tenant_id)
    # Inline, not a bound parameter: PostgreSQL uses a partial index only for a literal it can match.
    success = db.bindparam("success_code", ResultCode.SUCCESS, literal_execute=True)
    failed = stmt.where(SyncCall.result_code != success).order_by(SyncCall.id.desc())
    if result_code == "failed":
        return paginate(failed, number)
    if result_code:
        return paginate(stmt.filter_by(result_code=result_code).order_by(SyncCall.id.desc()), number)
    return paginate_across([failed, stmt.where(SyncCall.result_code == success).order_by(SyncCall.id.desc())],
                           number)


def sync_result_codes() -> list[str]:
    return list(db.session.execute(db.select(SyncCall.result_code).distinct().order_by(SyncCall.result_code)).scalars())


def get_sync_call(call_id: int) -> SyncCall:
    call = db.session.get(SyncCall, call_id)
    if call is None:
        raise AdminError("unknown_sync_call", 404)
    return call


def readable_body(call: SyncCall) -> str:
    """The stored body, indented. Stored bodies are redacted already; redacting again costs
    nothing and keeps a secret off the screen even if an older row was not."""
    if not call.body:
        return ""
    try:
        return json.dumps(redact(json.loads(call.body)), ensure_ascii=False, indent=2)
    except ValueError:
        return call.body  # cut or unparseable when received: stored as a short prefix


def login_events(number: int, tenant_id: str | None = None, user_name: str | None = None,
                 outcome: str | None = None, reason: str | None = None) -> Page:
    stmt = db.select(LoginEvent).order_by(LoginEvent.id.desc())
    for column, value in ((LoginEvent.tenant_id, tenant_id), (LoginEvent.user_name, user_name),
                          (LoginEvent.outcome, outcome), (LoginEvent.reason, reason)):
        if value:
            stmt = stmt.where(column == value)
    return paginate(stmt, number)


def oidc_clients(number: int) -> Page:
    return paginate(db.select(OidcClient).order_by(OidcClient.id), number)


@dataclass
class ClientDetail:
    client: OidcClient
    logouts_pending: int
    logouts_given_up: int


def oidc_client_detail(client_id: str) -> ClientDetail:
    client = db.session.execute(db.select(OidcClient).filter_by(client_id=client_id[:48])).scalar_one_or_none()
    if client is None:
        raise AdminError("unknown_app", 404)
    outbox = db.select(db.func.count()).select_from(BackchannelLogout).filter_by(client_id=client.client_id,
                                                                                 delivered_at=None)
    return ClientDetail(client, db.session.scalar(outbox.filter_by(given_up_at=None)),
                        db.session.scalar(outbox.where(BackchannelLogout.given_up_at.isnot(None))))


# --- the operators' audit -------------------------------------------------------------------------


def record(action: str, *, operator: str | None, target: str | None = None, detail: str | None = None,
           remote_addr: str | None = None, request_id: str | None = None) -> None:
    """Adds an entry to the current transaction: it commits with the action it describes."""
    db.session.add(AuditEntry(action=action, operator=(operator or "")[:64] or None, target=(target or "")[:255] or None,
                              detail=(detail or "")[:255] or None, remote_addr=(remote_addr or "")[:64] or None,
                              request_id=request_id))
    log.info("admin_audit action=%s operator=%s target=%s detail=%r", action, operator, target, detail)


def record_now(action: str, **fields) -> None:
    """An entry of its own (sign-ins): written even when nothing else is."""
    try:
        record(action, **fields)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.error("admin_audit_write_failed action=%s", action)


def audit_entries(number: int, operator: str | None = None, action: str | None = None) -> Page:
    stmt = db.select(AuditEntry).order_by(AuditEntry.id.desc())
    if operator:
        stmt = stmt.filter_by(operator=operator)
    if action:
        stmt = stmt.filter_by(action=action)
    return paginate(stmt, number)


def audit_actions() -> list[str]:
    return list(db.session.execute(db.select(AuditEntry.action).distinct().order_by(AuditEntry.action)).scalars())
