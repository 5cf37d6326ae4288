"""`make run`: the bridge on 127.0.0.1:5000, the KooGallery simulator on 127.0.0.1:5001 and the example
SaaS app on 127.0.0.1:5002 (all
gunicorn), the demo tenants and users synced into the bridge through its real signed endpoints,
and what to open. Ctrl-C (or SIGTERM) stops them all."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization

BRIDGE = "127.0.0.1:5000"
SIMULATOR = "127.0.0.1:5001"
SAAS_APP = "127.0.0.1:5002"
DEMO_CLIENT_ID = "demo-saas-app"
ROOT = Path(__file__).resolve().parent.parent


class Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _stop(_signum, _frame):
    raise Stop


def bridge_public_key(pem_path: str) -> str:
    """The one-line base64 SubjectPublicKeyInfo `flask keys show-public` prints, made here from the
    bridge's private key file (the simulator must not import the bridge)."""
    key = serialization.load_pem_private_key(Path(pem_path).read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def wait_healthy(name: str, url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer {url} within {timeout:g} s")


def write_simulator_config(path: Path, settings: dict) -> None:
    """instance/simulator.py: what the simulator needs to reach this bridge. Every
    `flask --app simulator sim ...` in another shell reads it too, so no environment is needed."""
    lines = ["# Written by `make run` (scripts/run_local.py) on every start. Local secrets: never commit this file."]
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def gunicorn(app: str, bind: str, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", bind,
                             "--workers", "1", *extra, app], cwd=ROOT, env=env)


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
    from app import create_app
    from simulator.seed import load_seed

    bridge = create_app()
    bridge_config, instance = bridge.config, Path(bridge.instance_path)
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
    bridge_env = {"BRIDGE_PORTAL_LOGIN_URL": f"http://{SIMULATOR}/unified-login/portal-login",
                  "BRIDGE_APP_ID": app_id, "BRIDGE_PUBLIC_URL": f"http://{BRIDGE}", **os.environ}
    saas_env = {**os.environ, "SAAS_ISSUER": f"http://{BRIDGE}", "SAAS_CLIENT_ID": DEMO_CLIENT_ID,
                "SAAS_CLIENT_SECRET": register_demo_app(bridge), "SAAS_APP_URL": f"http://{SAAS_APP}"}
    if not bridge_config["ALLOW_INSECURE_IDP"] and "BRIDGE_ALLOW_INSECURE_IDP" not in os.environ:
        # instance/config.py from before `config.generate --local`: the simulator's authentication
        # centres are http://127.0.0.1, which the bridge refuses unless told this is a local demo.
        print("make run: ALLOW_INSECURE_IDP is off in instance/config.py; turning it on for this local bridge "
              "(the simulator's authentication centres are http://127.0.0.1:5001).", flush=True)
        bridge_env["BRIDGE_ALLOW_INSECURE_IDP"] = "true"

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    servers = []
    try:
        servers.append(("bridge", gunicorn("app:create_app()", BRIDGE, bridge_env)))
        servers.append(("simulator", gunicorn("simulator:create_app()", SIMULATOR, sim_env,
                                              "--threads", "8", "--timeout", "330")))
        servers.append(("example SaaS app", gunicorn("examples.saas_app:create_app()", SAAS_APP, saas_env,
                                                     "--threads", "4")))
        wait_healthy("the bridge", f"http://{BRIDGE}/healthz", servers[0][1])
        wait_healthy("the simulator", f"http://{SIMULATOR}/healthz", servers[1][1])
        wait_healthy("the example SaaS app", f"http://{SAAS_APP}/healthz", servers[2][1])
        print("\nSyncing the demo tenants into the bridge (signed calls, as KooGallery sends them)...", flush=True)
        flask = [sys.executable, "-m", "flask", "--app", "simulator", "sim"]
        synced = subprocess.run([*flask, "sync"], cwd=ROOT, env=sim_env).returncode == 0
        if not synced:
            print("The demo data did not reach the bridge (see above); the servers keep running.", flush=True)
        print(f"""
Example SaaS app           http://{SAAS_APP}/   <- start here: "Sign in", company code huashan
SSO Bridge                 http://{BRIDGE}
  OIDC discovery           http://{BRIDGE}/.well-known/openid-configuration
  production address       http://{BRIDGE}{bridge_config["PRODUCE_PATH"]}
  what it stored           .venv/bin/flask tenants list
KooGallery simulator       http://{SIMULATOR}/
  enterprise workbench     http://{SIMULATOR}/workbench
  unified login portal     http://{SIMULATOR}/unified-login/portal-login?ind=UNOP&appId={app_id}
  grants, orders, faults   .venv/bin/flask --app simulator sim --help   (settings: {sim_config})

Demo users (sign in at the workbench or the portal):""", flush=True)
        subprocess.run([*flask, "users"], cwd=ROOT, env=sim_env)
        print("\nRevoke a user (the app signs them out): .venv/bin/flask --app simulator sim revoke zhangsan", flush=True)
        print("Ctrl-C stops all three servers.", flush=True)
        while all(process.poll() is None for _name, process in servers):
            time.sleep(0.5)
        name, process = next((n, p) for n, p in servers if p.poll() is not None)
        print(f"The {name} exited with status {process.returncode}; stopping.", flush=True)
        return 1
    except (KeyboardInterrupt, Stop):
        return 0
    except RuntimeError as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for _name, process in servers:
            if process.poll() is None:
                process.terminate()
        for _name, process in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
