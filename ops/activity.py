"""Sign-ins and sync calls of the last hours, counted in the database (GROUP BY on the indexed
created_at columns; no rows are loaded): the console's chart and /metrics read the same numbers.
Label values are bounded: outcomes, refusal reasons, interfaces and result codes the bridge knows,
anything else counted as "other"."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Integer, cast, func

from common.clock import utcnow
from extensions import db
from sso.errors import REASONS
from sso.models import LOGIN_OUTCOMES, LoginEvent
from tenants.models import SyncCall
from tenants.services import BASIC_ACTIVITIES, KIT_INTERFACES

INTERFACES = frozenset({f"kit:{name}" for name in KIT_INTERFACES} | {f"basic:{name}" for name in BASIC_ACTIVITIES}
                       | {"kit:unknown", "basic:unknown"})
SIGN_IN_OUTCOMES = ("success", "refused")  # the chart's sign-ins (logouts and ended sessions are not)
OTHER = "other"


def bounded_outcome(outcome: str | None) -> str:
    return outcome if outcome in LOGIN_OUTCOMES else OTHER


def bounded_reason(reason: str | None) -> str:
    return "" if not reason else reason if reason in REASONS else OTHER


def bounded_interface(interface: str | None) -> str:
    return interface if interface in INTERFACES else OTHER


def bounded_result_code(code: str | None) -> str:
    return code if code and re.fullmatch(r"[0-9]{6}", code) else OTHER


def _hour_index(column, since: datetime):
    """Whole hours between `since` and the row's time, computed by the database."""
    if db.engine.dialect.name == "sqlite":  # stored as UTC text; strftime('%s') reads it as UTC
        seconds = cast(func.strftime("%s", column), Integer) - int(since.timestamp())
        return cast(seconds / 3600, Integer)
    return cast(func.floor(func.extract("epoch", column - since) / 3600), Integer)


def login_counts(since: datetime) -> dict[tuple[str, str], int]:
    """{(outcome, reason): count} of login events since `since`."""
    stmt = (db.select(LoginEvent.outcome, LoginEvent.reason, func.count())
            .where(LoginEvent.created_at >= since).group_by(LoginEvent.outcome, LoginEvent.reason))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for outcome, reason, count in db.session.execute(stmt):
        counts[(bounded_outcome(outcome), bounded_reason(reason))] += count
    return dict(counts)


def sync_counts(since: datetime) -> dict[tuple[str, str], int]:
    """{(interface, result_code): count} of sync calls since `since`."""
    stmt = (db.select(SyncCall.interface, SyncCall.result_code, func.count())
            .where(SyncCall.created_at >= since).group_by(SyncCall.interface, SyncCall.result_code))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for interface, code, count in db.session.execute(stmt):
        counts[(bounded_interface(interface), bounded_result_code(code))] += count
    return dict(counts)


@dataclass
class Hourly:
    """Counts per hour for the last `hours` hours: starts[i] is the hour bucket i begins at (UTC);
    series maps a series key (a reason, "success", a result code) to one count per hour."""

    starts: list[datetime]
    series: dict[str, list[int]] = field(default_factory=dict)

    @property
    def totals(self) -> list[int]:
        return [sum(values[i] for values in self.series.values()) for i in range(len(self.starts))]

    @property
    def total(self) -> int:
        return sum(self.totals)

    def add(self, key: str, index: int, count: int) -> None:
        if 0 <= index < len(self.starts):
            self.series.setdefault(key, [0] * len(self.starts))[index] += count


def _hours(hours: int, now: datetime | None) -> tuple[datetime, list[datetime]]:
    end = (now or utcnow()).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = end - timedelta(hours=hours)
    return since, [since + timedelta(hours=i) for i in range(hours)]


def sign_ins_by_hour(hours: int = 24, now: datetime | None = None) -> Hourly:
    """Successful sign-ins ("success") and refusals by reason, per hour."""
    since, starts = _hours(hours, now)
    bucket = _hour_index(LoginEvent.created_at, since).label("bucket")
    stmt = (db.select(bucket, LoginEvent.outcome, LoginEvent.reason, func.count())
            .where(LoginEvent.created_at >= since, LoginEvent.outcome.in_(SIGN_IN_OUTCOMES))
            .group_by(bucket, LoginEvent.outcome, LoginEvent.reason))
    hourly = Hourly(starts)
    for index, outcome, reason, count in db.session.execute(stmt):
        hourly.add("success" if outcome == "success" else bounded_reason(reason) or OTHER, int(index), count)
    return hourly


def sync_calls_by_hour(hours: int = 24, now: datetime | None = None) -> Hourly:
    """Sync calls per hour by result code ("000000" the successes)."""
    since, starts = _hours(hours, now)
    bucket = _hour_index(SyncCall.created_at, since).label("bucket")
    stmt = (db.select(bucket, SyncCall.result_code, func.count()).where(SyncCall.created_at >= since)
            .group_by(bucket, SyncCall.result_code))
    hourly = Hourly(starts)
    for index, code, count in db.session.execute(stmt):
        hourly.add(bounded_result_code(code), int(index), count)
    return hourly


def last_refused_sign_ins(limit: int = 10) -> list[LoginEvent]:
    stmt = db.select(LoginEvent).where(LoginEvent.outcome == "refused").order_by(LoginEvent.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def last_failed_sync_calls(limit: int = 10) -> list[SyncCall]:
    stmt = db.select(SyncCall).where(SyncCall.result_code != "000000").order_by(SyncCall.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))
