"""Slow-loris clients against the bridge as it is deployed: gunicorn with the shipped gunicorn.conf.py
behind nginx with a site derived from deploy/nginx-sso-bridge.conf. Through nginx, /healthz and a
signed tenantSync are answered within 2 s while 100 connections drip their headers or their bodies;
straight at gunicorn, the header drip holds every worker thread (why SECURITY.md requires the proxy)."""

from __future__ import annotations

import json
import secrets
import select
import socket
import statistics
import sys
import threading
import time

import pytest
import requests

from tests import factories as f
from tests.helpers import KIT_KEY, empty_database, missing_dependency
from tests.hostile_centre import slow_body, slow_loris
from tests.koogallery import kit_headers
from tests.nginx import APT_COMMAND, Nginx, directive_seconds, find_nginx, limit_conn_per_client
from tests.pg import free_port
from tests.servers import LiveServer, bridge_env

pytestmark = pytest.mark.live

CONNECTIONS = 100
ANSWERED_WITHIN = 2.0  # seconds: what KooGallery and a health check must get meanwhile
WORKERS, THREADS = 1, 4  # small, so that the direct attack needs few sockets; the proxy must not care


@pytest.fixture(scope="session")
def nginx_bin():
    binary = find_nginx()
    if binary is None:
        missing_dependency("nginx", APT_COMMAND)
    return binary


@pytest.fixture(scope="module")
def bridge(base_config, postgres_url, tmp_path_factory):
    """gunicorn exactly as `sso-bridge serve` runs it (gunicorn.conf.py), with a small pool."""
    empty_database(postgres_url)
    port = free_port()
    env = bridge_env(base_config, postgres_url, ALLOW_INSECURE_IDP="true", COOKIE_SECURE="false")
    env.update(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS=str(WORKERS), GUNICORN_THREADS=str(THREADS))
    server = LiveServer([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"], env, port,
                        log_path=tmp_path_factory.mktemp("loris") / "bridge.log")
    yield server
    server.stop()
    empty_database(postgres_url)


@pytest.fixture(scope="module")
def proxy(bridge, nginx_bin):
    server = Nginx(nginx_bin, port=free_port(), upstream_port=bridge.port)
    yield server
    server.stop()


def healthz_seconds(url: str, timeout: float) -> float:
    """How long /healthz took to answer 200; `inf` when it did not within `timeout`."""
    started = time.monotonic()
    try:
        answer = requests.get(f"{url}/healthz", timeout=timeout)
    except requests.Timeout:
        return float("inf")
    assert answer.status_code == 200, answer.text[:300]
    return time.monotonic() - started


def closed_by_peer(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (BlockingIOError, OSError):
        return sock.fileno() == -1


def answer_on(sock: socket.socket, wait: float) -> tuple[int, dict[str, str], str] | None:
    """What the server has answered on `sock` within `wait` s (status, headers, body), or None."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return None
    time.sleep(0.05)  # the whole (small) refusal, not its first segment
    try:
        data = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return None
    if not data.startswith(b"HTTP/"):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body.decode("utf-8", "replace")


def signed_tenant_sync(url: str, code: str) -> tuple[requests.Response, float]:
    body = f.tenant_sync(tenantId=secrets.token_hex(16), tenantCode=code, domainName=f"https://idp.{code}.example.com",
                         instanceId=f"inst-{code}")
    started = time.monotonic()
    answer = requests.post(f"{url}/produce/produceAPI/v2/tenantSync", data=json.dumps(body).encode(),
                           headers=kit_headers(KIT_KEY, body), timeout=10)
    return answer, time.monotonic() - started


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_slow_loris_through_nginx_leaves_healthz_and_tenant_sync_answered(proxy):
    header_timeout = directive_seconds("client_header_timeout")
    stop = threading.Event()
    started = time.monotonic()
    sockets = slow_loris(proxy.url, CONNECTIONS, interval=0.5, duration=header_timeout + 10, stop=stop)
    try:
        time.sleep(1)
        samples = [healthz_seconds(proxy.url, timeout=5) for _ in range(20)]
        sync, sync_s = signed_tenant_sync(proxy.url, "loris")
        # The attack was live all along: nginx was still holding every dripping connection.
        still_open = sum(not closed_by_peer(s) for s in sockets)
        probed_within = time.monotonic() - started

        # ... until client_header_timeout, when nginx drops each one (it never reached gunicorn).
        time.sleep(max(0.0, started + header_timeout + 3 - time.monotonic()))
        dropped = sum(closed_by_peer(s) for s in sockets)
    finally:
        stop.set()

    print(f"\nthrough nginx, {CONNECTIONS} dripping connections: /healthz p50 {statistics.median(samples):.3f}s "
          f"p99 {p99(samples):.3f}s max {max(samples):.3f}s; tenantSync {sync_s:.3f}s; "
          f"open after {probed_within:.1f}s: {still_open}; dropped by {header_timeout + 3:.0f}s: {dropped}")
    assert still_open == CONNECTIONS, "the attack ended before the probes did"
    assert max(samples) < ANSWERED_WITHIN, samples
    assert sync.status_code == 200 and sync.json()["resultCode"] == "000000", sync.text[:300]
    assert sync_s < ANSWERED_WITHIN
    assert dropped == CONNECTIONS, proxy.log_text()


def test_slow_bodies_through_nginx_wait_in_nginx_up_to_the_per_address_limit(proxy):
    """Complete headers, then a 1 MB body dripped from one address: nginx reads bodies before
    passing them on (proxy_request_buffering) and holds `limit_conn` of them; the rest are refused at
    once, each in its caller's format: KooGallery's calls (from 127.0.0.2) with its JSON and a
    retryable 000005, a page (from 127.0.0.3) with a short 429 page in both languages. Other
    addresses' /healthz and tenantSync are answered meanwhile."""
    limit = limit_conn_per_client()
    stop = threading.Event()
    kit = slow_body(f"{proxy.url}/produce/produceAPI/v2/tenantSync", CONNECTIONS, interval=0.5, duration=90,
                    stop=stop, source="127.0.0.2")
    pages = slow_body(f"{proxy.url}/sso/login", CONNECTIONS, interval=0.5, duration=90, stop=stop,
                      source="127.0.0.3")
    try:
        time.sleep(1)
        kit_answers = [answer_on(s, wait=0.05) for s in kit]
        page_answers = [answer_on(s, wait=0.05) for s in pages]
        samples = [healthz_seconds(proxy.url, timeout=3) for _ in range(20)]
        sync, sync_s = signed_tenant_sync(proxy.url, "slowbody")
    finally:
        stop.set()

    kit_refused = [a for a in kit_answers if a is not None]
    page_refused = [a for a in page_answers if a is not None]
    print(f"\nthrough nginx, {CONNECTIONS} dripping bodies from each of two addresses: {limit} held each, "
          f"refused {len(kit_refused)} sync calls and {len(page_refused)} page requests; "
          f"/healthz p99 {p99(samples):.3f}s max {max(samples):.3f}s; tenantSync {sync_s:.3f}s")
    assert (kit_answers.count(None), len(kit_refused)) == (limit, CONNECTIONS - limit), kit_answers
    for status, headers, body in kit_refused:
        assert (status, headers["content-type"], headers["retry-after"]) == (200, "application/json", "5")
        assert json.loads(body)["resultCode"] == "000005", body
    assert (page_answers.count(None), len(page_refused)) == (limit, CONNECTIONS - limit), page_answers
    for status, headers, body in page_refused:
        assert (status, headers["retry-after"], headers["cache-control"]) == (429, "5", "no-store")
        assert headers["content-type"].startswith("text/html") and "请几秒后再试" in body and "try again" in body
    assert max(samples) < ANSWERED_WITHIN, samples
    assert sync.status_code == 200 and sync.json()["resultCode"] == "000000", sync.text[:300]
    assert sync_s < ANSWERED_WITHIN


def test_the_same_slow_loris_straight_at_gunicorn_holds_every_thread(bridge):
    """Why the proxy is required: gthread gives a thread to each connection whose headers are
    arriving, so WORKERS x THREADS dripping connections are enough to stall /healthz."""
    stop = threading.Event()
    slow_loris(bridge.url, CONNECTIONS, interval=0.5, duration=12, stop=stop)
    try:
        time.sleep(1)
        samples = [healthz_seconds(bridge.url, timeout=ANSWERED_WITHIN) for _ in range(3)]
    finally:
        stop.set()
    # Once the drip stops, the threads come back.
    recovered = min(healthz_seconds(bridge.url, timeout=10) for _ in range(3))
    print(f"\nstraight at gunicorn ({WORKERS} worker x {THREADS} threads), {CONNECTIONS} dripping connections: "
          f"/healthz {[f'{s:.3f}s' for s in samples]} (inf = no answer within {ANSWERED_WITHIN}s); "
          f"after the attack {recovered:.3f}s")
    assert all(s == float("inf") for s in samples), samples
    assert recovered < ANSWERED_WITHIN
