"""`python -m bench.inprocess`: the hot paths measured inside one process, the steady figures on a
shared machine. The same stack as `python -m bench` (PostgreSQL, the simulator under gunicorn as
the centres), but the bridge runs in this process behind Flask's test client, one call at a time:
CPU of this thread per operation (`time.thread_time`, so the simulator and PostgreSQL are not in
it), SQL statements and commits per operation, and with `--profile` a cProfile of each scenario
and its Python function calls per operation (a count: steady however loaded the machine is)."""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from sqlalchemy import event

from bench.scenarios import CST, LOGIN_ACCOUNTS, OIDC_CLIENT_ID, OIDC_REDIRECT, SyncClock
from bench.stack import Stack
from devtools.koogallery import kit_headers

SCENARIOS = ("floors", "tenantsync", "authsync", "login", "reinitiate", "oidc")


class Counts:
    def __init__(self):
        self.statements = self.commits = 0
        self.last: list[str] = []  # the statements since the last `mark()`, for --show-sql

    def mark(self):
        self.last = []

    def on_statement(self, _conn, _cursor, statement, *_args, **_kw):
        self.statements += 1
        self.last.append(" ".join(statement.split())[:160])

    def on_commit(self, *_args, **_kw):
        self.commits += 1


class InProcess:
    def __init__(self, stack: Stack, calls: int, profile_dir: str | None, show_sql: bool = False):
        self.stack, self.calls, self.profile_dir, self.show_sql = stack, calls, profile_dir, show_sql
        self.clock = SyncClock()
        self.results: list[dict] = []
        for name, value in stack.bridge_env().items():
            if name.startswith("BRIDGE_"):
                os.environ[name] = value
        from app import create_app
        from extensions import db

        self.app = create_app()
        self.counts = Counts()
        with self.app.app_context():
            event.listen(db.engine, "before_cursor_execute", self.counts.on_statement)
            event.listen(db.engine, "commit", self.counts.on_commit)

    def _bridge_policy(self, workbench_login: str) -> None:
        self.app.config["WORKBENCH_LOGIN"] = workbench_login

    @contextmanager
    def _timed(self, name: str, ops: int):
        """Time and count what runs inside; the caller marks with `clock` what is not the bridge's."""
        self.counts.statements = self.counts.commits = 0
        profiler = cProfile.Profile(time.thread_time) if self.profile_dir else None  # CPU, not wall time
        box = {"cpu": 0.0}

        def clock(fn, *args, **kwargs):
            self.counts.mark()
            if profiler:
                profiler.enable()
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                box["cpu"] += time.thread_time() - t0
                if profiler:
                    profiler.disable()

        yield clock
        result = {"scenario": name, "ops": ops, "cpu_ms_per_op": round(1000 * box["cpu"] / ops, 3),
                  "sql_statements_per_op": round(self.counts.statements / ops, 2),
                  "commits_per_op": round(self.counts.commits / ops, 2)}
        self.results.append(result)
        print(f"  {name}: {result['cpu_ms_per_op']} ms/op, {result['sql_statements_per_op']} statements, "
              f"{result['commits_per_op']} commits per op ({ops} ops)", flush=True)
        if self.show_sql:
            print("    statements of the last timed request:\n" + "\n".join(f"      {q}" for q in self.counts.last))
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            # Python function calls per operation: a count, so it does not move with the machine's load.
            result["python_calls_per_op"] = round(stats.total_calls / ops)
            print(f"    {result['python_calls_per_op']} Python function calls per op", flush=True)
            stats.sort_stats("cumulative").print_stats(60)
            Path(self.profile_dir).mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^\w@.-]+", "_", name).strip("_")  # "floor: GET /healthz" → floor_GET_healthz
            (Path(self.profile_dir) / f"{stem}.txt").write_text(out.getvalue(), encoding="utf-8")
            profiler.dump_stats(str(Path(self.profile_dir) / f"{stem}.prof"))

    def floors(self) -> None:
        """What the stack costs before the bridge does anything of its own, measured like the
        scenarios: a request answered by Flask (`GET /healthz`), one prebuilt Core statement through
        the app's session (a primary-key read), five of them and a commit (tenantSync's shape without
        its logic), and the signature check and JSON parse of a tenantSync body. A hot path cannot
        cost less than the floors it is made of."""
        from extensions import db
        from tenants.models import Tenant
        from tenants.parsing import parse_json_object
        from tenants.signing import check_signature_headers, verify_kit_signature

        client = self.app.test_client()
        by_id = db.select(Tenant.__table__).where(Tenant.__table__.c.tenant_id == db.bindparam("tenant_id"))
        body = self._sync_bodies(1)[0]
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = kit_headers(self.stack.kit_key, body)

        def statements(n, commit):
            with self.app.app_context():
                db.session.connection()
                for _ in range(n):
                    db.session.execute(by_id, {"tenant_id": "inproc-tenant-00001"}).first()
                if commit:
                    db.session.commit()

        def signature_and_json():
            sig = check_signature_headers(headers["x-sign"], headers["x-timestamp"], headers["x-nonce"],
                                          int(time.time() * 1000), 60_000)
            verify_kit_signature([self.stack.kit_key], sig, headers["x-timestamp"], raw, parse_json_object(raw, 32))

        steps = (("floor: GET /healthz", lambda: client.get("/healthz")),
                 ("floor: a connection checked out and returned", lambda: statements(0, False)),
                 ("floor: 1 Core statement", lambda: statements(1, False)),
                 ("floor: 5 Core statements + commit", lambda: statements(5, True)),
                 ("floor: signature + JSON of a tenantSync", signature_and_json))
        for name, step in steps:
            for _ in range(100):
                step()
            with self._timed(name, self.calls) as clock:
                for _ in range(self.calls):
                    clock(step)

    def _post_signed(self, client, interface: str, body: dict):
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return client.post(f"/produce/produceAPI/v2/{interface}", data=raw,
                           headers=kit_headers(self.stack.kit_key, body))

    def _sync_bodies(self, n: int, pool: int = 256) -> list[dict]:
        return [{"instanceId": "", "orderId": "", "tenantId": f"inproc-tenant-{i % pool:05d}",
                 "tenantCode": f"inproc{i % pool}", "name": f"压测企业 {i % pool}",
                 "domainName": f"https://idp{i % pool}.bench.example.com", "flag": 1, "testFlag": 0,
                 "timeStamp": self.clock()} for i in range(n)]

    @staticmethod
    def _check_sync(response) -> None:
        if b'"resultCode":"000000"' not in response.data:
            raise RuntimeError(f"sync call failed: {response.data[:200]!r}")

    def tenant_sync(self) -> None:
        client = self.app.test_client()
        for body in self._sync_bodies(300):  # warm-up: adds, compiled statements, pools
            self._check_sync(self._post_signed(client, "tenantSync", body))
        bodies = self._sync_bodies(self.calls)
        with self._timed("tenantSync", len(bodies)) as clock:
            for body in bodies:
                self._check_sync(clock(self._post_signed, client, "tenantSync", body))

    def auth_sync(self, n_users: int = 500) -> None:
        client = self.app.test_client()
        users = [{"userName": f"bench.user{i:04d}", "name": f"压测用户 {i}", "orgCode": f"D{i % 7}",
                  "role": "admin" if i % 50 == 0 else "user", "enable": "true", "position": "工程师",
                  "email": f"user{i}@bench.example.com", "mobile": f"1380000{i:04d}"} for i in range(n_users)]

        def body():
            stamp = self.clock()
            return {"instanceId": "", "tenantId": "inproc-auth-tenant", "appId": "bench-app", "userList": users,
                    "currentSyncTime": stamp, "flag": 1, "testFlag": 0, "timeStamp": stamp}

        for _ in range(3):
            self._check_sync(self._post_signed(client, "authSync", body()))
        calls = max(5, self.calls // 50)
        with self._timed(f"authSync{n_users}", calls) as clock:
            for _ in range(calls):
                self._check_sync(clock(self._post_signed, client, "authSync", body()))

    def _mint(self, n: int):
        s = self.stack.sim_services()
        accounts = [(s.directory.tenant(code), None) for code, _ in LOGIN_ACCOUNTS]
        accounts = [(t, s.directory.user(t, user)) for (t, _), (_, user) in zip(accounts, LOGIN_ACCOUNTS, strict=True)]
        return [(accounts[i % len(accounts)][0],
                 s.oauth.issue_code(accounts[i % len(accounts)][0], accounts[i % len(accounts)][1],
                                    client_id=accounts[i % len(accounts)][0].client_id,
                                    redirect_uri=self.stack.login_url)) for i in range(n)]

    def _login(self, tenant, code) -> str:
        client = self.app.test_client()
        r = client.get("/sso/callback?" + urlencode({"code": code, "tenant": tenant.tenant_id}))
        sid = client.get_cookie("bridge_sid")
        if r.status_code != 302 or sid is None:
            raise RuntimeError(f"login failed: HTTP {r.status_code} {r.headers.get('Location')} {r.data[:200]!r}")
        return sid.value

    def login_direct(self) -> None:
        self._bridge_policy("direct")
        self.stack.sim_services().store.reset()
        for tenant, code in self._mint(20):
            self._login(tenant, code)
        items = self._mint(self.calls // 2)
        with self._timed("login_direct", len(items)) as clock:
            for tenant, code in items:
                clock(self._login, tenant, code)

    def login_reinitiate(self) -> None:
        """Callback → the centre's authorize (this browser is signed in there, outside the timing)
        → callback with state: the bridge's two requests are timed."""
        self._bridge_policy("reinitiate")
        self.stack.sim_services().store.reset()
        centre = requests.Session()
        centre.cookies.update(self.stack.sim_sign_in([("huashan", "zhangsan"), ("xihu", "chenjing")]))

        def one(clock, tenant, code):
            client = self.app.test_client()
            r1 = clock(client.get, "/sso/callback?" + urlencode({"code": code, "tenant": tenant.tenant_id}))
            location = r1.headers.get("Location", "")
            if r1.status_code != 302 or "/api/v1/oauth2/authorize" not in location:
                raise RuntimeError(f"callback: HTTP {r1.status_code} {location[:160]}")
            r2 = centre.get(location, allow_redirects=False, timeout=10)
            back = urlsplit(r2.headers.get("Location", ""))
            if r2.status_code != 302 or "state=" not in back.query:
                raise RuntimeError(f"authorize: HTTP {r2.status_code} {r2.headers.get('Location')}")
            r3 = clock(client.get, f"{back.path}?{back.query}")
            if r3.status_code != 302 or client.get_cookie("bridge_sid") is None:
                raise RuntimeError(f"callback with state: HTTP {r3.status_code} {r3.headers.get('Location')}")

        accounts = [(t, c) for t, c in self._mint(12) if t.tenant_code in ("huashan", "xihu")]
        for tenant, code in accounts:
            one(lambda fn, *a, **k: fn(*a, **k), tenant, code)
        items = [(t, c) for t, c in self._mint(self.calls // 2) if t.tenant_code in ("huashan", "xihu")]
        with self._timed("login_reinitiate", len(items)) as clock:
            for tenant, code in items:
                one(clock, tenant, code)
        self._bridge_policy("direct")

    def oidc_token(self) -> None:
        out = self.stack.flask("apps", "register", "--name", "In-process bench app", "--redirect-uri", OIDC_REDIRECT,
                               "--client-id", OIDC_CLIENT_ID + "-inproc")
        secret = re.search(r"client_secret:\s+(\S+)", out).group(1)
        client_id = OIDC_CLIENT_ID + "-inproc"
        self._bridge_policy("direct")
        tenant, code = self._mint(1)[0]
        browser = self.app.test_client()
        browser.get("/sso/callback?" + urlencode({"code": code, "tenant": tenant.tenant_id}))
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OIDC_REDIRECT,
                           "scope": "openid profile email koogallery", "state": "bench"})

        def codes(n):
            found = []
            for _ in range(n):
                r = browser.get(f"/oidc/authorize?{query}")
                found.append(parse_qs(urlsplit(r.headers["Location"]).query)["code"][0])
            return found

        app_client = self.app.test_client()
        basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()

        def exchange(one_code):
            r = app_client.post("/oidc/token", headers={"Authorization": basic}, data={
                "grant_type": "authorization_code", "code": one_code, "redirect_uri": OIDC_REDIRECT})
            if r.status_code != 200 or "id_token" not in r.get_json():
                raise RuntimeError(f"token: HTTP {r.status_code} {r.data[:200]!r}")

        for one_code in codes(20):
            exchange(one_code)
        items = codes(self.calls // 2)
        with self._timed("oidc_token", len(items)) as clock:
            for one_code in items:
                clock(exchange, one_code)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    p.add_argument("--calls", type=int, default=600, help="operations per scenario (logins: half, authSync: /50)")
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    p.add_argument("--profile", dest="profile_dir", metavar="DIR", help="cProfile each scenario into DIR")
    p.add_argument("--log-level", default="INFO", help="BRIDGE_LOG_LEVEL of the in-process bridge")
    p.add_argument("--show-sql", action="store_true", help="print the SQL of the last operation of each scenario")
    p.add_argument("--output", help="write the figures as JSON here")
    args = p.parse_args(argv)
    selected = args.only.split(",")
    stack = Stack(workers=1, threads=2, sim_workers=2, sim_threads=4, access_log=False, log_level=args.log_level)
    status = 0
    try:
        print(f"bench.inprocess: starting PostgreSQL and the simulator in {stack.dir}", flush=True)
        stack.start()
        bench = InProcess(stack, args.calls, args.profile_dir, args.show_sql)
        steps = {"floors": bench.floors, "tenantsync": bench.tenant_sync, "authsync": bench.auth_sync, "login": bench.login_direct,
                 "reinitiate": bench.login_reinitiate, "oidc": bench.oidc_token}
        for name in SCENARIOS:
            if name in selected:
                steps[name]()
        if args.output:
            Path(args.output).write_text(json.dumps({"results": bench.results, "tz": str(CST)}, indent=2) + "\n",
                                         encoding="utf-8")
    except KeyboardInterrupt:
        status = 130
    finally:
        stack.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
