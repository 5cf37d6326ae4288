"""A small closed-loop HTTP/1.1 load generator on asyncio streams.

N virtual users each keep their own keep-alive connections (one per server) and cookie jar, and
run one operation after another until the phase ends. Requests are prepared as bytes before the
timed phase where possible, so the client spends its time on the wire, not on building requests:
a few tens of microseconds of CPU per request, so at a few hundred requests a second the client
takes a small share of a core (and that share is measured and reported, see `Phase.client_cpu`).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def cookies(self) -> dict[str, str]:
        jar = {}
        for k, v in self.headers:
            if k == "set-cookie":
                pair = v.split(";", 1)[0]
                name, _, value = pair.partition("=")
                jar[name.strip()] = value.strip()
        return jar


def build_request(method: str, host: str, port: int, target: str, headers: dict | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(raw)
            return await asyncio.wait_for(self._read(), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from None

    async def _read(self) -> Response:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        hmap = dict(headers)
        if hmap.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            body = bytes(body)
        else:
            body = await self.reader.readexactly(int(hmap.get("content-length", "0")))
        if hmap.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.close()
        return Response(status, headers, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class VirtualUser:
    """A client with one connection per server and a cookie jar (cookies ignore ports, as in a
    browser on 127.0.0.1)."""

    def __init__(self, index: int):
        self.index = index
        self.connections: dict[tuple[str, int], Connection] = {}
        self.cookies: dict[str, str] = {}

    def connection(self, host: str, port: int) -> Connection:
        key = (host, port)
        if key not in self.connections:
            self.connections[key] = Connection(host, port)
        return self.connections[key]

    async def send(self, host: str, port: int, raw: bytes) -> Response:
        return await self.connection(host, port).request(raw)

    async def get(self, url: str, *, cookies: bool = True) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {}
        if cookies and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.send(parts.hostname, parts.port, build_request("GET", parts.hostname, parts.port,
                                                                             target, headers))
        if cookies:
            self.cookies.update(response.cookies())
        return response

    def close(self) -> None:
        for c in self.connections.values():
            c.close()


@dataclass
class Phase:
    """What one timed phase measured."""

    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful operations only
    wall: float = 0.0
    client_cpu: float = 0.0  # CPU seconds of this process (all threads) during the phase
    exhausted: bool = False  # ran out of prepared inputs before the time was up
    first_errors: list[str] = field(default_factory=list)

    def note_error(self, message: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(message[:300])

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)  # nearest rank
        return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]

    def summary(self) -> dict:
        p50, p99 = self.percentile(50), self.percentile(99)
        return {"ok": self.ok, "errors": self.errors, "seconds": round(self.wall, 3),
                "throughput_per_s": round(self.throughput, 1),
                "p50_ms": None if p50 is None else round(p50 * 1000, 2),
                "p99_ms": None if p99 is None else round(p99 * 1000, 2),
                "client_cpu_percent_of_core": round(100 * self.client_cpu / self.wall, 1) if self.wall else None,
                "inputs_exhausted": self.exhausted, "first_errors": self.first_errors}


class SharedInputs:
    """A thread-safe iterator over prepared inputs (pre-signed requests, minted codes)."""

    def __init__(self, items: Iterable):
        self._it: Iterator = iter(items)
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            return next(self._it, None)


Operation = Callable[[VirtualUser, object], "asyncio.Future[str | None]"]


async def _closed_loop(users: list[VirtualUser], inputs: SharedInputs, operation, seconds: float,
                       record: bool) -> Phase:
    phase = Phase()
    deadline = time.perf_counter() + seconds

    async def user_loop(vu: VirtualUser):
        while time.perf_counter() < deadline:
            item = inputs.next()
            if item is None:
                phase.exhausted = True
                return
            started = time.perf_counter()
            try:
                error = await operation(vu, item)
            except HttpError as exc:
                error = str(exc)
            if error:
                phase.note_error(error)
            else:
                phase.ok += 1
                if record:
                    phase.latencies.append(time.perf_counter() - started)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(user_loop(vu) for vu in users))
    phase.wall, phase.client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return phase


def run_closed_loop(concurrency: int, inputs: Iterable, operation, seconds: float, warmup: float = 0.0,
                    setup=None) -> Phase:
    """Warm up (not recorded), then run `operation(vu, item)` from `concurrency` virtual users for
    `seconds`. The operation returns None on success or an error message."""
    shared = inputs if isinstance(inputs, SharedInputs) else SharedInputs(inputs)

    async def main() -> Phase:
        users = [VirtualUser(i) for i in range(concurrency)]
        try:
            if setup is not None:
                await asyncio.gather(*(setup(vu) for vu in users))
            if warmup > 0:
                await _closed_loop(users, shared, operation, warmup, record=False)
            return await _closed_loop(users, shared, operation, seconds, record=True)
        finally:
            for vu in users:
                vu.close()

    return asyncio.run(main())


def run_threads(concurrency: int, inputs: Iterable, operation, seconds: float, warmup: float = 0.0,
                setup=None) -> Phase:
    """The same closed loop with blocking clients (the bare Authlib floor): one thread per user;
    `setup(i)` builds a thread's client, `operation(client, item)` returns None or an error."""
    shared = inputs if isinstance(inputs, SharedInputs) else SharedInputs(inputs)
    clients = [setup(i) if setup else None for i in range(concurrency)]

    def loop(client, deadline, phase: Phase, lock, record):
        while time.perf_counter() < deadline:
            item = shared.next()
            if item is None:
                phase.exhausted = True
                return
            started = time.perf_counter()
            try:
                error = operation(client, item)
            except Exception as exc:  # noqa: BLE001 - a failed call is counted, not fatal
                error = f"{type(exc).__name__}: {exc}"
            with lock:
                if error:
                    phase.note_error(error)
                else:
                    phase.ok += 1
                    if record:
                        phase.latencies.append(time.perf_counter() - started)

    def timed(seconds: float, record: bool) -> Phase:
        phase, lock = Phase(), threading.Lock()
        cpu0, t0 = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=loop, args=(c, t0 + seconds, phase, lock, record), daemon=True)
                   for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        phase.wall, phase.client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return phase

    if warmup > 0:
        timed(warmup, record=False)
    return timed(seconds, record=True)


def chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while batch := list(itertools.islice(it, size)):
        yield batch
