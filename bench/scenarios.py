"""The measured scenarios and their floors. Each timed phase is preceded by an unrecorded warm-up,
which also tells how many single-use inputs (signed requests, codes) the timed phase needs; those
are prepared between the warm-up and the timed phase, so their cost is never measured."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bench.loadgen import Phase, VirtualUser, build_request, run_closed_loop, run_threads
from bench.procs import ProcessGroup, Sampler
from bench.stack import HOST, Stack
from devtools.koogallery import kit_headers

CST = timezone(timedelta(hours=8))  # KooGallery's timeStamp is UTC+8
LOGIN_ACCOUNTS = [("huashan", "zhangsan"), ("huashan", "lisi"), ("xihu", "chenjing"), ("xihu", "lisi")]
OIDC_CLIENT_ID = "bench-oidc-app"
OIDC_REDIRECT = "http://127.0.0.1:9/oidc/callback"  # never contacted: codes are read from the Location


@dataclass
class Options:
    duration: float = 10.0
    warmup: float = 2.0
    sync_concurrency: int = 32
    auth_concurrency: int = 1
    login_concurrency: int = 16
    auth_users: int = 500
    tenant_pool: int = 256
    max_inputs: int = 60000
    profile_dir: str | None = None


class SyncClock:
    """Strictly increasing yyyyMMddHHmmssSSS stamps, so every sync is newer than the last."""

    def __init__(self):
        self.next = datetime.now(CST)

    def __call__(self) -> str:
        self.next += timedelta(milliseconds=1)
        return self.next.strftime("%Y%m%d%H%M%S%f")[:17]


class Bench:
    def __init__(self, stack: Stack, opts: Options, log=print):
        self.stack, self.opts, self.log = stack, opts, log
        self.clock = SyncClock()
        self.results: list[dict] = []

    # --- measuring ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.stack.bridge_port

    def _groups(self) -> tuple[ProcessGroup, list[ProcessGroup]]:
        workers = self.stack.bridge.workers()
        groups = [workers, self.stack.simulator.workers()]
        extra = [g for g in (self.stack.postgres(), self.stack.pgbouncer()) if g is not None]
        return workers, groups + extra

    def measure(self, name: str, concurrency: int, inputs, operation, *, setup=None, threads: bool = False,
                floor: str | None = None, note: str = "") -> dict:
        runner = run_threads if threads else run_closed_loop
        workers, groups = self._groups()
        profiler = None
        if self.opts.profile_dir:
            from bench.profile import Profiler

            profiler = Profiler(self.opts.profile_dir)
            profiler.start(name, workers.pids(), self.opts.duration)
        sampler = Sampler(workers, groups).start()
        try:
            phase: Phase = runner(concurrency, inputs, operation, self.opts.duration, setup=setup)
        finally:
            sampler.stop()
            if profiler is not None:
                self.log(profiler.stop(name, top=20))
        ops = max(phase.ok + phase.errors, 1)
        result = {"scenario": name, "concurrency": concurrency, **phase.summary(),
                  "cpu_ms_per_op": {g: round(1000 * sec / ops, 3) for g, sec in sampler.cpu.items()}
                  | {"client": round(1000 * phase.client_cpu / ops, 3)},
                  "cpu_percent_of_core": {g: round(100 * sec / phase.wall, 1) for g, sec in sampler.cpu.items()}
                  if phase.wall else {},
                  # CPU the rest of the machine (other users' work) took meanwhile, in cores: the noise.
                  "other_load_cores": round(max(0.0, sampler.machine_busy - sum(sampler.cpu.values())
                                                - phase.client_cpu) / phase.wall, 2) if phase.wall else None,
                  "bridge_worker_peak_rss_mib": {str(pid): kib // 1024 for pid, kib in sorted(sampler.peak_rss.items())},
                  "floor": floor, "note": note}
        self.results.append(result)
        self.log(f"  {name}: {result['throughput_per_s']}/s p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms "
                 f"errors {result['errors']} (client CPU {result['client_cpu_percent_of_core']}% of a core; "
                 f"bridge CPU {result['cpu_ms_per_op'].get('bridge')} ms/op; other load "
                 f"{result['other_load_cores']} cores)")
        if phase.first_errors:
            self.log(f"    first errors: {phase.first_errors[:3]}")
        return result

    def calibrated(self, name: str, concurrency: int, prepare, operation, *, setup=None, threads: bool = False,
                   guess_per_s: float = 500, floor: str | None = None, note: str = "") -> dict:
        """Warm up on a first batch of single-use inputs (not recorded), then prepare what the
        timed phase needs at the warm-up's rate (with a margin), then measure."""
        runner = run_threads if threads else run_closed_loop
        warmup = max(self.opts.warmup, 0.3)
        batch = prepare(min(self.opts.max_inputs, max(4 * concurrency, int(guess_per_s * warmup))))
        warm = runner(concurrency, batch, operation, warmup, setup=setup)
        rate = max(warm.ok / warm.wall if warm.wall else 0, 1.0) * (2 if warm.exhausted else 1)
        if warm.errors:
            self.log(f"    warm-up errors in {name}: {warm.first_errors[:2]}")
        # Twice the warm-up's rate (a shared machine's load changes within seconds), and never fewer
        # than half the guess: running out early shortens the phase (reported as inputs_exhausted).
        rate = max(2 * rate, guess_per_s / 2)
        count = min(self.opts.max_inputs, int(math.ceil(rate * self.opts.duration)) + 4 * concurrency)
        inputs = prepare(count)
        return self.measure(name, concurrency, inputs, operation, setup=setup, threads=threads, floor=floor,
                            note=note)

    # --- /healthz: the floor of every server-side figure ------------------------------------------

    def healthz(self, concurrency: int) -> dict:
        name = f"healthz@{concurrency}"
        if any(r["scenario"] == name for r in self.results):
            return next(r for r in self.results if r["scenario"] == name)
        raw = build_request("GET", HOST, self.port, "/healthz")

        async def op(vu: VirtualUser, _item):
            r = await vu.send(HOST, self.port, raw)
            return None if r.status == 200 else f"HTTP {r.status}"

        forever = iter(int, 1)
        run_closed_loop(concurrency, forever, op, max(self.opts.warmup, 0.3))
        return self.measure(name, concurrency, forever, op, note="floor: the same server answering /healthz")

    # --- signed sync calls ---------------------------------------------------------------------------

    def _signed(self, interface: str, body: dict) -> bytes:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = kit_headers(self.stack.kit_key, body)  # a fresh nonce, the current time, canonical JSON
        return build_request("POST", HOST, self.port, f"/produce/produceAPI/v2/{interface}", headers, raw)

    @staticmethod
    def _sync_ok(r) -> str | None:
        if r.status == 200 and b'"resultCode":"000000"' in r.body:
            return None
        return f"HTTP {r.status} {r.body[:160]!r}"

    def tenant_sync(self) -> dict:
        pool, counter = self.opts.tenant_pool, iter(range(10**9))

        def prepare(n: int) -> list[bytes]:
            batch = []
            for _ in range(n):
                i = next(counter) % pool
                batch.append(self._signed("tenantSync", {
                    "instanceId": "", "orderId": "", "tenantId": f"bench-tenant-{i:05d}", "tenantCode": f"bench{i}",
                    "name": f"压测企业 {i}", "domainName": f"https://idp{i}.bench.example.com", "flag": 1,
                    "testFlag": 0, "timeStamp": self.clock()}))
            return batch

        async def op(vu: VirtualUser, raw: bytes):
            return self._sync_ok(await vu.send(HOST, self.port, raw))

        c = self.opts.sync_concurrency
        floor = self.healthz(c)["scenario"]
        return self.calibrated(f"tenantSync@{c}", c, prepare, op, guess_per_s=1500, floor=floor,
                               note=f"each request signed with its own nonce; {pool} tenants, adds and updates")

    def auth_sync(self) -> dict:
        n_users = self.opts.auth_users
        users = [{"userName": f"bench.user{i:04d}", "name": f"压测用户 {i}", "orgCode": f"D{i % 7}",
                  "role": "admin" if i % 50 == 0 else "user", "enable": "true", "position": "工程师",
                  "email": f"user{i}@bench.example.com", "mobile": f"1380000{i:04d}"} for i in range(n_users)]

        def prepare(n: int) -> list[bytes]:
            batch = []
            for _ in range(n):
                stamp = self.clock()
                batch.append(self._signed("authSync", {
                    "instanceId": "", "tenantId": "bench-auth-tenant", "appId": "bench-app", "userList": users,
                    "currentSyncTime": stamp, "flag": 1, "testFlag": 0, "timeStamp": stamp}))
            return batch

        async def op(vu: VirtualUser, raw: bytes):
            return self._sync_ok(await vu.send(HOST, self.port, raw))

        c = self.opts.auth_concurrency
        floor = self.healthz(c)["scenario"]
        return self.calibrated(f"authSync{n_users}@{c}", c, prepare, op, guess_per_s=20, floor=floor,
                               note=f"{n_users} users per call, one tenant: the first call (in the warm-up) inserts, "
                                    "the timed calls update every user")

    # --- workbench login -------------------------------------------------------------------------

    def _accounts(self):
        s = self.stack.sim_services()
        accounts = []
        for tenant_code, user_name in LOGIN_ACCOUNTS:
            tenant = s.directory.tenant(tenant_code)
            accounts.append((tenant, s.directory.user(tenant, user_name)))
        return accounts

    def mint_codes(self, n: int) -> list[tuple]:
        """Codes as a workbench launch issues them (the simulator's own Python API on its state DB):
        for the tenant's client, to the registered app login address, no state, no PKCE."""
        s, accounts = self.stack.sim_services(), self._accounts()
        codes = []
        for i in range(n):
            tenant, user = accounts[i % len(accounts)]
            codes.append((tenant, s.oauth.issue_code(tenant, user, client_id=tenant.client_id,
                                                     redirect_uri=self.stack.login_url)))
        return codes

    def _callback_request(self, tenant, code: str) -> bytes:
        query = urlencode({"code": code, "tenant": tenant.tenant_id})
        return build_request("GET", HOST, self.port, f"/sso/callback?{query}")

    def login_floor(self) -> dict:
        """A bare Authlib OAuth2Session doing just the token and userinfo calls, per login."""
        from authlib.integrations.requests_client import OAuth2Session

        self.stack.sim_services().store.reset()  # same starting state as each bridge login phase
        sim, login_url = self.stack.sim_url, self.stack.login_url
        tenants = [t for t in self.stack.sim_services().directory.tenants]

        def setup(_i):
            return {t.tenant_code: OAuth2Session(t.client_id, t.client_secret,
                                                 token_endpoint_auth_method="client_secret_post") for t in tenants}

        def op(sessions, item):
            tenant, code = item
            session = sessions[tenant.tenant_code]
            base = f"{sim}/t/{tenant.tenant_code}/api/v1/oauth2"
            session.fetch_token(f"{base}/token", grant_type="authorization_code", code=code, redirect_uri=login_url,
                                timeout=10)
            info = session.get(f"{base}/userinfo", timeout=10).json()
            return None if info.get("userName") else f"userinfo without userName: {info}"

        c = self.opts.login_concurrency
        return self.calibrated(f"authlib_floor@{c}", c, self.mint_codes, op, setup=setup, threads=True,
                               guess_per_s=300, note="floor: bare Authlib client, token + userinfo at the simulator")

    def login_direct(self, floor: str) -> dict:
        self.stack.sim_services().store.reset()

        def prepare(n):
            return [self._callback_request(t, code) for t, code in self.mint_codes(n)]

        async def op(vu: VirtualUser, raw: bytes):
            r = await vu.send(HOST, self.port, raw)
            if r.status == 302 and "bridge_sid" in r.cookies():
                return None
            return f"HTTP {r.status} location={r.header('location')} {r.body[:120]!r}"

        c = self.opts.login_concurrency
        return self.calibrated(f"login_direct@{c}", c, prepare, op, guess_per_s=300, floor=floor,
                               note="BRIDGE_WORKBENCH_LOGIN=direct: /sso/callback?code&tenant -> token -> userinfo "
                                    "-> admission -> session -> 302")

    def login_reinitiate(self, floor: str) -> dict:
        """reinitiate: the callback restarts a state-bound authorize at the tenant's centre, where
        the browser is signed in, which answers with a code at once: three requests per login."""
        stack = self.stack
        stack.sim_services().store.reset()
        c = self.opts.login_concurrency
        browsers = [stack.sim_sign_in([("huashan", "zhangsan"), ("xihu", "chenjing")]) for _ in range(c)]

        def setup(vu: VirtualUser):
            vu.cookies = dict(browsers[vu.index % len(browsers)])

        def prepare(n):
            return [self._callback_request(t, code) for t, code in self.mint_codes(n)]

        async def op(vu: VirtualUser, raw: bytes):
            for name in ("bridge_flow", "bridge_sid"):  # each login starts without a bridge session
                vu.cookies.pop(name, None)
            r1 = await vu.send(HOST, self.port, raw)
            vu.cookies.update(r1.cookies())
            location = r1.header("location") or ""
            if r1.status != 302 or "/api/v1/oauth2/authorize" not in location:
                return f"callback: HTTP {r1.status} location={location[:120]}"
            r2 = await vu.get(location)
            location = r2.header("location") or ""
            if r2.status != 302 or "state=" not in location:
                return f"authorize: HTTP {r2.status} location={location[:120]}"
            r3 = await vu.get(location)
            if r3.status == 302 and "bridge_sid" in r3.cookies():
                return None
            return f"callback with state: HTTP {r3.status} location={r3.header('location')}"

        return self.calibrated(f"login_reinitiate@{c}", c, prepare, op, setup=_sync_setup(setup), guess_per_s=150,
                               floor=floor, note="BRIDGE_WORKBENCH_LOGIN=reinitiate: callback -> authorize at the "
                                                 "simulator (signed in) -> callback with state -> token -> userinfo "
                                                 "-> session; 3 requests per login")

    # --- OIDC code exchange -----------------------------------------------------------------------

    def oidc_token(self) -> dict:
        stack = self.stack
        out = stack.flask("apps", "register", "--name", "Benchmark app", "--redirect-uri", OIDC_REDIRECT,
                          "--client-id", OIDC_CLIENT_ID)
        secret = re.search(r"client_secret:\s+(\S+)", out).group(1)
        tenant, code = self.mint_codes(1)[0]
        answer = requests.get(f"{stack.bridge_url}/sso/callback", params={"code": code, "tenant": tenant.tenant_id},
                              allow_redirects=False, timeout=15)
        sid = answer.cookies.get("bridge_sid")
        if not sid:
            raise RuntimeError(f"could not sign in to the bridge for the OIDC scenario: HTTP {answer.status_code}")
        authorize = build_request("GET", HOST, self.port, "/oidc/authorize?" + urlencode({
            "response_type": "code", "client_id": OIDC_CLIENT_ID, "redirect_uri": OIDC_REDIRECT,
            "scope": "openid profile email koogallery", "state": "bench"}), {"Cookie": f"bridge_sid={sid}"})
        basic = base64.b64encode(f"{OIDC_CLIENT_ID}:{secret}".encode()).decode()

        def prepare(n: int) -> list[bytes]:
            codes: list[str] = []

            async def mint(vu: VirtualUser, _item):
                r = await vu.send(HOST, self.port, authorize)
                query = parse_qs(urlsplit(r.header("location") or "").query)
                if r.status != 302 or "code" not in query:
                    return f"authorize: HTTP {r.status} {r.header('location')}"
                codes.append(query["code"][0])
                return None

            phase = run_closed_loop(8, range(n), mint, 120)
            if phase.errors:
                self.log(f"    OIDC authorize errors: {phase.first_errors[:2]}")
            return [build_request("POST", HOST, self.port, "/oidc/token", {
                "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
                urlencode({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": OIDC_REDIRECT}).encode()) for code in codes]

        async def op(vu: VirtualUser, raw: bytes):
            r = await vu.send(HOST, self.port, raw)
            if r.status == 200 and b'"id_token"' in r.body:
                return None
            return f"HTTP {r.status} {r.body[:160]!r}"

        c = self.opts.login_concurrency
        floor = self.healthz(c)["scenario"]
        run_closed_loop(1, prepare(2), op, 30)  # the first exchange makes the ID-token signing key
        return self.calibrated(f"oidc_token@{c}", c, prepare, op, guess_per_s=150, floor=floor,
                               note="POST /oidc/token (client_secret_basic): code -> access, refresh and RS256 ID "
                                    "token; codes minted by /oidc/authorize with a signed-in session")


def _sync_setup(fn):
    """run_closed_loop's setup hook is awaited per virtual user; wrap a plain function."""

    async def setup(vu):
        fn(vu)

    return setup
