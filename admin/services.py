"""What the console shows and does: read-only views of what KooGallery synced and what users did,
ending sessions, and the operators' audit. No `request` here: views pass in what they parsed."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import Row, Select, literal, tuple_
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


# Rows a list counts exactly. Past this a list says "10000+": counting a table of millions on every
# page view would cost more than the page itself.
COUNT_LIMIT = 10_000
CURSOR_MAX_CHARS = 512
_CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_MAX_INT_KEY = 2**63  # what both databases bind as an integer


@dataclass(frozen=True)
class Run:
    """A stretch of a list: the rows `stmt` selects, in the order of `keys`: columns or expressions,
    unique together within the run, which an index walks in that order (all ascending, or all
    descending)."""

    stmt: Select
    keys: tuple
    descending: bool = False

    def ordered(self, *, reverse: bool = False) -> Select:
        """The rows in order, each with its key (a cursor names a row by it)."""
        down = self.descending != reverse
        return self.stmt.add_columns(*self.keys).order_by(*(key.desc() if down else key.asc() for key in self.keys))

    def beyond(self, values: tuple, *, reverse: bool = False):
        """The rows that follow `values` in this run's order (that precede them with `reverse`)."""
        down = self.descending != reverse
        if len(self.keys) == 1:
            left, right = self.keys[0], literal(values[0], self.keys[0].type)
        else:  # a row comparison: PostgreSQL seeks it along a multicolumn index
            left = tuple_(*self.keys)
            right = tuple_(*(literal(value, key.type) for key, value in zip(self.keys, values, strict=True)))
        return left < right if down else left > right


@dataclass(frozen=True)
class Position:
    """Where a page of a list starts: at the top, or after / before the row a cursor names (the
    cursors of the links on another page of the same list)."""

    after: str | None = None
    before: str | None = None


@dataclass
class Page:
    items: list
    total: int | None  # None: not counted (a search, where counting costs what reading does)
    capped: bool = False  # there are more than `total` (COUNT_LIMIT) rows
    next_cursor: str | None = None  # `after` of the next page, when a row follows this one
    previous_cursor: str | None = None  # `before` of the previous page, when a row precedes this one

    @property
    def total_shown(self) -> str:
        return f"{self.total}+" if self.capped else str(self.total)


def page_size() -> int:
    return current_app.config.get("ADMIN_PAGE_SIZE", 50)


def cursor(run: int, *values) -> str:
    """Names a row of a list: the index of its run and its key there. Plain JSON, base64url'd to
    sit in a link; it only says where to read from, so it need not be signed, only checked."""
    raw = json.dumps([run, *values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _valid_key_value(key, value) -> bool:
    kind = key.type.python_type
    if kind is bool:
        return type(value) is bool
    if kind is int:
        return type(value) is int and -_MAX_INT_KEY < value < _MAX_INT_KEY
    if kind is str and type(value) is str:
        try:
            value.encode()  # a lone surrogate cannot be sent to either database
        except UnicodeEncodeError:
            return False
        return "\x00" not in value and len(value) <= (key.type.length or CURSOR_MAX_CHARS)
    return False


def _read_cursor(text: str, runs: list[Run]) -> tuple[int, tuple]:
    try:
        if len(text) > CURSOR_MAX_CHARS or not _CURSOR_CHARS.fullmatch(text):
            raise ValueError(text)
        run, *values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):  # not base64, not UTF-8, not JSON, not a list
        raise AdminError("bad_cursor", 400) from None
    if type(run) is not int or not 0 <= run < len(runs) or len(values) != len(runs[run].keys) or not all(
            _valid_key_value(key, value) for key, value in zip(runs[run].keys, values, strict=True)):
        raise AdminError("bad_cursor", 400)
    return run, tuple(values)


def _read(runs: list[Run], start: int, values: tuple | None, limit: int, *, reverse: bool) -> list[tuple[int, Row]]:
    """Up to `limit` (run, (item, *key)) pairs from (run `start`, key `values`) on, in list order or,
    with `reverse`, backwards towards the top."""
    found: list[tuple[int, Row]] = []
    for index in (range(start, -1, -1) if reverse else range(start, len(runs))):
        run = runs[index]
        stmt = run.ordered(reverse=reverse)
        if index == start and values is not None:
            stmt = stmt.where(run.beyond(values, reverse=reverse))
        found += [(index, row) for row in db.session.execute(stmt.limit(limit - len(found)))]
        if len(found) >= limit:
            break
    return found


def _count_capped(runs: list[Run]) -> int:
    counted = 0
    for run in runs:
        inner = run.stmt.limit(COUNT_LIMIT + 1 - counted).subquery()
        counted += db.session.scalar(db.select(db.func.count()).select_from(inner))
        if counted > COUNT_LIMIT:
            break
    return counted


def seek(runs: list[Run], position: Position, *, count: bool = True) -> Page:
    """One page of the lists `runs` shown one after the other, read along their indexes from where
    the page starts (keyset paging): nothing above it is read, so a deep page costs what the first
    does, and rows added above it (newer rows, in the newest-first lists) do not shift it. One row
    more than a page is read to know whether another follows. The rows are counted up to
    COUNT_LIMIT unless the page is the whole list (or `count` is off)."""
    if position.after and position.before:
        raise AdminError("bad_cursor", 400)
    size, text = page_size(), position.before or position.after
    start, values = _read_cursor(text, runs) if text else (0, None)
    found = _read(runs, start, values, size + 1, reverse=bool(position.before))
    if position.before:
        if len(found) <= size:  # nothing precedes these rows: that is the first page
            return seek(runs, Position(), count=count)
        found, more, earlier = found[:size][::-1], True, True
    else:
        if values is not None and not found:
            raise AdminError("stale_cursor", 404)  # its rows were removed since, or a made-up cursor
        found, more, earlier = found[:size], len(found) > size, values is not None
    if not (more or earlier):
        counted = len(found)
    else:
        counted = _count_capped(runs) if count else None

    def cursor_of(found_row) -> str:
        run, (_item, *key) = found_row
        return cursor(run, *key)

    return Page([row[0] for _, row in found], None if counted is None else min(counted, COUNT_LIMIT),
                capped=counted is not None and counted > COUNT_LIMIT,
                next_cursor=cursor_of(found[-1]) if more else None,
                previous_cursor=cursor_of(found[0]) if earlier else None)


def _live_first(stmt: Select, deleted_at, keys: tuple) -> list[Run]:
    """The live rows, then the tombstones (deleted_at set), each in `keys` order."""
    return [Run(stmt.where(deleted_at.is_(None)), keys), Run(stmt.where(deleted_at.isnot(None)), keys)]


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


def tenant_overview(position: Position, search: str | None = None) -> tuple[Page, dict[str, TenantSummary]]:
    """One page of tenants (live ones first, by code), each with what an operator checks first.
    Counts are one grouped query per kind for the whole page, not one per tenant."""
    stmt = db.select(Tenant)
    if search:
        # A substring match reads every tenant (no btree index serves it; bench/README.md, "The
        # console's lists"): counting the matches would read them all a second time.
        pattern = f"%{search}%"
        stmt = stmt.where(Tenant.tenant_id.ilike(pattern) | Tenant.tenant_code.ilike(pattern)
                          | Tenant.name.ilike(pattern))
    # Along ix_kg_tenant_console_order, an index on exactly this key.
    page = seek([Run(stmt, (Tenant.deleted_at.isnot(None), Tenant.tenant_code, Tenant.tenant_id))], position,
                count=not search)
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


def tenant_detail(tenant_id: str, users_at: Position, departments_at: Position) -> TenantDetail:
    tenant = get_tenant(tenant_id)
    # Along the primary keys (tenant_id, user_name) and (tenant_id, org_code).
    users = seek(_live_first(db.select(TenantUser).filter_by(tenant_id=tenant.tenant_id), TenantUser.deleted_at,
                             (TenantUser.user_name,)), users_at)
    departments = seek(_live_first(db.select(Department).filter_by(tenant_id=tenant.tenant_id), Department.deleted_at,
                                   (Department.org_code,)), departments_at)
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


def _newest_first(stmt: Select, id_column) -> Run:
    return Run(stmt, (id_column,), descending=True)


def sync_calls(position: Position, tenant_id: str | None = None, result_code: str | None = None) -> Page:
    """Failures first (what an operator is looking for), then the successes, each newest first.
    They are two runs, each read along an index (the partial one for failures), and a cursor names
    the run it is in: no sort of the whole audit table, however long it grows."""
    stmt = db.select(SyncCall)
    if tenant_id:
        stmt = stmt.filter_by(tenant_id=tenant_id)
    # Inline, not a bound parameter: PostgreSQL uses a partial index only for a literal it can match.
    success = db.bindparam("success_code", ResultCode.SUCCESS, literal_execute=True)
    failed = _newest_first(stmt.where(SyncCall.result_code != success), SyncCall.id)
    if result_code == "failed":
        return seek([failed], position)
    if result_code:
        return seek([_newest_first(stmt.filter_by(result_code=result_code), SyncCall.id)], position)
    return seek([failed, _newest_first(stmt.where(SyncCall.result_code == success), SyncCall.id)], position)


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


def login_events(position: Position, tenant_id: str | None = None, user_name: str | None = None,
                 outcome: str | None = None, reason: str | None = None) -> Page:
    stmt = db.select(LoginEvent)
    for column, value in ((LoginEvent.tenant_id, tenant_id), (LoginEvent.user_name, user_name),
                          (LoginEvent.outcome, outcome), (LoginEvent.reason, reason)):
        if value:
            stmt = stmt.where(column == value)
    return seek([_newest_first(stmt, LoginEvent.id)], position)


def oidc_clients(position: Position) -> Page:
    return seek([Run(db.select(OidcClient), (OidcClient.id,))], position)


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


def audit_entries(position: Position, operator: str | None = None, action: str | None = None) -> Page:
    stmt = db.select(AuditEntry)
    if operator:
        stmt = stmt.filter_by(operator=operator)
    if action:
        stmt = stmt.filter_by(action=action)
    return seek([_newest_first(stmt, AuditEntry.id)], position)


def audit_actions() -> list[str]:
    return list(db.session.execute(db.select(AuditEntry.action).distinct().order_by(AuditEntry.action)).scalars())
