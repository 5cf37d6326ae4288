"""A throwaway nginx in front of the bridge for the live tests: its own prefix, pid and logs in a
temporary directory (never the system service), listening on a free loopback port, with a site derived
from deploy/nginx-sso-bridge.conf by substitution: only the addresses, the TLS lines (plain http on
loopback) and the log path change; every proxy, buffering and timeout directive is the shipped one."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

from tests.servers import ROOT, ServerInTempDir

SITE = ROOT / "deploy" / "nginx-sso-bridge.conf"
APT_COMMAND = "sudo apt-get update && sudo apt-get install -y nginx"
# What keeps slow clients out of gunicorn's threads; the derived site must still carry each one.
SLOW_CLIENT_DIRECTIVES = ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout",
                          "proxy_request_buffering on", "limit_conn ", "client_max_body_size")


def find_nginx() -> str | None:
    binary = os.environ.get("NGINX_BIN") or shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    return binary if binary and os.access(binary, os.X_OK) else None


def _substitute(text: str, pattern: str, replacement: str, *, flags: int = 0, count: int = 1) -> str:
    """Replace what must be in the shipped site, exactly `count` times; anything else is an error."""
    new, found = re.subn(pattern, replacement, text, flags=flags)
    if found != count:
        raise ValueError(f"{SITE.name}: expected {count} match(es) of {pattern!r}, found {found}")
    return new


def derive_site(*, port: int, upstream_port: int, log_dir: Path) -> str:
    site = SITE.read_text()
    site = _substitute(site, r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream_port};")
    site = _substitute(site, r"^server \{\s*listen 80;.*?^\}\n", "", flags=re.S | re.M)  # the http->https redirect
    site = _substitute(site, r"listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    site = _substitute(site, r"^\s*listen \[::\]:443 ssl http2;\n", "", flags=re.M)
    site = _substitute(site, r"^\s*ssl_\w+ [^\n]*\n", "", flags=re.M, count=5)
    site = _substitute(site, r"access_log /var/log/nginx/sso-bridge\.access\.log", f"access_log {log_dir}/access.log")
    missing = [d for d in SLOW_CLIENT_DIRECTIVES if d not in site]
    if missing:
        raise ValueError(f"{SITE.name} lacks {missing}: slow clients would reach gunicorn's threads")
    return site


def directive_seconds(name: str) -> float:
    """The value of a `name 10s;` directive in the shipped site, in seconds."""
    found = re.search(rf"^\s*{name}\s+(\d+)s;", SITE.read_text(), re.M)
    if not found:
        raise ValueError(f"{SITE.name} has no `{name} <n>s;`")
    return float(found.group(1))


def limit_conn_per_client() -> int:
    """How many requests in flight the shipped site allows one address."""
    found = re.search(r"^\s*limit_conn\s+\S+\s+(\d+);", SITE.read_text(), re.M)
    if not found:
        raise ValueError(f"{SITE.name} has no `limit_conn <zone> <n>;`")
    return int(found.group(1))


class Nginx(ServerInTempDir):
    """`nginx -p <temp> -c <temp>/nginx.conf` in the foreground, in front of 127.0.0.1:`upstream_port`."""

    stop_signal = signal.SIGQUIT  # graceful: finish what is in flight

    def __init__(self, binary: str, *, port: int, upstream_port: int):
        super().__init__("sso-nginx-")
        (self.dir / "site.conf").write_text(derive_site(port=port, upstream_port=upstream_port, log_dir=self.dir))
        temp_paths = "".join(f"    {kind}_temp_path {self.dir}/{kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log warn;\n"
            "events { worker_connections 2048; }\n"
            f"http {{\n{temp_paths}    include {self.dir}/site.conf;\n}}\n")
        self.start([binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(self.dir / "nginx.conf")],
                   None, port, "/healthz", timeout=20)
