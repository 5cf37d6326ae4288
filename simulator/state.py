"""Run-time state in one SQLite file (SIM_STATE_DB), shared by the server's threads and by the CLI
in another shell: `flask sim revoke` changes what the running server shows at once.

Each operation opens its own short connection and transaction (WAL mode, writers queue on the
busy timeout); nothing is cached in the process."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulator.clock import sync_time_after

SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, tenant_code TEXT NOT NULL, client_id TEXT NOT NULL, user_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, code_challenge TEXT,
    expires_at REAL NOT NULL, used_at REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, tenant_code TEXT NOT NULL, client_id TEXT NOT NULL,
    user_name TEXT NOT NULL, scope TEXT NOT NULL, expires_at REAL NOT NULL, code TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    sid TEXT NOT NULL, scope TEXT NOT NULL, tenant_code TEXT NOT NULL, user_name TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (sid, scope)
);
CREATE TABLE IF NOT EXISTS faults (
    tenant_code TEXT NOT NULL, kind TEXT NOT NULL, seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_code, kind)
);
CREATE TABLE IF NOT EXISTS user_changes (
    tenant_code TEXT NOT NULL, user_name TEXT NOT NULL, authorised INTEGER, enabled INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant_code, user_name)
);
CREATE TABLE IF NOT EXISTS unbound_tenants (tenant_code TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, tenant_code TEXT NOT NULL, order_id TEXT NOT NULL,
    order_line_id TEXT NOT NULL, status TEXT NOT NULL, expire_time TEXT
);
CREATE TABLE IF NOT EXISTS clock (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

FAULT_KINDS = ("slow", "error5xx", "malformed_json", "expired_codes", "wrong_tenant", "honours_prompt",
               "refuses_prompt", "forgets_sign_in", "domain_id_tenant", "drops_answers", "binds_with_instance")
WORKBENCH = "workbench"  # session scope of the KooGallery account; IdP scopes are "t:<tenantCode>"


def idp_scope(tenant_code: str) -> str:
    return f"t:{tenant_code}"


@dataclass(frozen=True)
class CodeGrant:
    code: str
    tenant_code: str
    client_id: str
    user_name: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    expires_at: float
    used_at: float | None


@dataclass(frozen=True)
class TokenGrant:
    token: str
    kind: str
    tenant_code: str
    client_id: str
    user_name: str
    scope: str
    expires_at: float
    code: str | None


@dataclass(frozen=True)
class UserChange:
    authorised: bool | None
    enabled: bool | None
    deleted: bool


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    tenant_code: str
    order_id: str
    order_line_id: str
    status: str
    expire_time: str | None


class Store:
    def __init__(self, path: str | Path, clock=time.time):
        self.path = str(path)
        self.now = clock
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=15)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)  # commits by itself
        finally:
            db.close()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            # Writers take the lock up front, so two never deadlock upgrading a read lock.
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- authorization codes ---------------------------------------------------------------------

    def issue_code(self, *, tenant_code: str, client_id: str, user_name: str, redirect_uri: str, scope: str,
                   code_challenge: str | None, ttl: float) -> str:
        code = secrets.token_urlsafe(24)
        now = self.now()
        with self._transaction() as db:
            # Old codes are kept a day so a late replay is recognised as such, then forgotten.
            db.execute("DELETE FROM codes WHERE expires_at < ?", (now - 86400,))
            db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                       (code, tenant_code, client_id, user_name, redirect_uri, scope, code_challenge, now + ttl))
        return code

    def redeem_code(self, code: str) -> CodeGrant | None:
        """Mark the code used and return it as it was (used_at shows an earlier use). A code used
        twice also loses the tokens of its first use (RFC 6749 §4.1.2)."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM codes WHERE code = ?", (code,)).fetchone()
            if row is None:
                return None
            if row["used_at"] is None:
                db.execute("UPDATE codes SET used_at = ? WHERE code = ?", (self.now(), code))
            else:
                db.execute("DELETE FROM tokens WHERE code = ?", (code,))
            return CodeGrant(**dict(row))

    # --- tokens ----------------------------------------------------------------------------------

    def issue_tokens(self, *, tenant_code: str, client_id: str, user_name: str, scope: str, access_ttl: float,
                     refresh_ttl: float, code: str | None = None, replaces: str | None = None) -> tuple[str, str]:
        """A new access token and refresh token; `replaces` (a refresh token) is consumed in the same
        transaction, so a refresh token can be used once even by two concurrent requests."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.now()
        with self._transaction() as db:
            if replaces is not None:
                gone = db.execute("DELETE FROM tokens WHERE token = ? AND kind = 'refresh'", (replaces,)).rowcount
                if not gone:
                    raise LookupError("refresh token already used")
            db.execute("DELETE FROM tokens WHERE expires_at < ?", (now,))
            db.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                (access, "access", tenant_code, client_id, user_name, scope, now + access_ttl, code),
                (refresh, "refresh", tenant_code, client_id, user_name, scope, now + refresh_ttl, code),
            ])
        return access, refresh

    def token(self, token: str, kind: str) -> TokenGrant | None:
        """A live token of that kind, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM tokens WHERE token = ? AND kind = ? AND expires_at > ?",
                             (token, kind, self.now())).fetchone()
        return TokenGrant(**dict(row)) if row else None

    def revoke_user_tokens(self, tenant_code: str, user_name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tokens WHERE tenant_code = ? AND user_name = ?", (tenant_code, user_name))

    # --- browser sign-ins ------------------------------------------------------------------------

    def sign_in(self, sid: str, scope: str, tenant_code: str, user_name: str, ttl: float) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (self.now(),))
            db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?)",
                       (sid, scope, tenant_code, user_name, self.now() + ttl))

    def signed_in(self, sid: str | None, scope: str) -> tuple[str, str] | None:
        """(tenant_code, user_name) of the browser's live sign-in for that scope."""
        if not sid:
            return None
        with self._transaction(write=False) as db:
            row = db.execute("SELECT tenant_code, user_name FROM sessions WHERE sid = ? AND scope = ? "
                             "AND expires_at > ?", (sid, scope, self.now())).fetchone()
        return (row["tenant_code"], row["user_name"]) if row else None

    def sign_out(self, sid: str | None, *scopes: str) -> None:
        if not sid:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM sessions WHERE sid = ? AND scope = ?", [(sid, s) for s in scopes])

    def end_user_sessions(self, tenant_code: str, user_name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE tenant_code = ? AND user_name = ?", (tenant_code, user_name))

    # --- faults ----------------------------------------------------------------------------------

    def set_fault(self, tenant_code: str, kind: str, on: bool, seconds: float = 0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._transaction() as db:
            if on:
                db.execute("INSERT OR REPLACE INTO faults VALUES (?, ?, ?)", (tenant_code, kind, seconds))
            else:
                db.execute("DELETE FROM faults WHERE tenant_code = ? AND kind = ?", (tenant_code, kind))

    def faults(self) -> dict[str, dict[str, float]]:
        """{tenant_code: {kind: seconds}} for every fault that is on."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM faults ORDER BY tenant_code, kind").fetchall()
        result: dict[str, dict[str, float]] = {}
        for row in rows:
            result.setdefault(row["tenant_code"], {})[row["kind"]] = row["seconds"]
        return result

    # --- what KooGallery changed since the seed ----------------------------------------------------

    def change_user(self, tenant_code: str, user_name: str, *, authorised: bool | None = None,
                    enabled: bool | None = None, deleted: bool | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO user_changes (tenant_code, user_name) VALUES (?, ?)",
                       (tenant_code, user_name))
            for column, value in (("authorised", authorised), ("enabled", enabled), ("deleted", deleted)):
                if value is not None:
                    db.execute(f"UPDATE user_changes SET {column} = ? WHERE tenant_code = ? AND user_name = ?",
                               (int(value), tenant_code, user_name))

    def user_changes(self) -> dict[tuple[str, str], UserChange]:
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM user_changes").fetchall()
        return {(r["tenant_code"], r["user_name"]): UserChange(
            None if r["authorised"] is None else bool(r["authorised"]),
            None if r["enabled"] is None else bool(r["enabled"]), bool(r["deleted"])) for r in rows}

    def set_tenant_bound(self, tenant_code: str, bound: bool) -> None:
        with self._transaction() as db:
            if bound:
                db.execute("DELETE FROM unbound_tenants WHERE tenant_code = ?", (tenant_code,))
            else:
                db.execute("INSERT OR IGNORE INTO unbound_tenants VALUES (?)", (tenant_code,))

    def unbound_tenants(self) -> set[str]:
        with self._transaction(write=False) as db:
            return {r[0] for r in db.execute("SELECT tenant_code FROM unbound_tenants")}

    # --- orders (instances the bridge created) -----------------------------------------------------

    def record_instance(self, record: InstanceRecord) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?)",
                       (record.instance_id, record.tenant_code, record.order_id, record.order_line_id,
                        record.status, record.expire_time))

    def instances(self) -> list[InstanceRecord]:
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM instances ORDER BY tenant_code, instance_id").fetchall()
        return [InstanceRecord(**dict(r)) for r in rows]

    # --- KooGallery's timeStamp ----------------------------------------------------------------------

    def next_sync_time(self) -> str:
        """A yyyyMMddHHmmssSSS stamp later than any this state file handed out before, whichever
        process asked (the bridge ignores a sync older than what it has)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM clock WHERE name = 'sync'").fetchone()
            stamp = sync_time_after(row["value"] if row else None, self.now())
            db.execute("INSERT OR REPLACE INTO clock VALUES ('sync', ?)", (stamp,))
        return stamp

    def reset(self) -> None:
        """Forget everything but the sync clock: back to the seed."""
        with self._transaction() as db:
            for table in ("codes", "tokens", "sessions", "faults", "user_changes", "unbound_tenants", "instances"):
                db.execute(f"DELETE FROM {table}")
