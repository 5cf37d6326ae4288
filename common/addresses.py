"""The one policy for which hosts the bridge may call: only public Internet addresses, in every
spelling a resolver or an HTTP library would accept, unless the operator allow-lists a network.

Used twice: on the host of a tenantSync `domainName` (no DNS lookup there: a sync must never wait
on a tenant's resolver) and on every address a name resolves to just before connecting to it.
Bottom layer: imports nothing of the bridge."""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOSTS_FILE = "/etc/hosts"

# Refused whatever `ipaddress.is_global` says (its tables differ between Python releases and miss
# several of these: 192.0.0.8, 64:ff9b::/96 and 2002::/16 are "global" to Python 3.11).
_REFUSED_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",          # "this network"; 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",      # carrier-grade NAT (Huawei Cloud's internal services live here)
    "127.0.0.0/8",        # loopback
    "169.254.0.0/16",     # link-local, cloud metadata services
    "192.0.0.0/24",       # IETF protocol assignments
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",     # 6to4 relay anycast
    "198.18.0.0/15",      # benchmarking
    "224.0.0.0/4",        # multicast
    "240.0.0.0/4",        # reserved, and the broadcast address
)]
_REFUSED_V6 = [ipaddress.ip_network(n) for n in (
    "::/8",               # unspecified, loopback, IPv4-mapped and IPv4-compatible forms
    "64:ff9b:1::/48",     # local-use NAT64 (RFC 8215)
    "100::/64",           # discard
    "2001::/23",          # IETF protocol assignments, including Teredo 2001::/32
    "2001:db8::/32", "3fff::/20",  # documentation
    "fc00::/7",           # unique local
    "fe80::/10", "fec0::/10",      # link-local, old site-local
    "ff00::/8",           # multicast
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")

_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".lan")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


def parse_networks(value: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """Operator allow-list: CIDRs as a list or a comma-separated string. ValueError if one is not a CIDR."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    networks = []
    for item in (str(i).strip() for i in items):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not a network in CIDR notation (e.g. 100.64.0.0/10)") from None
    return tuple(networks)


def parse_ipv4_number(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form inet_aton(3) accepts (what resolvers and URL libraries hand to
    connect()): 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
    remaining bytes. `2130706433`, `0x7f000001`, `017700000001`, `127.1` and `0` all parse.
    None when it is not such a number."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            elif part.isdigit():
                values.append(int(part, 10))
            else:
                return None
        except ValueError:
            return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = 0
    for v in leading:
        number = number << 8 | v
    return ipaddress.IPv4Address(number << 8 * (4 - len(leading)) | last)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, or None for a name. Brackets and an IPv6 zone
    are allowed. ValueError for a host that looks numeric but is no address (e.g. `08`, `1.2.3.4.5`):
    libraries disagree on those, so they are never taken for names."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    address = parse_ipv4_number(host)
    if address is None and _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise ValueError(f"{host!r} looks like an IPv4 address but is not one")
    return address


def _in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def address_refusal(address: IPAddress | str, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why the bridge must not connect to this address, or None if it may."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%")[0])
    allowed = tuple(allowed)
    if _in_any(address, allowed):
        return None
    if address.version == 6:
        if getattr(address, "scope_id", None):
            return f"{address} carries an interface zone"
        if address in _NAT64:  # a NAT64 gateway forwards to the IPv4 address in the last 32 bits
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            inner = address_refusal(embedded, allowed)
            return f"{address} is NAT64 for {embedded}: {inner}" if inner else None
        if address in _SIX_TO_FOUR:  # 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD
            embedded = ipaddress.IPv4Address(int(address) >> 80 & 0xFFFFFFFF)
            inner = address_refusal(embedded, allowed)
            return f"{address} is 6to4 for {embedded}: {inner}" if inner else None
        if _in_any(address, _REFUSED_V6):
            return f"{address} is in a reserved, local or tunnelling IPv6 range"
    elif _in_any(address, _REFUSED_V4):
        return f"{address} is a private, loopback, shared or reserved IPv4 address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


class _HostsNames:
    """Names in /etc/hosts (re-read when the file changes): they resolve without DNS, usually to
    the machine itself or its neighbours."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def names(self, path: str) -> frozenset[str]:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return frozenset()
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
        names = set()
        try:
            with open(path, encoding="utf-8", errors="replace") as hosts:
                for line in hosts:
                    fields = line.split("#", 1)[0].split()
                    names.update(name.lower().rstrip(".") for name in fields[1:])
        except OSError:
            return frozenset()
        with self._lock:
            self._cache[path] = (mtime, frozenset(names))
        return frozenset(names)


_hosts = _HostsNames()


def host_refusal(host: str, allowed: Iterable[IPNetwork] = (), *, hosts_file: str | None = None) -> str | None:
    """Why a host (name or literal, as in a URL) must not be called, judged without DNS; None if
    it may be (a name must still have each resolved address checked with `address_refusal`)."""
    name = (host or "").strip().lower()
    if not name:
        return "empty host"
    try:
        literal = parse_ip_literal(name)
    except ValueError as exc:
        return str(exc)
    if literal is not None:
        return address_refusal(literal, allowed)
    name = name.rstrip(".")
    if "." not in name:
        return f"{name!r} is a single-label name (resolved through local search domains)"
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
        return f"{name!r} is a local or internal name"
    hosts_file = hosts_file or HOSTS_FILE
    if name in _hosts.names(hosts_file):
        return f"{name!r} is listed in {hosts_file}"
    return None
