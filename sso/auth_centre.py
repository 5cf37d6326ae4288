"""Outbound calls to a tenant's authentication centre (spec §6.2–§6.4), with Authlib's OAuth 2
client. The base URL is only ever a `domainName` stored from a verified tenantSync.

Every centre is an untrusted third party, so each call is fenced in (SECURITY.md, "Hostile
authentication centres"):
- the host is resolved once, every address is checked against common/addresses.py, and the
  connection goes to a checked address (TLS still verifies the certificate for the host name);
- one total deadline covers connect, TLS, the request and every read;
- the answer is read up to a size cap counted after decompression;
- a per-centre concurrency limit and a per-host circuit breaker refuse at once instead of
  queueing request threads behind a centre that does not answer.
Redirects are never followed (a token request answered with a redirect is an error, not something
to chase with the client secret); every answer is validated before use."""

from __future__ import annotations

import io
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MissingTokenError
from authlib.integrations.requests_client import OAuth2Session
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from common import addresses
from common.metrics import (
    AUTH_CENTRE_CIRCUIT_OPEN,
    AUTH_CENTRE_CIRCUIT_OPENED,
    AUTH_CENTRE_REFUSED,
    AUTH_CENTRE_SECONDS,
)

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/oauth2/token"
USERINFO_PATH = "/api/v1/oauth2/userinfo"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
LOGOUT_PATH = "/api/v1/logout"
DEFAULT_EXPIRES_IN = 7200
READ_CHUNK = 16 * 1024
BUSY_RETRY_AFTER_SECONDS = 5

# Outcomes that say the centre itself is failing. invalid_grant (a junk or used code), an
# invalid_client or a 4xx answer come from a centre that works, so they never open the circuit.
CIRCUIT_FAILURES = frozenset({"timeout", "unreachable", "server_error", "garbage", "redirect", "too_large"})
NOT_A_CALL = frozenset({"forbidden_host", "busy", "circuit_open"})


class AuthCentreError(Exception):
    """reason: unreachable, timeout, server_error, garbage, redirect, too_large, invalid_grant,
    invalid_client, unauthorized, forbidden_host, busy, circuit_open, error."""

    def __init__(self, reason: str, detail: str, *, retry_after: int | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Client:
    """A tenant's OAuth client at its authentication centre."""

    domain_name: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_in: int


# --- one call's limits, seen by the sockets it uses ------------------------------------------------

# The deadline and the checked addresses of the call running on this thread. A pooled connection
# is used by one thread at a time, so its socket reads the limits of the call that is using it.
_current = threading.local()


def _time_left() -> float | None:
    deadline = getattr(_current, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


class _DeadlineSocket:
    """A connected (TLS) socket whose every read and write waits at most the per-read timeout and
    never past the call's total deadline: a centre that drips one byte per second gets no more
    than the deadline, however many reads that takes."""

    def __init__(self, sock):
        self._sock = sock
        self._timeout = sock.gettimeout()
        self._io_refs = 0
        self._closed = False

    def _arm(self) -> None:
        left = _time_left()
        if left is None:
            return
        if left <= 0:
            raise TimeoutError("total deadline of the call has passed")
        self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))

    def settimeout(self, value) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self):
        return self._timeout

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize, flags=0):
        self._arm()
        return self._sock.recv(bufsize, flags)

    def sendall(self, data, flags=0):
        self._arm()
        return self._sock.sendall(data, flags)

    def send(self, data, flags=0):
        self._arm()
        return self._sock.send(data, flags)

    def makefile(self, mode="rb", buffering=-1, **_):
        if mode != "rb":  # http.client only ever reads responses through makefile("rb")
            raise ValueError(f"unsupported mode {mode!r}")
        self._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"), buffering if buffering > 0 else io.DEFAULT_BUFFER_SIZE)

    # Same lifetime rule as socket.socket: closed once the connection and every reader are closed.
    def _decref_socketios(self) -> None:
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _pin_key(host: str, port: int) -> tuple[str, int]:
    return host.strip("[]").lower().rstrip("."), port


def _connect_to_checked_address(conn: HTTPConnection):
    """The socket for a new connection, to one of the addresses this call resolved and checked;
    never a second lookup of the name (that is what DNS rebinding exploits)."""
    pinned = getattr(_current, "addresses", {}).get(_pin_key(conn.host, conn.port))
    if not pinned:
        raise AuthCentreError("forbidden_host", f"{conn.host} was not resolved and checked for this call")
    last_error: Exception | None = None
    for family, sockaddr in pinned:
        limits = [t for t in (conn.timeout, _time_left()) if isinstance(t, (int, float))]
        timeout = min(limits) if limits else None
        if timeout is not None and timeout <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)  # TLS handshake runs under it too, as one deadline (CPython ssl)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    if last_error is None or isinstance(last_error, TimeoutError):
        raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out")
    raise NewConnectionError(conn, f"cannot connect to {conn.host}: {type(last_error).__name__}")


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        return _connect_to_checked_address(self)

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        return _connect_to_checked_address(self)

    def connect(self) -> None:
        super().connect()  # SNI and certificate verification for the host name, as usual
        self.sock = _DeadlineSocket(self.sock)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAddressAdapter(HTTPAdapter):
    """requests' adapter, with connections that go only to the addresses the call checked."""

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


# --- limits across calls ------------------------------------------------------------------------


class CircuitBreaker:
    """Per authentication-centre host (host[:port]): after `threshold` consecutive failures
    no call is made for `cooldown` seconds; then one trial call goes through (half-open), and its
    outcome closes the circuit or opens it again. State is per process (each gunicorn worker
    learns on its own, which costs at most `threshold` failed calls per worker)."""

    def __init__(self, threshold: int, cooldown: float, clock=time.monotonic):
        self.threshold = max(1, int(threshold))
        self.cooldown = float(cooldown)
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._trial: set[str] = set()

    def admit(self, host: str) -> bool:
        """True if this call is the half-open trial; AuthCentreError(circuit_open) if refused."""
        now = self.clock()
        with self._lock:
            until = self._open_until.get(host)
            if until is None:
                return False
            if now < until or host in self._trial:
                wait = max(1, math.ceil(until - now)) if now < until else 1
                raise AuthCentreError("circuit_open", f"{host} failed {self._failures.get(host, 0)} times in a row; "
                                      f"not called for {wait}s", retry_after=wait)
            self._trial.add(host)
            return True

    def abandon(self, host: str, trial: bool) -> None:
        if trial:
            with self._lock:
                self._trial.discard(host)

    def record(self, host: str, outcome: str, trial: bool) -> None:
        if outcome in NOT_A_CALL:
            self.abandon(host, trial)
            return
        with self._lock:
            if trial:
                self._trial.discard(host)
            if outcome not in CIRCUIT_FAILURES:
                self._failures.pop(host, None)
                if self._open_until.pop(host, None) is not None:
                    AUTH_CENTRE_CIRCUIT_OPEN.labels(host).set(0)
                    log.warning("auth_centre_circuit_closed host=%s", host)
                return
            failures = self._failures[host] = self._failures.get(host, 0) + 1
            if trial or failures >= self.threshold:
                was_open = host in self._open_until
                self._open_until[host] = self.clock() + self.cooldown
                if not was_open:
                    AUTH_CENTRE_CIRCUIT_OPEN.labels(host).set(1)
                    AUTH_CENTRE_CIRCUIT_OPENED.labels(host).inc()
                    log.warning("auth_centre_circuit_open host=%s failures=%d cooldown_s=%d", host, failures,
                                self.cooldown)


class ConcurrencyLimit:
    """At most `limit` calls in flight to one tenant's centre (its domainName), counted per process:
    with W gunicorn workers a centre holds at most W x limit request threads, and the rest of the
    bridge keeps its threads. Over the limit a call is refused at once, never queued."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def try_acquire(self, centre: str) -> threading.BoundedSemaphore | None:
        with self._lock:
            slot = self._slots.setdefault(centre, threading.BoundedSemaphore(self.limit))
        return slot if slot.acquire(blocking=False) else None


class _PooledOAuth2Session(OAuth2Session):
    """Authlib's OAuth 2 client (the token request, client authentication, the token in the
    userinfo call, the error answers) whose requests go straight to the host's shared adapter.
    requests.Session's own sending (cookie jar, proxies and settings from the environment, hooks,
    redirect handling) does nothing for these calls, which keep no cookie and follow no redirect,
    and it cost a sixth of a login's CPU."""

    _HEADERS = requests.utils.default_headers()

    def __init__(self, adapter: HTTPAdapter, verify, **oauth):
        super().__init__(token_endpoint_auth_method="client_secret_post", **oauth)
        self._adapter, self._verify = adapter, verify

    def request(self, method, url, withhold_token=False, auth=None, *, params=None, data=None, json=None,
                headers=None, timeout=None, allow_redirects=False, stream=True):
        if allow_redirects or not stream or json is not None:
            raise TypeError("centre calls send a form, are streamed (size cap) and never follow a redirect")
        if not withhold_token and auth is None:
            if not self.token:
                raise MissingTokenError()
            auth = self.token_auth
        prepared = requests.Request(method, url, params=params, data=data,
                                    headers={**self._HEADERS, **(headers or {})}, auth=auth).prepare()
        return self._adapter.send(prepared, stream=True, timeout=timeout, verify=self._verify, cert=None,
                                  proxies={})


# --- the client -----------------------------------------------------------------------------------


class AuthCentreClient:
    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int, *, allow_private: bool = False,
                 total_timeout: float = 5, max_response_bytes: int = 64 * 1024, max_concurrent_per_tenant: int = 4,
                 circuit_failures: int = 5, circuit_cooldown: float = 30, allowed_networks=(), verify=True):
        self.total_timeout = float(total_timeout)
        self.timeout = (min(float(connect_timeout), self.total_timeout), min(float(read_timeout), self.total_timeout))
        self.pool_size = pool_size
        self.allow_private = allow_private
        self.allowed_networks = addresses.parse_networks(allowed_networks)
        self.max_response_bytes = int(max_response_bytes)
        self.verify = verify  # a CA bundle path in tests; certificate verification is never off
        self.concurrency = ConcurrencyLimit(max_concurrent_per_tenant)
        self.circuit = CircuitBreaker(circuit_failures, circuit_cooldown)
        self._adapters: dict[str, HTTPAdapter] = {}
        self._lock = threading.Lock()

    def _adapter(self, origin: str) -> HTTPAdapter:
        with self._lock:
            adapter = self._adapters.get(origin)
            if adapter is None:
                adapter = CheckedAddressAdapter(pool_connections=1, pool_maxsize=self.pool_size, max_retries=0)
                self._adapters[origin] = adapter
            return adapter

    def _session(self, base_url: str, **oauth) -> OAuth2Session:
        parts = urlsplit(base_url)
        session = _PooledOAuth2Session(self._adapter(f"{parts.scheme}://{parts.netloc}/"), self.verify, **oauth)
        session.register_compliance_hook("access_token_response", self._token_answer)
        session.register_compliance_hook("refresh_token_response", self._token_answer)
        return session

    def _token_answer(self, resp: requests.Response) -> requests.Response:
        """Authlib compliance hook (the only one, so order cannot matter): refuse what must not be
        parsed as a token answer, and read the rest within the size cap."""
        _check_http(resp)
        return self._read_body(resp)

    def _read_body(self, resp: requests.Response) -> requests.Response:
        """The body, decompressed, read in chunks and abandoned as soon as it passes the cap: a
        gzip bomb costs at most the cap in memory (urllib3 >= 2.6 bounds each decompression step)."""
        cap = self.max_response_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            resp.close()
            raise AuthCentreError("too_large", f"answer of {declared} bytes exceeds {cap}")
        body = bytearray()
        try:
            while chunk := resp.raw.read(min(READ_CHUNK, cap + 1 - len(body)), decode_content=True):
                body += chunk
                if len(body) > cap:
                    resp.close()  # the connection is dropped, not drained
                    raise AuthCentreError("too_large", f"answer exceeds {cap} bytes")
        except ReadTimeoutError:
            resp.close()
            raise AuthCentreError("timeout", f"answer not complete within {self.total_timeout}s") from None
        except (HTTPError, OSError) as exc:  # truncated, undecodable or reset mid-answer
            resp.close()
            raise AuthCentreError("garbage", f"unreadable answer body: {type(exc).__name__}") from None
        resp.raw.release_conn()
        resp._content = bytes(body)
        resp._content_consumed = True
        return resp

    def exchange_code(self, client: Client, code: str, redirect_uri: str, code_verifier: str | None = None) -> Tokens:
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        session = self._session(client.domain_name, client_id=client.client_id, client_secret=client.client_secret)
        token = self._call("token", client.domain_name, lambda: session.fetch_token(
            client.domain_name + TOKEN_PATH, grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
            timeout=self.timeout, allow_redirects=False, stream=True, **extra))
        return _tokens(token)

    def refresh(self, client: Client, refresh_token: str) -> Tokens:
        session = self._session(client.domain_name, client_id=client.client_id, client_secret=client.client_secret,
                                token={"access_token": "", "refresh_token": refresh_token, "token_type": "Bearer"})
        token = self._call("refresh", client.domain_name, lambda: session.refresh_token(
            client.domain_name + TOKEN_PATH, refresh_token=refresh_token, client_id=client.client_id,
            client_secret=client.client_secret, timeout=self.timeout, allow_redirects=False, stream=True))
        tokens = _tokens(token)
        return tokens if tokens.refresh_token else Tokens(tokens.access_token, refresh_token, tokens.expires_in)

    def userinfo(self, domain_name: str, access_token: str) -> dict:
        session = self._session(domain_name, token={"access_token": access_token, "token_type": "Bearer"})

        def call():
            resp = session.get(domain_name + USERINFO_PATH, headers={"Accept": "application/json"},
                               timeout=self.timeout, allow_redirects=False, stream=True)
            _check_http(resp)
            if resp.status_code in (401, 403):
                resp.close()
                raise AuthCentreError("unauthorized", f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                resp.close()
                raise AuthCentreError("error", f"HTTP {resp.status_code}")
            return self._read_body(resp).json()

        info = self._call("userinfo", domain_name, call)
        if not isinstance(info, dict):
            raise AuthCentreError("garbage", "userinfo is not a JSON object")
        user_name = info.get("userName")
        if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 64:
            raise AuthCentreError("garbage", "userinfo has no usable userName")
        return info

    def _resolve_and_check(self, domain_name: str) -> dict:
        """Resolve the centre's host once and check every address it has: {(host, port): [(family, sockaddr)]}."""
        parts = urlsplit(domain_name)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not self.allow_private:
            refusal = addresses.host_refusal(host, self.allowed_networks)
            if refusal:
                raise AuthCentreError("forbidden_host", refusal)
        try:
            literal = addresses.parse_ip_literal(host)
        except ValueError:
            raise AuthCentreError("forbidden_host", f"{host!r} is not a usable host") from None
        try:
            # A literal is never handed to the resolver: getaddrinfo would read `127.1` or `0x7f.1` its own way.
            infos = ([(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, None, None, None,
                       (str(literal), port))] if literal is not None
                     else socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError):
            raise AuthCentreError("unreachable", f"cannot resolve {host}") from None
        pinned = []
        for family, *_, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if not self.allow_private:
                refusal = addresses.address_refusal(sockaddr[0], self.allowed_networks)
                if refusal:
                    raise AuthCentreError("forbidden_host", f"{host} resolves to {refusal}")
            pinned.append((family, sockaddr))
        if not pinned:
            raise AuthCentreError("unreachable", f"{host} has no IPv4 or IPv6 address")
        return {_pin_key(host, port): pinned}

    def _call(self, what: str, domain_name: str, fn):
        parts = urlsplit(domain_name)
        host = parts.netloc
        circuit_key = host  # host[:port]: what fails together
        try:
            trial = self.circuit.admit(circuit_key)
        except AuthCentreError as exc:
            AUTH_CENTRE_REFUSED.labels(host, exc.reason).inc()
            raise
        slot = self.concurrency.try_acquire(domain_name)
        if slot is None:
            self.circuit.abandon(circuit_key, trial)
            AUTH_CENTRE_REFUSED.labels(host, "busy").inc()
            raise AuthCentreError("busy", f"{self.concurrency.limit} calls to this centre already in flight",
                                  retry_after=BUSY_RETRY_AFTER_SECONDS)
        started = time.monotonic()
        outcome = "ok"
        _current.deadline = started + self.total_timeout
        try:
            _current.addresses = self._resolve_and_check(domain_name)
            return fn()
        except AuthCentreError as exc:
            outcome = exc.reason
            raise
        except AuthlibBaseError as exc:
            outcome = exc.error if exc.error in ("invalid_grant", "invalid_client") else "error"
            raise AuthCentreError(outcome, f"{exc.error}: {exc.description or ''}"[:200]) from None
        except requests.Timeout:
            outcome = "timeout"
            raise AuthCentreError("timeout", f"no answer within {self.total_timeout}s") from None
        except requests.ConnectionError:
            outcome = "timeout" if time.monotonic() >= _current.deadline else "unreachable"
            raise AuthCentreError(outcome, f"cannot connect to {host}") from None
        except requests.HTTPError as exc:  # Authlib: a non-JSON 4xx answer
            status = exc.response.status_code if exc.response is not None else "?"
            outcome = "invalid_client" if status in (401, 403) else "error"
            raise AuthCentreError(outcome, f"HTTP {status}") from None
        except (ValueError, RecursionError, requests.RequestException) as exc:  # RecursionError: deeply nested JSON
            outcome = "garbage"
            raise AuthCentreError("garbage", type(exc).__name__) from None
        finally:
            _current.deadline = None
            _current.addresses = {}
            slot.release()
            self.circuit.record(circuit_key, outcome, trial)
            elapsed = time.monotonic() - started
            AUTH_CENTRE_SECONDS.labels(host, what, outcome).observe(elapsed)
            log.info("auth_centre_call what=%s host=%s outcome=%s duration_ms=%d", what, host, outcome, elapsed * 1000)


def _check_http(resp: requests.Response) -> requests.Response:
    """Refuse what must not be read as an answer (before its body is read)."""
    if 300 <= resp.status_code < 400:
        location = resp.headers.get("Location", "?")[:200]
        resp.close()
        raise AuthCentreError("redirect", f"HTTP {resp.status_code} to {location}")
    if resp.status_code >= 500:
        resp.close()
        raise AuthCentreError("server_error", f"HTTP {resp.status_code}")
    return resp


def _tokens(token) -> Tokens:
    access = token.get("access_token")
    if not isinstance(access, str) or not access or len(access) > 4096:
        raise AuthCentreError("garbage", "token answer has no access_token")
    token_type = token.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise AuthCentreError("garbage", f"unexpected token_type {str(token_type)[:20]!r}")
    refresh = token.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else None
    try:
        expires_in = int(token.get("expires_in", DEFAULT_EXPIRES_IN))
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    return Tokens(access, refresh, max(60, min(expires_in, 30 * 86400)))
