"""The whole chain on loopback ports: the bridge (gunicorn, PostgreSQL), the simulator (KooGallery
and the tenants' authentication centres), and optionally the example SaaS app. Each test starts
from the seed: the bridge's tables are emptied, the simulator reset and synced again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import create_app as create_bridge
from extensions import db
from keys.rsa import public_key_for_koogallery
from simulator import create_app as create_simulator
from tests.helpers import BASIC_KEY, KIT_KEY, empty_database
from tests.pg import free_port
from tests.servers import start_bridge, start_simulator

APP_ID = "9eef08ffe9e63c84"  # the seed's application credential
HUASHAN = "fe8ff0dea173a12cb51ebb4c27c2aae4"
XIHU = "8d433b7e4ea78a2c7c5c8df0717c3c4f"
PASSWORDS = {"zhangsan": "Zhangsan@123", "lisi": "Lisi@123", "wangwu": "Wangwu@123", "zhaoliu": "Zhaoliu@123",
             "chenjing": "Chenjing@123"}


def csrf_of(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Stack:
    bridge: object
    simulator: object
    sim_app: object
    bridge_app: object
    database_url: str

    def sim(self, *args: str) -> str:
        result = self.sim_app.test_cli_runner().invoke(args=["sim", *args])
        assert result.exit_code == 0, result.output
        return result.output

    def bridge_cli(self, *args: str) -> str:
        result = self.bridge_app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output

    def reset(self) -> None:
        with self.bridge_app.app_context():
            db.session.remove()
        empty_database(self.database_url)
        self.sim("reset")
        self.sim("sync")

    def fault(self, tenant: str, kind: str, *, on: bool = True, seconds: float | None = None) -> None:
        body = {"kind": kind, "on": on, **({"seconds": seconds} if seconds is not None else {})}
        response = requests.post(f"{self.simulator.url}/_sim/faults/{tenant}", json=body, timeout=5)
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        with self.bridge_app.app_context():
            db.session.remove()
            db.engine.dispose()
        self.simulator.stop()
        self.bridge.stop()
        empty_database(self.database_url)


def start_stack(base_config, database_url, rsa_key, tmp, **bridge_settings) -> Stack:
    empty_database(database_url)
    public_key = public_key_for_koogallery(rsa_key[0])
    sim_port = free_port()
    settings = {"ALLOW_INSECURE_IDP": "true", "COOKIE_SECURE": "false", "APP_ID": APP_ID,
                "PORTAL_LOGIN_URL": f"http://127.0.0.1:{sim_port}/unified-login/#/portal-login", **bridge_settings}
    bridge = start_bridge(base_config, database_url, tmp / "bridge.log", workers=1, threads=8, **settings)
    try:
        simulator = start_simulator(tmp / "state.sqlite", tmp / "simulator.log", bridge_url=bridge.url, port=sim_port,
                                    KIT_ACCESS_KEY=KIT_KEY, BASIC_ACCESS_KEY=BASIC_KEY, BRIDGE_PUBLIC_KEY=public_key)
    except Exception:
        bridge.stop()
        raise
    sim_app = create_simulator({"TESTING": True, "STATE_DB": str(tmp / "state.sqlite"), "PUBLIC_URL": simulator.url,
                                "BRIDGE_URL": bridge.url, "KIT_ACCESS_KEY": KIT_KEY, "BASIC_ACCESS_KEY": BASIC_KEY,
                                "BRIDGE_PUBLIC_KEY": public_key})
    bridge_app = create_bridge({**base_config, "DATABASE_URL": database_url, "PUBLIC_URL": bridge.url})
    return Stack(bridge, simulator, sim_app, bridge_app, database_url)


class Browser:
    """A person's browser, as far as HTTP goes: one cookie jar for every site, redirects followed."""

    def __init__(self):
        self.http = requests.Session()

    def get(self, url, **kw):
        return self.http.get(url, timeout=15, **kw)

    def post(self, url, **kw):
        return self.http.post(url, timeout=15, **kw)

    def sign_in_at(self, page, user: str, tenant: str | None = None):
        """Fill the simulator's sign-in form on `page` (a response) and submit it."""
        data = {"csrf_token": csrf_of(page.text), "username": user, "password": PASSWORDS[user]}
        if tenant:
            data["tenant"] = tenant
        action = re.search(r'<form[^>]*method="post"[^>]*action="([^"]*)"', page.text)
        target = requests.compat.urljoin(page.url, action.group(1).replace("&amp;", "&")) if action else page.url
        return self.post(target, data=data)

    def workbench_sign_in(self, stack: Stack, tenant: str, user: str):
        page = self.get(f"{stack.simulator.url}/workbench")
        return self.post(f"{stack.simulator.url}/workbench/sign-in",
                         data={"csrf_token": csrf_of(page.text), "tenant": tenant, "username": user,
                               "password": PASSWORDS[user]})

    def me(self, stack: Stack):
        return self.get(f"{stack.bridge.url}/sso/me")


def refused_reason(response) -> str | None:
    found = re.search(r'data-reason="([a-z_]+)"', response.text)
    return found.group(1) if found else None


def launch_from_workbench(stack: Stack, browser: Browser, tenant="huashan", user="zhangsan"):
    browser.workbench_sign_in(stack, tenant, user)
    page = browser.get(f"{stack.simulator.url}/workbench")
    assert "/workbench/launch/" in page.text, page.text[:500]
    link = re.search(r'href="(/workbench/launch/[^"]+)"', page.text).group(1)
    return browser.get(f"{stack.simulator.url}{link}")


def stack_fixture(tag: str, **bridge_settings):
    """A module-scoped fixture serving the whole chain (with extra BRIDGE_* settings)."""

    @pytest.fixture(scope="module")
    def stack(base_config, postgres_url, rsa_key, tmp_path_factory):
        live = start_stack(base_config, postgres_url, rsa_key, tmp_path_factory.mktemp(tag), **bridge_settings)
        yield live
        live.stop()

    return stack
