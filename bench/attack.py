"""The hostile-centre scenario (`--only attack`): one tenant's authentication centre drips its token
answer one byte at a time, and anonymous visitors keep sending that tenant's callbacks with junk
codes (anyone can: a state from `/sso/login?tenant=T`, any code), so the bridge's per-tenant
bulkhead for that centre stays full. Meanwhile the load generator measures /healthz, signed
tenantSyncs and another tenant's workbench logins, first without the attack, then with it.

The bridge runs with the shipped bulkhead (BRIDGE_IDP_MAX_CONCURRENT_PER_TENANT) and total deadline,
and with the circuit breaker held open-ended (BRIDGE_IDP_CIRCUIT_FAILURES very high): a breaker
that opens stops the calls to the centre, and the bulkhead alone is what is measured here."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from bench.scenarios import CST, Bench
from devtools.koogallery import kit_headers

ANSWERED_WITHIN_MS = 2000  # the bar for everyone else while the centre drips
DRIP_INTERVAL = 2.0  # seconds per byte, as in the finding
ATTACKERS = 30
PACE_SECONDS = 2.0  # each attacker's callbacks are at least this far apart
REASON = re.compile(r'data-reason="([^"]+)"')


class DrippingCentre:
    """A tenant's centre on 127.0.0.1 whose token endpoint sends its answer one byte per
    `interval` seconds; it stops dripping to a client that went away and when stopped."""

    def __init__(self, interval: float = DRIP_INTERVAL):
        self.interval, self.stopping, self.calls = interval, threading.Event(), 0
        centre = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 1 << 16))
                centre.calls += 1
                body = json.dumps({"access_token": "a" * 64, "token_type": "Bearer"}).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                self.close_connection = True
                for byte in head.encode() + body:
                    if centre.stopping.is_set():
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the bridge gave up on this call
                    centre.stopping.wait(centre.interval)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> DrippingCentre:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class Attackers:
    """Threads that each loop: start a login at the dripping tenant, come back with a junk code. Each
    sends at most one callback every PACE_SECONDS: enough to refill the bulkhead as soon as the bridge's total
    deadline frees a slot, without turning into a plain flood of the bridge's CPU (a different attack,
    met by the rate limits, which the bench turns off because all its clients share 127.0.0.1)."""

    def __init__(self, bridge_url: str, tenant_code: str, count: int = ATTACKERS):
        self.bridge_url, self.tenant_code, self.count = bridge_url, tenant_code, count
        self.stopping = threading.Event()
        self.outcomes: Counter = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def start(self) -> Attackers:
        for t in self.threads:
            t.start()
        return self

    def _loop(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            browser = requests.Session()
            try:
                start = browser.get(f"{self.bridge_url}/sso/login", params={"tenant": self.tenant_code},
                                    allow_redirects=False, timeout=30)
                state = re.search(r"[?&]state=([A-Za-z0-9]+)", start.headers.get("Location", ""))
                if not state:
                    outcome = f"login start HTTP {start.status_code}"
                else:
                    answer = browser.get(f"{self.bridge_url}/sso/callback", allow_redirects=False, timeout=30,
                                         params={"code": "junk-" + secrets.token_hex(4), "state": state.group(1)})
                    found = REASON.search(answer.text)
                    outcome = f"{answer.status_code} {found.group(1) if found else ''}".strip()
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            finally:
                browser.close()
            with self.lock:
                self.outcomes[outcome] += 1
            self.stopping.wait(max(0.0, PACE_SECONDS - (time.monotonic() - started)))

    def stop(self) -> dict:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=40)
        return dict(self.outcomes)


def _signed(stack, interface: str, body: dict) -> dict:
    answer = requests.post(f"{stack.bridge_url}/produce/produceAPI/v2/{interface}", timeout=30,
                           data=json.dumps(body, ensure_ascii=False).encode(), headers=kit_headers(stack.kit_key, body))
    result = answer.json()
    if result.get("resultCode") != "000000":
        raise RuntimeError(f"{interface} for the dripping tenant: {result}")
    return result


def sync_dripping_tenant(stack, domain: str, code: str = "dripping") -> str:
    """The hostile tenant as the marketplace would set it up: tenant, app credentials, one user."""
    from keys.rsa import encrypt_client_secret, load_private_key

    tenant_id = "bench-dripping-" + secrets.token_hex(6)
    public = load_private_key(stack.config["RSA_PRIVATE_KEY_FILE"]).public_key()

    def stamp() -> str:
        time.sleep(0.002)
        return datetime.now(CST).strftime("%Y%m%d%H%M%S%f")[:17]

    ids = {"tenantId": tenant_id, "instanceId": ""}
    _signed(stack, "tenantSync", {**ids, "orderId": "", "tenantCode": code, "name": "滴漏企业", "domainName": domain,
                                  "flag": 1, "testFlag": 0, "timeStamp": stamp()})
    _signed(stack, "applicationSync", {**ids, "appId": "bench-drip-app", "clientId": "drip-client", "flag": 1,
                                       "clientSecret": encrypt_client_secret("drip-secret", public), "testFlag": 0,
                                       "timeStamp": stamp()})
    s = stamp()
    _signed(stack, "authSync", {**ids, "appId": "bench-drip-app", "currentSyncTime": s, "timeStamp": s, "flag": 1,
                                "testFlag": 0, "userList": [{"userName": "mallory", "name": "Mallory", "orgCode": "D1",
                                                             "role": "user", "enable": "true"}]})
    return tenant_id


def _phases(bench: Bench, suffix: str) -> list[dict]:
    before = len(bench.results)
    bench.healthz(bench.opts.sync_concurrency)
    bench.tenant_sync()
    bench.login_direct(floor=None)
    rows = bench.results[before:]
    for r in rows:
        r["scenario"] += suffix
    return rows


def run_attack(stack, opts, *, log=print, concurrency: int = 8, login_concurrency: int = 4,
               attackers: int = ATTACKERS, drip_interval: float = DRIP_INTERVAL) -> dict:
    """Without, then with the attack; each side /healthz, tenantSync and another tenant's logins."""
    centre = DrippingCentre(drip_interval).start()
    # The shipped bulkhead (the bench's other scenarios raise it), the breaker out of the way.
    shipped = {"IDP_MAX_CONCURRENT_PER_TENANT": "4", "IDP_CIRCUIT_FAILURES": "1000000000"}
    saved = dict(stack.extra_settings)
    stack.extra_settings.update(shipped)
    stack.start_bridge("direct")
    attack = None
    try:
        sync_dripping_tenant(stack, f"{centre.url}/drip")
        small = replace(opts, sync_concurrency=concurrency, login_concurrency=login_concurrency)
        log(f"bench: attack: baseline (healthz@{concurrency}, tenantSync@{concurrency}, "
            f"login_direct@{login_concurrency})")
        quiet = _phases(Bench(stack, small, log=log), " quiet")
        log(f"bench: attack: {attackers} anonymous callbacks at a centre dripping a byte every {drip_interval:g} s")
        attack = Attackers(stack.bridge_url, "dripping", attackers).start()
        deadline = time.monotonic() + 30
        while centre.calls < 4 and time.monotonic() < deadline:  # the bulkhead is full
            time.sleep(0.05)
        held = centre.calls
        loud = _phases(Bench(stack, small, log=log), " attacked")
        outcomes = attack.stop()
        attack = None
    finally:
        if attack is not None:
            attack.stop()
        centre.stop()
        stack.extra_settings.clear()
        stack.extra_settings.update(saved)
    stack.start_bridge("direct")  # back to the settings of the other scenarios
    log(f"  attack: the centre was holding {held} token call(s) when measuring began; "
        f"{centre.calls} in all; attackers' answers {outcomes}")
    return {"quiet": quiet, "attacked": loud, "centre_calls": centre.calls, "attacker_outcomes": outcomes,
            "drip_interval_s": drip_interval, "attackers": attackers,
            "answered_within_ms": ANSWERED_WITHIN_MS,
            "met": all(r["errors"] == 0 and r["p99_ms"] is not None and r["p99_ms"] < ANSWERED_WITHIN_MS
                       for r in loud)}


def attack_table(result: dict) -> str:
    head = ("scenario", "ops", "err", "err %", "ops/s quiet", "ops/s attacked", "p50 ms quiet", "p50 attacked", "p99 ms quiet", "p99 attacked",
            f"attacked p99 < {result['answered_within_ms']} ms, no errors")
    rows = []
    for q, a in zip(result["quiet"], result["attacked"], strict=True):
        total = a["ok"] + a["errors"]
        rows.append((a["scenario"].removesuffix(" attacked"), a["ok"], a["errors"],
                     round(100 * a["errors"] / total, 2) if total else None, q["throughput_per_s"],
                     a["throughput_per_s"], q["p50_ms"], a["p50_ms"], q["p99_ms"],
                     a["p99_ms"], "met" if a["errors"] == 0 and a["p99_ms"] is not None
                     and a["p99_ms"] < result["answered_within_ms"] else "MISSED"))
    cells = [tuple("-" if c is None else str(c) for c in row) for row in (head, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:],
                      f"attackers' answers: {result['attacker_outcomes']}; token calls that reached the centre: "
                      f"{result['centre_calls']}"])
