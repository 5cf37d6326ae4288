"""A hostile tenant authentication centre for tests: a small threaded HTTP server on 127.0.0.1
(free port) that answers the bridge's token and userinfo calls in the ways a slow, broken or
malicious centre would. Each tenant gets a path prefix with its own behaviour per endpoint:

    centre = HostileCentre().start()
    domain = centre.tenant("drip", token="drip")        # http://127.0.0.1:<port>/drip
    centre.hits("drip", "token")                        # how many token calls arrived

Behaviours: good, drip (one byte per `drip_interval` s, status line included), hang (headers,
then nothing), bomb (gzip that inflates to `bomb_bytes`), huge (a JSON body far over any cap,
no Content-Length), malformed, deep (JSON nested 100 000 levels), redirect_internal (302 to this
server's /steal, which records a hit), error (HTTP 500). `identity` is what userinfo answers.
Every loop is bounded and ends when the server stops or the client goes away.

`slow_loris(url, n)` opens n connections to a server and sends a request's headers one byte at a
time (the client side of the same attack, against the bridge); `slow_body(url, n)` sends whole
headers, then the body one byte at a time."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

BEHAVIOURS = ("good", "drip", "hang", "bomb", "huge", "malformed", "deep", "redirect_internal", "error")
MAX_STALL_SECONDS = 60  # no drip or hang outlives this, whatever the client does


def gzip_bomb(inflated_bytes: int, user_name: str = "alice") -> bytes:
    """A valid userinfo JSON object padded with whitespace to `inflated_bytes`, as concatenated gzip
    members (valid gzip, ~1 KB per MiB inflated, built in a blink): read whole, it signs in."""
    padding = gzip.compress(b" " * (10 << 20), 9) * max(1, inflated_bytes // (10 << 20))
    return gzip.compress(json.dumps({"userName": user_name})[:-1].encode()) + padding + gzip.compress(b"}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._answer()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(length, 1 << 20))
        self._answer()

    def _answer(self):
        centre = self.server.centre
        parts = urlsplit(self.path).path.strip("/").split("/")
        tenant, endpoint = parts[0], parts[-1]
        if tenant == "steal":
            centre._hit("steal", "steal")
            return self._json(200, {"stolen": True})
        spec = centre.tenants.get(tenant)
        if spec is None or endpoint not in ("token", "userinfo"):
            return self._json(404, {"error": "not_found"})
        centre._hit(tenant, endpoint)
        centre.host_headers.append(self.headers.get("Host"))
        behaviour = spec[endpoint]
        if behaviour == "good":
            if endpoint == "token":
                return self._json(200, {"access_token": f"at-{tenant}", "token_type": "Bearer", "expires_in": 7200,
                                        "refresh_token": f"rt-{tenant}"})
            return self._json(200, spec["identity"])
        getattr(self, f"_{behaviour}")()

    def _json(self, status: int, body) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _stalled(self, started: float) -> bool:
        return self.server.centre.stopping.is_set() or time.monotonic() - started > MAX_STALL_SECONDS

    def _drip(self):
        body = json.dumps({"access_token": "a" * 200, "token_type": "Bearer"}).encode()
        raw = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        started = time.monotonic()
        self.close_connection = True
        for byte in raw + body:
            if self._stalled(started):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return  # the bridge gave up
            self.server.centre.stopping.wait(self.server.centre.drip_interval)

    def _hang(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        started = time.monotonic()
        while not self._stalled(started):
            self.server.centre.stopping.wait(0.2)

    def _bomb(self):
        raw = self.server.centre.bomb
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        try:
            self.wfile.write(raw)
        except OSError:
            pass

    def _huge(self):
        # Close-delimited (no Content-Length): only a streaming cap stops the read.
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        chunk = b'{"userName": "' + b"x" * (1 << 20)
        try:
            for _ in range(50):
                if self.server.centre.stopping.is_set():
                    return
                self.wfile.write(chunk)
        except OSError:
            pass

    def _malformed(self):
        raw = b'{"access_token": "at", "token_type": "Bearer", "userName": "alice"'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _deep(self):
        raw = b"[" * 100_000 + b"]" * 100_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _redirect_internal(self):
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/steal")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self):
        self._json(500, {"error": "internal"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    centre: HostileCentre

    def handle_error(self, request, client_address):
        pass  # the bridge hanging up on a hostile answer is the expected outcome, not news


class HostileCentre:
    def __init__(self, *, drip_interval: float = 0.5, bomb_bytes: int = 600 << 20):
        self.drip_interval = drip_interval
        self.bomb = gzip_bomb(bomb_bytes)
        self.tenants: dict[str, dict] = {}
        self.stopping = threading.Event()
        self._hits: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.host_headers: list[str] = []
        self.server_names: list[str | None] = []  # SNI seen, when serving TLS
        self.scheme = "http"

    def start(self, *, tls: tuple[str, str] | None = None) -> HostileCentre:
        """tls: (certificate chain file, key file) to serve HTTPS instead."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.centre = self
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_port}"

    @property
    def port(self) -> int:
        return self._server.server_port

    def tenant(self, name: str, *, token: str = "good", userinfo: str = "good", identity: dict | None = None) -> str:
        assert token in BEHAVIOURS and userinfo in BEHAVIOURS and "/" not in name
        self.tenants[name] = {"token": token, "userinfo": userinfo, "identity": identity or {"userName": "alice"}}
        return f"{self.url}/{name}"

    def _hit(self, tenant: str, endpoint: str) -> None:
        with self._lock:
            self._hits[(tenant, endpoint)] = self._hits.get((tenant, endpoint), 0) + 1

    def hits(self, tenant: str, endpoint: str | None = None) -> int:
        with self._lock:
            return sum(n for (t, e), n in self._hits.items() if t == tenant and endpoint in (None, e))

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def slow_loris(url: str, connections: int, *, interval: float = 0.5, duration: float = 10.0,
               stop: threading.Event | None = None, source: str | None = None) -> list[socket.socket]:
    """Open `connections` sockets to `url` (from address `source`) and keep each sending an unfinished
    request, one header byte every `interval` s, for at most `duration` s (in a background thread).
    Returns the sockets."""
    parts = urlsplit(url)
    return _drip(url, connections, f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n", interval=interval,
                 duration=duration, stop=stop, source=source)


def slow_body(url: str, connections: int, *, interval: float = 0.5, duration: float = 10.0,
              stop: threading.Event | None = None, source: str | None = None) -> list[socket.socket]:
    """Like slow_loris, but each request's headers are complete (a POST to `url`'s path announcing a
    1 MB body) and the body is what drips."""
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {1 << 20}\r\n\r\n")
    return _drip(url, connections, head, interval=interval, duration=duration, stop=stop, source=source)


def _drip(url: str, connections: int, head: str, *, interval: float, duration: float,
          stop: threading.Event | None, source: str | None) -> list[socket.socket]:
    parts = urlsplit(url)
    stop = stop or threading.Event()
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=5,
                                        source_address=(source, 0) if source else None)
        sock.sendall(head.encode())
        sockets.append(sock)

    def drip():
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < duration:
            for sock in sockets:
                try:
                    sock.send(b"X")
                except OSError:
                    pass
            stop.wait(interval)
        for sock in sockets:
            sock.close()

    threading.Thread(target=drip, daemon=True).start()
    return sockets
