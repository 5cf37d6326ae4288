"""KooGallery's own time stamps: `timeStamp` and `currentSyncTime` are yyyyMMddHHmmssSSS in UTC+8
(spec §5). The bridge ignores a sync older than what it stored, so every stamp we send must be
later than the previous one, even two calls in the same millisecond."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))
_FORMAT = "%Y%m%d%H%M%S"


def format_sync_time(moment: datetime) -> str:
    moment = moment.astimezone(CHINA)
    return moment.strftime(_FORMAT) + f"{moment.microsecond // 1000:03d}"


def parse_sync_time(stamp: str) -> datetime:
    return datetime.strptime(stamp[:14], _FORMAT).replace(
        microsecond=int(stamp[14:17].ljust(3, "0")) * 1000, tzinfo=CHINA)


def sync_time_after(last: str | None, now: float) -> str:
    """The stamp for `now` (UNIX seconds), or one millisecond after `last` if that is not later."""
    candidate = format_sync_time(datetime.fromtimestamp(now, CHINA))
    if last and candidate <= last:
        candidate = format_sync_time(parse_sync_time(last) + timedelta(milliseconds=1))
    return candidate


class SyncClock:
    """Strictly increasing stamps within one process (the state DB offers one shared by all)."""

    def __init__(self, now=time.time):
        self._now, self._last, self._lock = now, None, threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._last = sync_time_after(self._last, self._now())
            return self._last
