"""`make run`: the bridge on 127.0.0.1:5000, the KooGallery simulator on 127.0.0.1:5001 and the example
SaaS app on 127.0.0.1:5002 (all gunicorn), the demo tenants and users synced into the bridge
through its real signed endpoints, a demo operator for the console, and what to open.

The servers' JSON logs go to instance/logs/; the terminal keeps the banner and a feed of one line
per bridge event (sync calls, logins, ended sessions, warnings). Ctrl-C (or SIGTERM or SIGHUP,
e.g. `timeout 60 make run`) stops them all, workers included, and exits 0. RUN_PORT_BASE=6000 moves
the three servers to 6000-6002."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization


def _port_base() -> int:
    raw = os.environ.get("RUN_PORT_BASE", "5000").strip()
    if not raw.isdigit() or not 1024 <= int(raw) <= 65533:
        sys.exit(f"make run: RUN_PORT_BASE={raw!r} must be a port from 1024 to 65533 "
                 "(the bridge takes it, the simulator and the example app the next two)")
    return int(raw)


PORT_BASE = _port_base()
BRIDGE = f"127.0.0.1:{PORT_BASE}"
SIMULATOR = f"127.0.0.1:{PORT_BASE + 1}"
SAAS_APP = f"127.0.0.1:{PORT_BASE + 2}"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEMO_CLIENT_ID = "demo-saas-app"
DEMO_OPERATOR = "demo"
ROOT = Path(__file__).resolve().parent.parent
# Bridge log events worth a line in the terminal (the first word of the message); warnings and
# errors are shown whatever they are.
FEED_EVENTS = ("sync_call", "login", "sessions_ended", "backchannel_logout", "admin_audit", "client_secret_decrypted")
# Set by Ctrl-C, SIGTERM or SIGHUP. A flag rather than an exception: an exception could land
# between starting a server and recording it, or in the middle of stopping them.
stopping = threading.Event()


def _request_stop(_signum, _frame):
    stopping.set()


def die_with_parent() -> None:
    """SIGTERM to this process when its parent dies (PR_SET_PDEATHSIG), however the parent ends:
    `make` killed outright, or this script killed while its servers run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def bridge_public_key(pem_path: str) -> str:
    """The one-line base64 SubjectPublicKeyInfo `flask keys show-public` prints, made here from the
    bridge's private key file (the simulator must not import the bridge)."""
    key = serialization.load_pem_private_key(Path(pem_path).read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def wait_healthy(name: str, url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping.is_set():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        stopping.wait(0.2)
    if stopping.is_set():
        return
    raise RuntimeError(f"{name} did not answer {url} within {timeout:g} s")


def write_simulator_config(path: Path, settings: dict) -> None:
    """instance/simulator.py: what the simulator needs to reach this bridge. Every
    `flask --app simulator sim ...` in another shell reads it too, so no environment is needed."""
    lines = ["# Written by `make run` (scripts/run_local.py) on every start. Local secrets: never commit this file."]
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def gunicorn(name: str, app: str, bind: str, env: dict, instance: Path, *extra: str) -> subprocess.Popen:
    """One server, its output appended to instance/logs/NAME.log. Each master gets its own
    control socket under instance/run/ (`.venv/bin/gunicornc -s instance/run/NAME.ctl`), not the
    one per-user default they would all claim. Its own session (its workers join it): Ctrl-C
    reaches this script only, which then stops the servers in order; and SIGTERM if this script
    dies without doing so."""
    env = {**env, "GUNICORN_CONTROL_SOCKET": str(instance / "run" / f"{name}.ctl")}
    with open(instance / "logs" / f"{name}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", bind,
                                 "--workers", "1", *extra, app], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent)


def stop_servers(servers: list[tuple[str, subprocess.Popen]], grace: float = 25) -> None:
    """SIGTERM to each master (gunicorn stops its workers within its graceful_timeout), then
    SIGKILL to whatever is left of each server's session. A master that has exited is not reaped
    until then, so its process group id cannot have been given to anything else."""
    for _name, process in servers:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for _name, process in servers:
        while time.monotonic() < deadline:
            try:
                if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    break
            except ChildProcessError:
                break  # already reaped
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ensure_demo_operator(instance: Path, env: dict) -> str:
    """A console operator for this machine, made with `flask admin` as an operator would. The
    password is kept in instance/ (git-ignored, mode 0600) so it stays the same across runs."""
    password_file = instance / "demo-operator-password"
    flask_admin = [sys.executable, "-m", "flask", "--app", "app", "admin"]
    listed = subprocess.run([*flask_admin, "list-users"], cwd=ROOT, env=env, capture_output=True, text=True)
    exists = any(line.split()[:1] == [DEMO_OPERATOR] for line in listed.stdout.splitlines())
    if exists and password_file.exists():
        return password_file.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    verb = "reset-password" if exists else "create-user"
    done = subprocess.run([*flask_admin, verb, DEMO_OPERATOR, "--password-stdin"], cwd=ROOT, env=env,
                          input=password + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"flask admin {verb} {DEMO_OPERATOR} failed: {done.stderr.strip() or done.stdout.strip()}")
    return password


def shown(path: Path) -> str:
    """A path as the user typed commands from the project folder would name it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def feed_line(raw: str) -> str | None:
    """One JSON log line as a terminal line, or None when it is not worth one."""
    try:
        event = json.loads(raw)
        msg, level = str(event["msg"]), str(event.get("level", "info"))
    except (ValueError, KeyError, TypeError):
        return None  # gunicorn's own and access-log lines
    if msg.split(" ", 1)[0] not in FEED_EVENTS and level not in ("warning", "error", "critical"):
        return None
    try:
        when = datetime.fromisoformat(event["ts"]).astimezone().strftime("%H:%M:%S")
    except (KeyError, TypeError, ValueError):
        when = "--:--:--"
    mark = "" if level == "info" else f"{level.upper()} "
    msg = msg.removesuffix(" reason=''")  # sync_call's empty reason on success
    return f"{when} {mark}{msg}"


def follow(path: Path, offset: int, stop: threading.Event) -> None:
    """Print the feed lines appended to the bridge's log after `offset`, each cut to one line."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        pending = ""
        while not stop.is_set():
            chunk = fh.readline()
            if not chunk:
                time.sleep(0.3)
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue  # a line still being written
            line, pending = feed_line(pending), ""
            if line:
                width = shutil.get_terminal_size((120, 24)).columns
                print(line if len(line) <= width else line[: width - 1] + "…", flush=True)


@contextlib.contextmanager
def own_terminal():
    """Make this process the terminal's foreground group while it runs, so Ctrl-C reaches only
    it: `make` then sees a clean exit 0 instead of dying of SIGINT itself."""
    try:
        fd = sys.stdin.fileno()
        previous = os.tcgetpgrp(fd) if os.isatty(fd) else None
    except (OSError, ValueError):
        previous = None
    if previous is None:
        yield
        return
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from a background group
    os.tcsetpgrp(fd, os.getpgrp())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)


def register_demo_app(bridge) -> str:
    """Register the example SaaS app with the bridge (or give it a new secret): the demo's OIDC
    client. Returns the client secret for this run."""
    import secrets as random

    from extensions import db
    from sso.oidc.models import OidcClient, secret_hash
    from sso.oidc.server import SCOPES

    base = f"http://{SAAS_APP}"
    secret = random.token_urlsafe(32)
    with bridge.app_context():
        client = db.session.execute(db.select(OidcClient).filter_by(client_id=DEMO_CLIENT_ID)).scalar_one_or_none()
        if client is None:
            client = OidcClient(client_id=DEMO_CLIENT_ID)
            db.session.add(client)
        client.client_secret = secret_hash(secret)
        client.set_client_metadata({
            "client_name": "Demo SaaS app", "redirect_uris": [f"{base}/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "scope": " ".join(SCOPES), "token_endpoint_auth_method": "client_secret_basic",
            "initiate_login_uri": f"{base}/initiate-login", "backchannel_logout_uri": f"{base}/backchannel-logout",
            "post_logout_redirect_uris": [f"{base}/"]})
        db.session.commit()
    return secret


def main() -> int:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)
    die_with_parent()
    from app import create_app
    from simulator.seed import load_seed

    bridge = create_app()
    bridge_config, instance = bridge.config, Path(bridge.instance_path)
    logs = instance / "logs"
    for folder in (logs, instance / "run"):
        folder.mkdir(parents=True, exist_ok=True)
    app_id = os.environ.get("SIM_APP_ID") or load_seed(os.environ.get("SIM_SEED_FILE")).app_id
    sim_config = instance / "simulator.py"
    write_simulator_config(sim_config, {
        "PUBLIC_URL": f"http://{SIMULATOR}",
        "STATE_DB": str(instance / "simulator.sqlite"),
        "BRIDGE_URL": f"http://{BRIDGE}",
        "APP_LOGIN_URL": f"http://{BRIDGE}/sso/callback",
        "PRODUCE_PATH": bridge_config["PRODUCE_PATH"],
        "KIT_ACCESS_KEY": bridge_config["KIT_ACCESS_KEY"],
        "BASIC_ACCESS_KEY": bridge_config["BASIC_ACCESS_KEY"],
        "BRIDGE_PUBLIC_KEY": bridge_public_key(bridge_config["RSA_PRIVATE_KEY_FILE"]),
        "APP_ID": app_id,
    })
    sim_env = {**os.environ, "SIM_CONFIG_FILE": str(sim_config)}
    # The bridge's "sign in with KooGallery" goes to the simulator's portal, for this appId.
    bridge_env = {"BRIDGE_LOCAL_DEV": "true", "BRIDGE_METRICS_PUBLIC": "true",
                  "BRIDGE_PORTAL_LOGIN_URL": f"http://{SIMULATOR}/unified-login/portal-login",
                  "BRIDGE_APP_ID": app_id, "BRIDGE_PUBLIC_URL": f"http://{BRIDGE}", **os.environ}
    saas_env = {**os.environ, "SAAS_ISSUER": f"http://{BRIDGE}", "SAAS_CLIENT_ID": DEMO_CLIENT_ID,
                "SAAS_CLIENT_SECRET": register_demo_app(bridge), "SAAS_APP_URL": f"http://{SAAS_APP}"}
    if not bridge_config["ALLOW_INSECURE_IDP"] and "BRIDGE_ALLOW_INSECURE_IDP" not in os.environ:
        # instance/config.py from before `config.generate --local`: the simulator's authentication
        # centres are http://127.0.0.1, which the bridge refuses unless told this is a local demo.
        print("make run: ALLOW_INSECURE_IDP is off in instance/config.py; turning it on for this local bridge "
              f"(the simulator's authentication centres are http://{SIMULATOR}).", flush=True)
        bridge_env["BRIDGE_ALLOW_INSECURE_IDP"] = "true"

    servers = []
    stop_feed = threading.Event()
    bridge_log = logs / "bridge.log"
    try:
        bridge_log.touch()
        feed_from = bridge_log.stat().st_size  # the feed shows this run's events only
        servers.append(("bridge", gunicorn("bridge", "app:create_app()", BRIDGE, bridge_env, instance)))
        servers.append(("simulator", gunicorn("simulator", "simulator:create_app()", SIMULATOR, sim_env, instance,
                                              "--threads", "8", "--timeout", "330")))
        servers.append(("example SaaS app", gunicorn("saas-app", "examples.saas_app:create_app()", SAAS_APP,
                                                     saas_env, instance, "--threads", "4")))
        print(f"Starting the bridge, the simulator and the example app (logs: {shown(logs)}/)...",
              flush=True)
        wait_healthy("the bridge", f"http://{BRIDGE}/healthz", servers[0][1])
        wait_healthy("the simulator", f"http://{SIMULATOR}/healthz", servers[1][1])
        wait_healthy("the example SaaS app", f"http://{SAAS_APP}/healthz", servers[2][1])
        if stopping.is_set():
            return stopped()
        operator_password = ensure_demo_operator(instance, bridge_env)
        flask = [sys.executable, "-m", "flask", "--app", "simulator", "sim"]
        with open(logs / "simulator-cli.log", "a", encoding="utf-8") as sim_log:
            synced = subprocess.run([*flask, "sync"], cwd=ROOT, env=sim_env, stdout=sim_log,
                                    stderr=subprocess.STDOUT).returncode == 0
        users = subprocess.run([*flask, "users"], cwd=ROOT, env=sim_env, capture_output=True, text=True).stdout
        print(f"""
Example SaaS app      http://{SAAS_APP}/   <- start here: "Sign in", company code huashan
SSO Bridge            http://{BRIDGE}
  operator console    http://{BRIDGE}/admin/   user {DEMO_OPERATOR}, password {operator_password}
  OIDC discovery      http://{BRIDGE}/.well-known/openid-configuration
  production address  http://{BRIDGE}{bridge_config["PRODUCE_PATH"]}
KooGallery simulator  http://{SIMULATOR}/
  enterprise workbench http://{SIMULATOR}/workbench
  unified login portal http://{SIMULATOR}/unified-login/portal-login?ind=UNOP&appId={app_id}

Demo users (sign in at the workbench, the portal or the example app):
{users.rstrip()}

In another shell:  .venv/bin/flask tenants list
                   .venv/bin/flask --app simulator sim revoke zhangsan   (the example app signs zhangsan out)
Logs: {shown(logs)}/bridge.log, simulator.log, saas-app.log (JSON, one event a line).
Ctrl-C stops all three servers. Bridge events:""", flush=True)
        if not synced:
            print(f"The demo data did not reach the bridge: see {shown(logs)}/simulator-cli.log; "
                  "the servers keep running.", flush=True)
        threading.Thread(target=follow, args=(bridge_log, feed_from, stop_feed), daemon=True).start()
        while all(process.poll() is None for _name, process in servers):
            if stopping.wait(0.5):
                return stopped()
        name, process = next((n, p) for n, p in servers if p.poll() is not None)
        print(f"The {name} exited with status {process.returncode} (see {shown(logs)}/); stopping.",
              flush=True)
        return 1
    except RuntimeError as exc:
        print(f"make run: {exc} (logs: {shown(logs)}/)", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_feed.set()
        stop_servers(servers)


def stopped() -> int:
    print("\nStopping...", flush=True)
    return 0


if __name__ == "__main__":
    with own_terminal():
        status = main()
    sys.exit(status)
