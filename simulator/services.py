"""The simulator's long-lived objects, built once per app from its config."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from simulator.directory import Directory
from simulator.oauth import AuthorizationServer
from simulator.seed import Seed, load_seed
from simulator.state import Store


@dataclass
class Services:
    seed: Seed
    store: Store
    directory: Directory
    oauth: AuthorizationServer
    sleep: object  # time.sleep, or a recorder in tests


def build_services(config, instance_path: str) -> Services:
    seed = load_seed(config.get("SEED_FILE"))
    if config.get("APP_ID"):
        seed = dataclasses.replace(seed, app_id=str(config["APP_ID"]))
    state_db = config.get("STATE_DB") or str(Path(instance_path) / "simulator.sqlite")
    store = Store(state_db, clock=config.get("CLOCK") or time.time)
    directory = Directory(seed, store, config["PUBLIC_URL"])
    oauth = AuthorizationServer(directory, store, app_login_url=config["APP_LOGIN_URL"],
                                bridge_url=config["BRIDGE_URL"], code_ttl=float(config["CODE_TTL_SECONDS"]),
                                access_ttl=int(config["ACCESS_TOKEN_TTL_SECONDS"]),
                                refresh_ttl=float(config["REFRESH_TOKEN_TTL_SECONDS"]))
    return Services(seed, store, directory, oauth, config.get("SLEEP") or time.sleep)


def services() -> Services:
    return current_app.extensions["simulator"]
