"""Cost as the data grows: bulk-load a bridge database with a production-sized history, show the
plans of the hot queries on it, time a page of each console list, and run `flask maintenance run`
over it while signed tenantSyncs keep coming. See bench/README.md, "Cost as the data grows".

    python -m bench --scale [F]          # the scenarios on an empty database, then loaded × F, compared
    python -m bench.scale --explain      # own PostgreSQL: load, EXPLAIN (ANALYZE, BUFFERS), console pages

Rows are written with COPY through psycopg, shaped as the app writes them (encrypted columns hold
real ciphertexts of the bench's data key), spread over tenants and over months of age, so that
maintenance has work: about half of the audit rows are past the 180-day retention, most sessions
ended more than 30 days ago, a few percent of tenants were released long ago.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

SIZES = {"tenants": 10_000, "users": 500_000, "audit": 1_000_000, "sessions": 200_000}
# How the audit rows divide between the three audit tables; nonces and OIDC rows come on top.
AUDIT_SHARES = {"kg_sync_call": 0.6, "sso_login_event": 0.3, "admin_audit": 0.1}
EXTRA = {"kg_nonce": 0.1, "oidc_authorization_code": 0.05, "oidc_token": 0.05}  # × SIZES["audit"]
SCALE_APP_ID = "scale-app"
OLD_SYNC_TS = "20260101000000000"  # older than anything the scenarios send: their syncs apply


def sizes(factor: float) -> dict[str, int]:
    return {name: max(1, int(round(count * factor))) for name, count in SIZES.items()}


def _psycopg_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _digest(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


class Loader:
    """COPY the rows in, table by table, one transaction each."""

    def __init__(self, database_url: str, factor: float, data_key: str, *, log=print, seed: int = 11):
        from keys.datakey import SecretBox

        self.url, self.factor, self.log = _psycopg_url(database_url), factor, log
        self.n = sizes(factor)
        self.now = datetime.now(UTC)
        self.rng = random.Random(seed)
        keys = SecretBox([k for k in data_key.split(",") if k])
        # One real ciphertext per kind: every row decrypts, without a Fernet call per row.
        self.secret_enc = keys.encrypt("scale-client-secret")
        self.token_enc = keys.encrypt("scale-centre-token")
        self.tenant_ids = [f"scale-tenant-{i:06d}" for i in range(self.n["tenants"])]
        self.released: set[str] = set()

    def _ago(self, max_days: float) -> datetime:
        return self.now - timedelta(seconds=self.rng.uniform(0, max_days * 86400))

    def load(self) -> dict:
        import psycopg

        started, counts = time.monotonic(), {}
        with psycopg.connect(self.url, autocommit=False) as conn:
            for table, columns, rows in self._tables():
                t0 = time.monotonic()
                with conn.cursor() as cur:
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        count = 0
                        for row in rows:
                            copy.write_row(row)
                            count += 1
                conn.commit()
                counts[table] = count
                self.log(f"  scale: {table:<24} {count:>9,} rows in {time.monotonic() - t0:5.1f} s")
            conn.autocommit = True
            t0 = time.monotonic()
            conn.execute("VACUUM ANALYZE")
            # Write the loaded pages out now: otherwise the next checkpoint does it during the first
            # timed phase, and its CPU is counted as that scenario's PostgreSQL cost.
            conn.execute("CHECKPOINT")
            self.log(f"  scale: VACUUM ANALYZE and CHECKPOINT in {time.monotonic() - t0:.1f} s")
        return {"factor": self.factor, "rows": counts, "seconds": round(time.monotonic() - started, 1)}

    def _tables(self):
        yield "kg_tenant", ("tenant_id", "tenant_code", "name", "domain_name", "test_flag", "last_sync_ts",
                            "deleted_at", "created_at", "updated_at"), self._tenants()
        yield "kg_instance", ("instance_id", "order_id", "order_line_id", "product_id", "sku_code", "status",
                              "test_flag", "released_at", "created_at", "updated_at"), self._instances()
        yield "kg_tenant_instance", ("tenant_id", "instance_id", "order_id", "created_at"), (
            (t, f"inst-{t}", f"order-{t}", self._ago(400)) for t in self.tenant_ids)
        yield "kg_app", ("tenant_id", "app_id", "instance_id", "client_id", "client_secret_enc", "test_flag",
                         "last_sync_ts", "created_at", "updated_at"), (
            (t, SCALE_APP_ID, f"inst-{t}", f"client-{t}", self.secret_enc, False, OLD_SYNC_TS, c, c)
            for t in self.tenant_ids for c in (self._ago(400),))
        yield "kg_user", ("tenant_id", "user_name", "app_id", "name", "org_code", "position", "role", "enabled",
                          "authorized", "mobile", "email", "test_flag", "last_sync_ts", "deleted_at", "created_at",
                          "updated_at"), self._users()
        yield "sso_session", ("id_hash", "tenant_id", "user_name", "name", "role", "org_code", "email", "jit",
                              "created_at", "last_seen_at", "expires_at", "access_token_enc", "refresh_token_enc",
                              "access_expires_at", "ended_at", "end_reason"), self._sessions()
        audit = self.n["audit"]
        yield "kg_sync_call", ("created_at", "request_id", "interface", "tenant_id", "instance_id", "nonce",
                               "result_code", "result_msg", "duration_ms", "remote_addr", "signature_form", "debug",
                               "body"), self._sync_calls(int(audit * AUDIT_SHARES["kg_sync_call"]))
        yield "sso_login_event", ("created_at", "request_id", "tenant_id", "user_name", "outcome", "reason",
                                  "remote_addr"), self._login_events(int(audit * AUDIT_SHARES["sso_login_event"]))
        yield "admin_audit", ("created_at", "request_id", "operator", "action", "target", "remote_addr"), (
            (self._ago(365), f"req-a{i}", f"operator{i % 5}", ("sign_in", "end_sessions", "view")[i % 3],
             self.rng.choice(self.tenant_ids), "10.0.0.9") for i in range(int(audit * AUDIT_SHARES["admin_audit"])))
        yield "kg_nonce", ("nonce", "expires_at", "request_hash", "answer"), (
            (f"scale-nonce-{i}", self.now + timedelta(minutes=self.rng.uniform(-600, 5)), _digest("n", i),
             '{"resultCode":"000000","resultMsg":"success"}') for i in range(int(audit * EXTRA["kg_nonce"])))
        yield "oidc_authorization_code", ("code", "client_id", "redirect_uri", "response_type", "scope", "nonce",
                                          "auth_time", "session_hash", "created_at_ts", "used_at"), self._codes(
            int(audit * EXTRA["oidc_authorization_code"]))
        yield "oidc_token", ("client_id", "token_type", "access_token", "refresh_token", "scope", "issued_at",
                             "access_token_revoked_at", "refresh_token_revoked_at", "expires_in", "session_hash",
                             "code_hash", "refresh_expires_at"), self._tokens(int(audit * EXTRA["oidc_token"]))

    def _tenants(self):
        for i, t in enumerate(self.tenant_ids):
            created = self._ago(400)
            deleted = self._ago(100) if i % 50 == 7 else None  # 2 % deleted (tombstones)
            yield (t, f"scale{i}", f"规模企业 {i}", f"https://idp{i}.scale.example.com", False, OLD_SYNC_TS, deleted,
                   created, created)

    def _instances(self):
        for i, t in enumerate(self.tenant_ids):
            released = i % 33 == 5  # 3 %: released, most of them past the 15-day retention
            released_at = self._ago(200) if released else None
            if released:
                self.released.add(t)
            created = self._ago(400)
            yield (f"inst-{t}", f"order-{t}", "line-1", "prod-1", "sku-std", "RELEASED" if released else "ACTIVE",
                   False, released_at, created, created)

    def _users(self):
        per_tenant, extra = divmod(self.n["users"], len(self.tenant_ids))
        for i, t in enumerate(self.tenant_ids):
            for j in range(per_tenant + (1 if i < extra else 0)):
                created = self._ago(365)
                revoked = j % 40 == 3
                yield (t, f"user{j:04d}", SCALE_APP_ID, f"用户 {j}", f"D{j % 9}", "工程师",
                       "admin" if j == 0 else "user", True, not revoked, f"1380000{j:04d}",
                       f"user{j}@{t}.example.com", False, OLD_SYNC_TS, None, created, created)

    def _sessions(self):
        users_per_tenant = max(1, self.n["users"] // len(self.tenant_ids))
        for i in range(self.n["sessions"]):
            t = self.tenant_ids[self.rng.randrange(len(self.tenant_ids))]
            live = i % 100 == 0  # 1 % open now; the rest ended or expired, over three months
            created = self.now - timedelta(minutes=self.rng.uniform(1, 50)) if live else self._ago(90)
            expires = created + timedelta(hours=12)
            ended = None if live or i % 3 == 0 else created + timedelta(minutes=self.rng.uniform(1, 600))
            last_seen = created + timedelta(minutes=self.rng.uniform(0, 50)) if live else (ended or expires)
            yield (_digest("s", i), t, f"user{self.rng.randrange(users_per_tenant):04d}", "用户", "user", "D1",
                   "user@example.com", False, created, min(last_seen, self.now), expires, self.token_enc,
                   self.token_enc, created + timedelta(hours=2), ended, "logout" if ended else None)

    def _sync_calls(self, count: int):
        interfaces = ("kit:tenantSync", "kit:applicationSync", "kit:authSync", "kit:singleOrgSync",
                      "basic:newInstance")
        for i in range(count):
            t = self.tenant_ids[self.rng.randrange(len(self.tenant_ids))]
            failed = i % 20 == 0  # 5 % refused or failed
            interface = interfaces[i % len(interfaces)]
            yield (self._ago(365), f"req-s{i}", interface, t, f"inst-{t}", f"nonce-{i}",
                   "000002" if failed else "000000", "invalid request" if failed else "success",
                   self.rng.randrange(2, 40), "100.125.0.10", "primary/canonical", False,
                   None if failed else f'{{"tenantId": "{t}", "flag": 1, "testFlag": 0}}')

    def _login_events(self, count: int):
        for i in range(count):
            t = self.tenant_ids[self.rng.randrange(len(self.tenant_ids))]
            refused = i % 10 == 0
            yield (self._ago(365), f"req-l{i}", t, f"user{i % 50:04d}", "refused" if refused else "success",
                   "not_authorised" if refused else None, "203.0.113.7")

    def _codes(self, count: int):
        epoch = int(self.now.timestamp())
        for i in range(count):
            at = epoch - self.rng.randrange(0, 90 * 86400)
            yield (_digest("c", i), "scale-oidc-app", "https://app.example.com/cb", "code", "openid profile", None,
                   at, _digest("s", i), at, self.now)

    def _tokens(self, count: int):
        epoch = int(self.now.timestamp())
        for i in range(count):
            at = epoch - self.rng.randrange(0, 90 * 86400)
            yield ("scale-oidc-app", "Bearer", _digest("at", i), _digest("rt", i), "openid profile", at, 0, 0, 3600,
                   _digest("s", i), _digest("c", i), at + 30 * 86400)


# --- the hot queries, as the app issues them -------------------------------------------------------

def _as_the_app_sends(what: str, statement, **values) -> tuple[str, str, dict]:
    """A statement the app builds once and keeps (its SQL exactly as psycopg gets it), with these values."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    compiled = statement.compile(dialect=dialect())
    return what, str(compiled), {**compiled.params, **values}


def _login_and_session_reads(t: str, u: str, s: str) -> list[tuple[str, str, dict]]:
    from sso.oidc import server
    from tenants import queries

    return [
        _as_the_app_sends("login: tenant by id, its orders and its client (before the centre)",
                          queries._FOR_LOGIN[False, False], tenant_id=t),
        _as_the_app_sends("login: tenant by code, its orders and its client (login page)",
                          queries._FOR_LOGIN[True, False], ref="scale42", code="scale42"),
        _as_the_app_sends("login: tenant, orders and the user (admission; every signed-in request)",
                          queries._WITH_USER, tenant_id=t, user_name=u),
        _as_the_app_sends("OIDC token/userinfo: the session, its tenant, orders and user", server._SESSION_FACTS,
                          id_hash=s),
    ]


def hot_queries(sample: dict) -> list[tuple]:
    """(what, SQL[, parameters]) for each query on a hot path, with values of rows that exist in the
    loaded data. The login's and the OIDC session's reads are the app's own statements; the others
    mirror what SQLAlchemy sends (tenants/upsert.py, sso/sessions.py, sso/oidc/server.py,
    admin/services.py). Writes run inside a rolled-back transaction."""
    t, u, s, d = sample["tenant_id"], sample["user_name"], sample["session_hash"], sample["deep"]
    now = "now()"
    return [*_login_and_session_reads(t, u, s),
        ("tenantSync upsert", f"""INSERT INTO kg_tenant (tenant_id, tenant_code, name, domain_name, test_flag,
            last_sync_ts, created_at, updated_at) VALUES ('{t}', 'scale-x', 'x', 'https://idp.example.com', false,
            '29990101000000000', {now}, {now}) ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name,
            domain_name = excluded.domain_name, last_sync_ts = excluded.last_sync_ts, updated_at = excluded.updated_at
            WHERE kg_tenant.last_sync_ts <= excluded.last_sync_ts RETURNING tenant_id"""),
        ("tenantSync: is the code free", f"""SELECT tenant_id FROM kg_tenant WHERE lower(tenant_code) = 'scale42'
            AND tenant_id != '{t}' AND deleted_at IS NULL LIMIT 1"""),
        ("nonce insert", f"""INSERT INTO kg_nonce (nonce, expires_at, request_hash) VALUES ('explain-nonce',
            {now} + interval '10 minutes', 'h') ON CONFLICT (nonce) DO NOTHING RETURNING nonce"""),
        ("authSync upsert (one of 500 rows)", f"""INSERT INTO kg_user (tenant_id, user_name, app_id, role, enabled,
            authorized, test_flag, last_sync_ts, created_at, updated_at) VALUES ('{t}', '{u}', 'scale-app',
            'user', true, true, false, '29990101000000000', {now}, {now}) ON CONFLICT (tenant_id, user_name)
            DO UPDATE SET enabled = excluded.enabled, last_sync_ts = excluded.last_sync_ts
            WHERE kg_user.last_sync_ts <= excluded.last_sync_ts RETURNING tenant_id, user_name"""),
        ("sync audit row", f"""INSERT INTO kg_sync_call (created_at, request_id, interface, tenant_id, result_code,
            result_msg, duration_ms, debug) VALUES ({now}, 'r', 'kit:tenantSync', '{t}', '000000', 'success', 3,
            false) RETURNING id"""),
        ("login: seats used", f"""SELECT count(*) FROM kg_user WHERE tenant_id = '{t}' AND authorized
            AND deleted_at IS NULL"""),
        ("session per request", f"SELECT * FROM sso_session WHERE id_hash = '{s}'"),
        ("end a tenant's sessions", f"""SELECT id_hash FROM sso_session WHERE tenant_id = '{t}' AND ended_at IS NULL
            FOR UPDATE"""),
        ("OIDC code lookup", f"SELECT * FROM oidc_authorization_code WHERE code = '{_digest('c', 1)}'"),
        ("OIDC token by access token", f"SELECT * FROM oidc_token WHERE access_token = '{_digest('at', 1)}'"),
        ("OIDC token by refresh token", f"SELECT * FROM oidc_token WHERE refresh_token = '{_digest('rt', 1)}'"),
        ("OIDC tokens of a session (logout)", f"SELECT * FROM oidc_token WHERE session_hash = '{_digest('s', 1)}'"),
        ("console: tenants page", """SELECT *, deleted_at IS NOT NULL FROM kg_tenant
            ORDER BY deleted_at IS NOT NULL, tenant_code, tenant_id LIMIT 51"""),
        ("console: tenants, a deep page", f"""SELECT *, deleted_at IS NOT NULL FROM kg_tenant
            WHERE (deleted_at IS NOT NULL, tenant_code, tenant_id) > (false, '{d["tenant_code"]}', '{d["tenant_id"]}')
            ORDER BY deleted_at IS NOT NULL, tenant_code, tenant_id LIMIT 51"""),
        ("console: tenants searched", """SELECT *, deleted_at IS NOT NULL FROM kg_tenant
            WHERE tenant_id ILIKE '%scale42%' OR tenant_code ILIKE '%scale42%' OR name ILIKE '%scale42%'
            ORDER BY deleted_at IS NOT NULL, tenant_code, tenant_id LIMIT 51"""),
        ("console: a tenant's users page", f"""SELECT *, user_name FROM kg_user WHERE tenant_id = '{t}'
            AND deleted_at IS NULL ORDER BY user_name LIMIT 51"""),
        ("console: a tenant's sessions", f"""SELECT * FROM sso_session WHERE tenant_id = '{t}'
            ORDER BY user_name, created_at DESC LIMIT 200"""),
        ("console: sync log page, failures first", """SELECT *, id FROM kg_sync_call WHERE result_code <> '000000'
            ORDER BY id DESC LIMIT 51"""),
        ("console: sync log page, then the successes", """SELECT *, id FROM kg_sync_call WHERE result_code = '000000'
            ORDER BY id DESC LIMIT 51"""),
        ("console: sync log, a deep page of the successes", f"""SELECT *, id FROM kg_sync_call
            WHERE result_code = '000000' AND id < {d["sync_id"]} ORDER BY id DESC LIMIT 51"""),
        ("console: sync log, failures count (capped)", """SELECT count(*) FROM (SELECT * FROM kg_sync_call
            WHERE result_code <> '000000' LIMIT 10001) AS capped"""),
        ("console: sync log, one tenant", f"""SELECT *, id FROM kg_sync_call WHERE tenant_id = '{t}'
            AND result_code = '000000' ORDER BY id DESC LIMIT 51"""),
        ("console: sign-in log page", "SELECT *, id FROM sso_login_event ORDER BY id DESC LIMIT 51"),
        ("console: sign-in log, a deep page", f"""SELECT *, id FROM sso_login_event WHERE id < {d["login_id"]}
            ORDER BY id DESC LIMIT 51"""),
        ("console: operator audit page", "SELECT *, id FROM admin_audit ORDER BY id DESC LIMIT 51"),
        ("maintenance: a batch of sync calls", """SELECT id FROM kg_sync_call
            WHERE created_at < now() - interval '180 days' LIMIT 2000"""),
        ("maintenance: a batch of sessions", """SELECT id_hash FROM sso_session WHERE ended_at < now() - interval
            '30 days' OR expires_at < now() - interval '30 days' LIMIT 2000"""),
    ]


def sample_rows(conn) -> dict:
    t, u = conn.execute("SELECT tenant_id, user_name FROM kg_user WHERE tenant_id LIKE 'scale-tenant-%' "
                        "ORDER BY tenant_id DESC, user_name LIMIT 1").fetchone()
    (s,) = conn.execute("SELECT id_hash FROM sso_session ORDER BY id_hash LIMIT 1").fetchone()
    # Keys near the end of the console's long lists, where a deep page's cursor points.
    deep_tenant = conn.execute("SELECT tenant_code, tenant_id FROM kg_tenant WHERE deleted_at IS NULL "
                               "ORDER BY tenant_code DESC, tenant_id DESC LIMIT 51").fetchall()[-1]
    (sync_id,) = conn.execute("SELECT id FROM kg_sync_call ORDER BY id LIMIT 51").fetchall()[-1]
    (login_id,) = conn.execute("SELECT id FROM sso_login_event ORDER BY id LIMIT 51").fetchall()[-1]
    return {"tenant_id": t, "user_name": u, "session_hash": s,
            "deep": {"tenant_code": deep_tenant[0], "tenant_id": deep_tenant[1], "sync_id": sync_id, "login_id": login_id}}


def explain(database_url: str, *, log=print) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of each hot query; writes are rolled back."""
    import psycopg

    plans = []
    with psycopg.connect(_psycopg_url(database_url)) as conn:
        for what, sql, *parameters in hot_queries(sample_rows(conn)):
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}",
                                *parameters).fetchall()
            conn.rollback()
            text = [r[0] for r in rows]
            seq = [line.strip() for line in text if "Seq Scan" in line]
            plans.append({"query": what, "plan": text, "sequential_scans": seq})
            log(f"-- {what}\n" + "\n".join(text) + "\n")
    return plans


def short_plan(plan: list[str]) -> str:
    """The plan's node lines and execution time, without buffers and planning detail."""
    keep = [line for line in plan if "->" in line or not line.startswith(" ")]
    keep = [line for line in keep if not line.startswith(("Planning", "Buffers"))]
    return "\n".join(keep)


# --- the console's lists ---------------------------------------------------------------------------

# What the console's deep pages are timed at: the 5,000th page of 50 rows (or the last, if the list
# is shorter) and the last page.
DEEP_PAGE = 5_000


def _row_at(conn, runs: list[str], offset: int) -> tuple[int, tuple]:
    """(run, key) of the row `offset` rows down a list made of `runs` (each a SELECT of its key
    columns, in the list's order): what the Next link above that page carries. Found with OFFSET
    once, untimed."""
    for run, sql in enumerate(runs):
        found = conn.execute(f"{sql} LIMIT 1 OFFSET {offset}").fetchone()
        if found is not None:
            return run, tuple(found)
        (rows,) = conn.execute(f"SELECT count(*) FROM ({sql}) AS run").fetchone()
        offset -= rows
    raise ValueError("the list is shorter than that")


def _deep_cursors(conn, size: int) -> dict[str, str]:
    """The cursors of page DEEP_PAGE and of the last page of the long lists."""
    from admin import services

    lists = {
        "tenants": ["SELECT deleted_at IS NOT NULL, tenant_code, tenant_id FROM kg_tenant "
                    "ORDER BY 1, 2, 3"],
        "sync log": ["SELECT id FROM kg_sync_call WHERE result_code <> '000000' ORDER BY id DESC",
                     "SELECT id FROM kg_sync_call WHERE result_code = '000000' ORDER BY id DESC"],
        "sign-in log": ["SELECT id FROM sso_login_event ORDER BY id DESC"],
    }
    cursors = {}
    for name, runs in lists.items():
        rows = sum(conn.execute(f"SELECT count(*) FROM ({sql}) AS run").fetchone()[0] for sql in runs)
        last = max(1, -(-rows // size))
        numbers = {f"page {DEEP_PAGE:,}": DEEP_PAGE} if DEEP_PAGE < last else {}
        numbers[f"last page ({last:,})"] = last
        for label, number in numbers.items():
            if number > 1:
                run, key = _row_at(conn, runs, (number - 1) * size - 1)
                cursors[f"{name}, {label}"] = services.cursor(run, *key)
    return cursors


def console_pages(stack, *, repeat: int = 5, log=print) -> dict[str, float]:
    """Median ms of pages of each console list, through admin.services on the bench's database, as
    the console's views call them (a request context, the bridge's own settings): the first page,
    and for the long lists page DEEP_PAGE and the last page, from the cursor the page above's Next
    link carries."""
    from admin import services
    from app import create_app

    app = create_app({**{k: v for k, v in stack.config.items()}, "DATABASE_URL": stack.database_url,
                      "ALLOW_INSECURE_IDP": True, "LOCAL_DEV": True, "PUBLIC_URL": stack.bridge_url})
    import psycopg

    top = services.Position()
    with psycopg.connect(_psycopg_url(stack.database_url)) as conn:
        tenant_id = sample_rows(conn)["tenant_id"]  # one with users and sessions
        deep = {name: services.Position(after=c) for name, c in _deep_cursors(conn, app.config["ADMIN_PAGE_SIZE"]).items()}
    lists = {"tenants": services.tenant_overview, "sync log": services.sync_calls, "sign-in log": services.login_events}
    pages = {
        "tenants": lambda: services.tenant_overview(top),
        "tenants (search)": lambda: services.tenant_overview(top, "scale42"),
        "a tenant's users and sessions": lambda: services.tenant_detail(tenant_id, top, top),
        "sync log": lambda: services.sync_calls(top),
        "sync log, failures": lambda: services.sync_calls(top, result_code="failed"),
        "sign-in log": lambda: services.login_events(top),
        "operator audit": lambda: services.audit_entries(top),
    }
    for name, at in deep.items():
        read = lists[name.partition(",")[0]]
        pages[name] = lambda read=read, at=at: read(at)
    timings = {}
    with app.test_request_context("/admin/"):
        from extensions import db

        for name, page in pages.items():
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                page()
                samples.append(1000 * (time.perf_counter() - t0))
                db.session.rollback()
            timings[name] = round(sorted(samples)[len(samples) // 2], 1)
            log(f"  console: {name:<32} {timings[name]:>8.1f} ms (median of {repeat})")
        db.session.remove()
        db.engine.dispose()
    return timings


# --- maintenance while syncs come in ---------------------------------------------------------------

PAIRED_WINDOWS = 5  # pairs of sync phases, maintenance deleting / paused
WINDOW_SECONDS = 4.0


def maintenance_under_load(stack, bench, *, log=print, pairs: int = PAIRED_WINDOWS) -> dict:
    """`flask maintenance run` (a subprocess at nice 10, as the shipped timer runs it) under a
    tenantSync load. This machine's speed drifts within a minute by more than the 15 % to be
    judged, so the syncs are measured in pairs of short phases, one while maintenance deletes and
    the next with it paused (SIGSTOP), each compared with its neighbour, never with a phase
    minutes earlier."""
    env = stack.bridge_env()
    bench.opts = copy.copy(bench.opts)
    bench.opts.duration, bench.opts.warmup = min(WINDOW_SECONDS, bench.opts.duration), min(0.5, bench.opts.warmup)
    bench.healthz(bench.opts.sync_concurrency)
    t0 = time.monotonic()
    process = subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "flask", "maintenance", "run"],
                               cwd=str(_root()), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    measured = []
    try:
        time.sleep(2)  # its start-up (imports, the app) is not maintenance's deleting
        while len(measured) < pairs and process.poll() is None:
            during = bench.tenant_sync()
            if process.poll() is not None:
                break  # it finished within the phase: not a pair
            process.send_signal(signal.SIGSTOP)
            try:
                paused = bench.tenant_sync()
            finally:
                process.send_signal(signal.SIGCONT)
            measured.append({"during": during, "paused": paused})
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
    out, err = process.communicate(timeout=3600)
    seconds = round(time.monotonic() - t0, 1)
    if process.returncode != 0:
        raise RuntimeError(f"flask maintenance run failed:\n{out}\n{err[-2000:]}")
    removed = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        if rest.strip().endswith("removed"):
            removed[name] = int(rest.split()[0])
    log(f"  maintenance: {sum(removed.values()):,} rows removed in {seconds} s "
        f"(paused for the other half of {len(measured)} pairs of sync phases): {removed}")
    return {"seconds": seconds, "removed": removed, "pairs": measured}


def maintenance_verdict(pairs: list[dict], limit_percent: float = 15) -> str:
    """The syncs' p99 while maintenance deletes against the neighbouring phase with it paused:
    the median rise over the pairs, and no error in any phase."""
    if not pairs:
        return "syncs' p99 during maintenance: no pair measured (it finished first)"
    rises = [_delta(p["paused"]["p99_ms"], p["during"]["p99_ms"]) for p in pairs]
    errors = sum(p[k]["errors"] for p in pairs for k in ("during", "paused"))
    median = round(statistics.median(rises), 1)
    shown = ", ".join(f"{p['during']['p99_ms']:g}/{p['paused']['p99_ms']:g}" for p in pairs)
    within = "yes" if median <= limit_percent and not errors else "no"
    return (f"syncs' p99 while maintenance deletes / paused, ms: {shown}; median rise {median:+} %, "
            f"errors {errors}; within {limit_percent:g} %: {within}")


def _root():
    from bench.stack import ROOT

    return ROOT


# --- the comparison table --------------------------------------------------------------------------

def comparison(empty: list[dict], scaled: list[dict], limit_percent: float = 15, noise_cores: float = 0.25) -> str:
    """Each scenario's bridge CPU per op and p99, empty vs loaded. `Δ % ÷ floor` compares each as a
    multiple of the CPU per op of the same pass's floor (healthz at that concurrency, or the bare
    Authlib client for the logins), whose own work does not depend on the data: the machine's speed
    drifts between passes (the floors' CPU per op has moved by 10–55 % with no other process
    running), and a request's latency at saturation is its service time, which drifts with it. The
    verdict judges those figures where there are some. A p99 also depends on how many cores other
    people's processes took meanwhile: where that differs by more than `noise_cores` between the
    two passes, the verdict says so instead of judging."""
    by_name, scaled_by_name = ({r["scenario"]: r for r in rows} for rows in (empty, scaled))
    head = ("scenario", "bridge ms/op empty", "scaled", "Δ %", "Δ % ÷ floor", "p99 ms empty", "scaled", "Δ %",
            "Δ % ÷ floor", "other load (cores)", f"within {limit_percent:g} %")
    used_as_floor = {r.get("floor") for r in scaled}
    rows = []
    for r in scaled:
        base = by_name.get(r["scenario"])
        if base is None:
            continue
        cpu0, cpu1 = base["cpu_ms_per_op"].get("bridge"), r["cpu_ms_per_op"].get("bridge")
        p0, p1 = base["p99_ms"], r["p99_ms"]
        dc, dp = _delta(cpu0, cpu1), _delta(p0, p1)
        f0, f1 = by_name.get(base.get("floor") or ""), scaled_by_name.get(r.get("floor") or "")
        dn = _delta_over(cpu0, cpu1, _floor_cpu(f0), _floor_cpu(f1)) if f0 and f1 else None
        dpn = _delta_over(p0, p1, _floor_cpu(f0), _floor_cpu(f1)) if f0 and f1 else None
        load0, load1 = base.get("other_load_cores"), r.get("other_load_cores")
        loads = f"{load0} → {load1}" if load0 is not None and load1 is not None else None
        cpu = dn if dn is not None else dc
        p99 = dpn if dpn is not None else dp
        if r["scenario"] in used_as_floor:
            verdict = "floor"
        elif not cpu0 or cpu is None or p99 is None:
            verdict = "-"
        elif cpu > limit_percent:
            verdict = "no"
        elif loads and abs(load1 - load0) > noise_cores:
            verdict = "CPU yes; p99 not comparable"
        else:
            verdict = "yes" if p99 <= limit_percent else "no"
        rows.append((r["scenario"], cpu0, cpu1, dc, dn, p0, p1, dp, dpn, loads, verdict))
    cells = [tuple("-" if c is None else str(c) for c in row) for row in (head, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _floor_cpu(floor: dict) -> float:
    """All the CPU one floor operation costs (the bridge's for healthz; the client's and the
    simulator's for the bare Authlib client)."""
    return sum(v for v in floor["cpu_ms_per_op"].values() if v)


def _delta_over(before, after, floor_before, floor_after):
    if not (before and after and floor_before and floor_after):
        return None
    return _delta(before / floor_before, after / floor_after)


def _delta(before, after):
    if before is None or after is None or not before:
        return None
    return round(100 * (after / before - 1), 1)


def summary(empty: list[dict], scaled: dict, table) -> str:
    """What `python -m bench --scale` prints after the usual table."""
    rows = scaled["results"]
    maint = scaled["maintenance"]
    lines = ["", f"bench --scale: loaded {sum(scaled['load']['rows'].values()):,} rows in {scaled['load']['seconds']} s "
             f"(× {scaled['load']['factor']:g})", table(rows), "", "against the empty database:",
             comparison(empty, rows)]
    seq = [p["query"] for p in scaled["plans"] if p["sequential_scans"]]
    lines += ["", f"hot queries with a sequential scan: {', '.join(seq) or 'none'} "
                  "(python -m bench.scale --explain prints the plans)"]
    lines += ["", "console pages (ms): " + "; ".join(f"{k} {v}" for k, v in scaled["console_ms"].items())]
    lines += ["", f"flask maintenance run: {sum(maint['removed'].values()):,} rows removed in {maint['seconds']} s",
              maintenance_verdict(maint["pairs"])]
    return "\n".join(lines)


def run_scaled(stack, bench_factory, run_scenarios, factor: float, *, oidc_registered: bool, log=print) -> dict:
    """After the empty-database run: load, the same scenarios again, the plans, the console pages,
    and maintenance under a tenantSync load."""
    from bench.scenarios import OIDC_CLIENT_ID

    log(f"bench: loading the database × {factor:g} ({sizes(factor)})")
    loaded = Loader(stack.database_url, factor, stack.config["DATA_KEYS"], log=log).load()
    if oidc_registered:
        stack.flask("apps", "remove", OIDC_CLIENT_ID)  # the OIDC scenario registers it again
    scaled = bench_factory()
    run_scenarios(scaled)
    log("bench: EXPLAIN of the hot queries on the loaded data")
    plans = explain(stack.database_url, log=lambda _m: None)
    for p in plans:
        if p["sequential_scans"]:
            log(f"  sequential scan in {p['query']}: {p['sequential_scans']}")
    log("bench: a page of each console list")
    pages = console_pages(stack, log=log)
    log("bench: flask maintenance run, tenantSync phases with it deleting and paused")
    maint = maintenance_under_load(stack, bench_factory(), log=log)
    return {"load": loaded, "results": scaled.results, "plans": plans, "console_ms": pages, "maintenance": maint}


def main(argv=None) -> int:
    """Standalone: a throwaway PostgreSQL, the migrations, the load, the plans (no servers)."""
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factor", type=float, default=1.0, help="fraction of the full sizes to load")
    p.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each hot query")
    p.add_argument("--short", action="store_true", help="with --explain: node lines only (the README's form)")
    p.add_argument("--console", action="store_true", help="time a page of each console list")
    args = p.parse_args(argv)
    from bench.stack import Stack

    stack = Stack(workers=1, threads=1, sim_workers=1, sim_threads=1, access_log=False, log_level="WARNING")
    try:
        stack.start_database()
        Loader(stack.database_url, args.factor, stack.config["DATA_KEYS"]).load()
        if args.explain:
            for plan in explain(stack.database_url, log=lambda _m: None):
                body = short_plan(plan["plan"]) if args.short else "\n".join(plan["plan"])
                print(f"-- {plan['query']}\n{body}\n", flush=True)
        if args.console:
            console_pages(stack)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
