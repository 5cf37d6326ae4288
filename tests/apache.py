"""A throwaway Apache httpd with mod_auth_openidc for the end-to-end tests: its own ServerRoot and
configuration in a temporary directory (never the system service), listening on a free loopback
port, including deploy/apache/sso-bridge-oidc.conf verbatim; and the tiny app behind it, which echoes
the request headers it receives as JSON."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.pg import free_port
from tests.servers import ROOT, ServerInTempDir

RECIPE = ROOT / "deploy" / "apache" / "sso-bridge-oidc.conf"
MODULES_DIR = Path("/usr/lib/apache2/modules")
MODULES = ["mpm_event", "authn_core", "authz_core", "authz_user", "auth_openidc", "proxy", "proxy_http", "headers",
           "alias", "mime", "env"]
APT_COMMAND = "sudo apt-get update && sudo apt-get install -y apache2 libapache2-mod-auth-openidc"


def find_apache() -> str | None:
    """The httpd binary, when it and mod_auth_openidc are installed."""
    binary = os.environ.get("APACHE_BIN") or shutil.which("apache2") or (
        "/usr/sbin/apache2" if os.path.exists("/usr/sbin/apache2") else None) or shutil.which("httpd")
    if binary is None or not os.access(binary, os.X_OK) or not (MODULES_DIR / "mod_auth_openidc.so").exists():
        return None
    return binary


class EchoApp:
    """The existing web app, in any language: here a few lines of Python that answer every path with
    the headers they were sent (values as UTF-8, the way mod_auth_openidc passes claims)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                # http.server decodes header bytes as Latin-1; undo that to get mod_auth_openidc's UTF-8.
                headers = {k: v.encode("latin-1").decode("utf-8", "replace") for k, v in self.headers.items()}
                body = json.dumps({"path": self.path, "headers": headers}, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Apache(ServerInTempDir):
    """`apache2 -f <temp>/httpd.conf -DFOREGROUND` with the recipe's variables Defined."""

    def __init__(self, binary: str, *, port: int, variables: dict[str, str], log_level: str = "warn"):
        super().__init__("sso-apache-")
        self.port = port
        (self.dir / "httpd.conf").write_text(self._config(variables, log_level))
        self.start([binary, "-d", str(self.dir), "-f", str(self.dir / "httpd.conf"), "-DFOREGROUND"],
                   {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}, port, "/loggedout", timeout=30)

    def _config(self, variables: dict[str, str], log_level: str) -> str:
        lines = [f'ServerRoot "{self.dir}"', "ServerName 127.0.0.1", f"Listen 127.0.0.1:{self.port}",
                 f'PidFile "{self.dir}/httpd.pid"', f'DefaultRuntimeDir "{self.dir}"',
                 f'ErrorLog "{self.dir}/error.log"', f"LogLevel warn auth_openidc:{log_level}",
                 'LogFormat "%h %u %t \\"%r\\" %>s %b" common', f'CustomLog "{self.dir}/access.log" common',
                 "TypesConfig /dev/null"]
        lines += [f"LoadModule {name}_module {MODULES_DIR}/mod_{name}.so" for name in MODULES]
        # One small child process: the session cache (shm) is shared by all of them anyway.
        lines += ["StartServers 1", "ServerLimit 1", "ThreadLimit 16", "ThreadsPerChild 16", "MaxRequestWorkers 16",
                  "MinSpareThreads 1", "MaxSpareThreads 16"]
        if os.geteuid() == 0:  # httpd refuses to serve as root
            user = "www-data" if _user_exists("www-data") else "nobody"
            lines += [f"User {user}", f"Group #{pwd.getpwnam(user).pw_gid}"]
        for name, value in variables.items():
            if '"' in value or "\n" in value:
                raise ValueError(f"{name} cannot be written into an Apache Define")
            lines.append(f'Define {name} "{value}"')
        lines.append(f'Include "{RECIPE}"')
        return "\n".join(lines) + "\n"

    def access_log(self) -> str:
        path = self.dir / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_text(self) -> str:
        return super().log_text(tail=6000)


def config_test(binary: str, config: str, directory: Path) -> subprocess.CompletedProcess:
    """`apache2 -t` on a configuration (prefixed with ServerRoot and the modules): parsing only,
    nothing listens."""
    head = [f'ServerRoot "{directory}"', "ServerName 127.0.0.1", f'PidFile "{directory}/httpd.pid"',
            f'DefaultRuntimeDir "{directory}"', f'ErrorLog "{directory}/error.log"', "TypesConfig /dev/null"]
    head += [f"LoadModule {name}_module {MODULES_DIR}/mod_{name}.so" for name in [*MODULES, "ssl", "socache_shmcb"]]
    path = directory / "configtest.conf"
    path.write_text("\n".join(head) + "\n" + config)
    return subprocess.run([binary, "-t", "-d", str(directory), "-f", str(path)], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}, timeout=30)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
