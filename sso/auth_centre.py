"""Outbound calls to a tenant's authentication centre (spec §6.2–§6.4), with Authlib's OAuth 2
client. The base URL is only ever a `domainName` stored from a verified tenantSync.

One connection pool per authentication-centre host, shared by every request thread; short
timeouts; redirects are never followed (a token request answered with a redirect is an error,
not something to chase with the client secret); every answer is validated before use."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from requests.adapters import HTTPAdapter

from common.metrics import AUTH_CENTRE_SECONDS

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/oauth2/token"
USERINFO_PATH = "/api/v1/oauth2/userinfo"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
LOGOUT_PATH = "/api/v1/logout"
DEFAULT_EXPIRES_IN = 7200


class AuthCentreError(Exception):
    """reason: unreachable, timeout, server_error, garbage, redirect, invalid_grant,
    invalid_client, unauthorized, forbidden_host, error."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


def _check_http(resp: requests.Response) -> requests.Response:
    """Authlib compliance hook: refuse what must not be parsed as a token answer."""
    if 300 <= resp.status_code < 400:
        raise AuthCentreError("redirect", f"HTTP {resp.status_code} to {resp.headers.get('Location', '?')[:200]}")
    if resp.status_code >= 500:
        raise AuthCentreError("server_error", f"HTTP {resp.status_code}")
    return resp


def check_public_host(base_url: str) -> None:
    """Refuse a host that resolves to a loopback, private, link-local or otherwise non-public
    address: the client secret and tokens never go to the bridge's own network (SSRF)."""
    parts = urlsplit(base_url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AuthCentreError("unreachable", f"cannot resolve {parts.hostname}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise AuthCentreError("forbidden_host", f"{parts.hostname} resolves to non-public {address}")


class AuthCentreClient:
    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int, *, allow_private: bool = False):
        self.timeout = (connect_timeout, read_timeout)
        self.pool_size = pool_size
        self.allow_private = allow_private
        self._adapters: dict[str, HTTPAdapter] = {}
        self._lock = threading.Lock()

    def _adapter(self, origin: str) -> HTTPAdapter:
        with self._lock:
            adapter = self._adapters.get(origin)
            if adapter is None:
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size, max_retries=0)
                self._adapters[origin] = adapter
            return adapter

    def _session(self, base_url: str, **oauth) -> OAuth2Session:
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        # A light per-call session object over the host's shared pool (never closed: closing
        # would close the shared adapter).
        session = OAuth2Session(token_endpoint_auth_method="client_secret_post", **oauth)
        session.mount(origin, self._adapter(origin))
        session.trust_env = False  # no proxy or netrc from the environment gets the secret
        session.register_compliance_hook("access_token_response", _check_http)
        session.register_compliance_hook("refresh_token_response", _check_http)
        return session

    def exchange_code(self, client: Client, code: str, redirect_uri: str, code_verifier: str | None = None) -> Tokens:
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        session = self._session(client.domain_name, client_id=client.client_id, client_secret=client.client_secret)
        token = self._call("token", client.domain_name, lambda: session.fetch_token(
            client.domain_name + TOKEN_PATH, grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
            timeout=self.timeout, allow_redirects=False, **extra))
        return _tokens(token)

    def refresh(self, client: Client, refresh_token: str) -> Tokens:
        session = self._session(client.domain_name, client_id=client.client_id, client_secret=client.client_secret,
                                token={"access_token": "", "refresh_token": refresh_token, "token_type": "Bearer"})
        token = self._call("refresh", client.domain_name, lambda: session.refresh_token(
            client.domain_name + TOKEN_PATH, refresh_token=refresh_token, client_id=client.client_id,
            client_secret=client.client_secret, timeout=self.timeout, allow_redirects=False))
        tokens = _tokens(token)
        return tokens if tokens.refresh_token else Tokens(tokens.access_token, refresh_token, tokens.expires_in)

    def userinfo(self, domain_name: str, access_token: str) -> dict:
        session = self._session(domain_name, token={"access_token": access_token, "token_type": "Bearer"})

        def call():
            resp = session.get(domain_name + USERINFO_PATH, headers={"Accept": "application/json"},
                               timeout=self.timeout, allow_redirects=False)
            _check_http(resp)
            if resp.status_code in (401, 403):
                raise AuthCentreError("unauthorized", f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise AuthCentreError("error", f"HTTP {resp.status_code}")
            return resp.json()

        info = self._call("userinfo", domain_name, call)
        if not isinstance(info, dict):
            raise AuthCentreError("garbage", "userinfo is not a JSON object")
        user_name = info.get("userName")
        if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 64:
            raise AuthCentreError("garbage", "userinfo has no usable userName")
        return info

    def _call(self, what: str, domain_name: str, fn):
        started = time.monotonic()
        host = urlsplit(domain_name).netloc
        outcome = "ok"
        try:
            if not self.allow_private:
                check_public_host(domain_name)
            return fn()
        except AuthCentreError as exc:
            outcome = exc.reason
            raise
        except AuthlibBaseError as exc:
            outcome = exc.error if exc.error in ("invalid_grant", "invalid_client") else "error"
            raise AuthCentreError(outcome, f"{exc.error}: {exc.description or ''}"[:200]) from None
        except requests.Timeout:
            outcome = "timeout"
            raise AuthCentreError("timeout", f"no answer within {self.timeout[1]}s") from None
        except requests.ConnectionError:
            outcome = "unreachable"
            raise AuthCentreError("unreachable", f"cannot connect to {host}") from None
        except requests.HTTPError as exc:  # Authlib: a non-JSON 4xx answer
            status = exc.response.status_code if exc.response is not None else "?"
            outcome = "invalid_client" if status in (401, 403) else "error"
            raise AuthCentreError(outcome, f"HTTP {status}") from None
        except (ValueError, requests.RequestException) as exc:
            outcome = "garbage"
            raise AuthCentreError("garbage", type(exc).__name__) from None
        finally:
            elapsed = time.monotonic() - started
            AUTH_CENTRE_SECONDS.labels(host, what, outcome).observe(elapsed)
            log.info("auth_centre_call what=%s host=%s outcome=%s duration_ms=%d", what, host, outcome, elapsed * 1000)


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
