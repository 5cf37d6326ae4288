"""Configuration: defaults → instance/config.py → BRIDGE_* environment → test mapping, then a
check that stops start-up with a clear message when a secret is missing or malformed."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.fernet import Fernet
from flask import Flask

# Secrets: read verbatim from the environment (from_prefixed_env would turn "123" into an int),
# or from a file named by BRIDGE_<NAME>_FILE (docker/k8s secrets).
SECRET_SETTINGS = ("SECRET_KEY", "KIT_ACCESS_KEY", "BASIC_ACCESS_KEY", "DATA_KEYS", "METRICS_TOKEN")
LIST_SETTINGS = ("KIT_ACCESS_KEY_FALLBACKS", "BASIC_ACCESS_KEY_FALLBACKS", "DATA_KEYS", "SECRET_KEY_FALLBACKS",
                 "IDP_ALLOWED_NETWORKS")
MIN_SECRET_KEY_CHARS = 32


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def load_config(app: Flask, test_config: dict | None = None) -> None:
    app.config.from_object("config.default")
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("BRIDGE")
    for name in SECRET_SETTINGS:
        raw = os.environ.get(f"BRIDGE_{name}")
        if raw is not None:
            app.config[name] = raw
        elif app.config.get(f"{name}_FILE") and not app.config.get(name):
            app.config[name] = _read_secret_file(name, app.config[f"{name}_FILE"])
    if test_config:
        app.config.update(test_config)
    for name in LIST_SETTINGS:
        app.config[name] = _as_list(app.config.get(name))
    _resolve_paths(app)
    validate_config(app)


def _read_secret_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"BRIDGE_{name}_FILE={path!r} cannot be read: {exc.strerror}") from None


def _as_list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _resolve_paths(app: Flask) -> None:
    instance = Path(app.instance_path)
    url = app.config.get("DATABASE_URL") or f"sqlite:///{instance / 'bridge.sqlite'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    key_file = Path(str(app.config["RSA_PRIVATE_KEY_FILE"]))
    app.config["RSA_PRIVATE_KEY_FILE"] = str(key_file if key_file.is_absolute() else instance / key_file)
    app.config["PRODUCE_PATH"] = "/" + str(app.config["PRODUCE_PATH"]).strip("/")
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_BODY_BYTES"])
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["COOKIE_SECURE"])
    # Secure cookies carry the __Host- prefix (browsers then insist on Secure, Path=/ and no Domain,
    # so no sibling host can plant or shadow them); plain names for local http development.
    app.config["SESSION_COOKIE_NAME"] = cookie_name(str(app.config["SESSION_COOKIE_NAME"]), app.config)


HOST_PREFIX = "__Host-"


def cookie_name(base: str, config) -> str:
    base = base.removeprefix(HOST_PREFIX)
    return HOST_PREFIX + base if config.get("COOKIE_SECURE") else base


def production(c) -> bool:
    """Every start that is neither a test run nor local development (BRIDGE_LOCAL_DEV)."""
    return not c.get("TESTING") and not c.get("LOCAL_DEV")


def validate_config(app: Flask) -> None:
    c = app.config
    problems = []
    secret = c.get("SECRET_KEY")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_KEY_CHARS:
        problems.append(
            f"BRIDGE_SECRET_KEY must be set to a random string of at least {MIN_SECRET_KEY_CHARS} characters"
        )
    for name in ("KIT_ACCESS_KEY", "BASIC_ACCESS_KEY"):
        value = c.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"BRIDGE_{name} must be set to the accessKey bound in KooGallery's seller centre")
    if c.get("KIT_ACCESS_KEY") and c.get("KIT_ACCESS_KEY") == c.get("BASIC_ACCESS_KEY"):
        problems.append(
            "BRIDGE_KIT_ACCESS_KEY and BRIDGE_BASIC_ACCESS_KEY are equal; KooGallery binds a different key "
            "to each interface type"
        )
    kit_keys = {k for k in [c.get("KIT_ACCESS_KEY"), *c["KIT_ACCESS_KEY_FALLBACKS"]] if k}
    basic_keys = {k for k in [c.get("BASIC_ACCESS_KEY"), *c["BASIC_ACCESS_KEY_FALLBACKS"]] if k}
    if (kit_keys & basic_keys) and c.get("KIT_ACCESS_KEY") != c.get("BASIC_ACCESS_KEY"):
        problems.append(
            "a key is listed both for kit and for basic calls (BRIDGE_KIT_ACCESS_KEY[_FALLBACKS] and "
            "BRIDGE_BASIC_ACCESS_KEY[_FALLBACKS] share a value); each interface type has its own key, so "
            "remove the shared one from the list it does not belong to"
        )
    if production(c):
        public = str(c.get("PUBLIC_URL") or "")
        if not public:
            problems.append(
                "BRIDGE_PUBLIC_URL must be set to the bridge's external address (https://sso.example.com): it is "
                "the OIDC issuer and the callback URL; for local development set BRIDGE_LOCAL_DEV=true "
                "(python -m config.generate --local does)"
            )
        elif not public.startswith("https://"):
            problems.append(f"BRIDGE_PUBLIC_URL={public!r} must start with https:// in production")
    for name in ("RATE_LIMIT_WINDOW_SECONDS", "RATE_LIMIT_LOGIN", "RATE_LIMIT_CALLBACK", "RATE_LIMIT_MAX_CLIENTS",
                 "RATE_LIMIT_OVERFLOW", "DATABASE_LOCK_TIMEOUT_MS", "DATABASE_STATEMENT_TIMEOUT_MS"):
        if not isinstance(c.get(name), int) or isinstance(c.get(name), bool) or c[name] < 0:
            problems.append(f"BRIDGE_{name} must be a whole number (0 or more)")
    busy = c.get("MAINTENANCE_BUSY_PERCENT")
    if not isinstance(busy, int) or isinstance(busy, bool) or not 1 <= busy <= 100:
        problems.append("BRIDGE_MAINTENANCE_BUSY_PERCENT must be a whole number from 1 to 100")
    if not c["DATA_KEYS"]:
        problems.append("BRIDGE_DATA_KEYS must hold at least one Fernet key (python -m config.generate makes one)")
    for i, key in enumerate(c["DATA_KEYS"]):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"BRIDGE_DATA_KEYS entry {i + 1} is not a valid Fernet key (32 url-safe base64 bytes)")
    for name in ("SIGNATURE_WINDOW_SECONDS", "NONCE_TTL_SECONDS", "MAX_BODY_BYTES", "MAX_JSON_DEPTH",
                 # 0 would not mean "short": an access token without expires_in never expires.
                 "OIDC_ID_TOKEN_LIFETIME", "OIDC_ACCESS_TOKEN_LIFETIME", "OIDC_REFRESH_TOKEN_LIFETIME"):
        if not isinstance(c.get(name), int) or c[name] <= 0:
            problems.append(f"BRIDGE_{name} must be a positive integer")
    try:
        ZoneInfo(str(c.get("ADMIN_TIMEZONE")))
    except (ValueError, ZoneInfoNotFoundError):
        problems.append("BRIDGE_ADMIN_TIMEZONE must be an IANA time zone name such as Asia/Shanghai")
    if c.get("WORKBENCH_LOGIN") not in ("reinitiate", "confirm", "direct"):
        problems.append("BRIDGE_WORKBENCH_LOGIN must be reinitiate, confirm or direct")
    if c.get("IDP_WORKBENCH_REDIRECT_URI") not in ("omit", "send"):
        problems.append("BRIDGE_IDP_WORKBENCH_REDIRECT_URI must be omit or send")
    if c.get("USERINFO_TENANT_MATCH") not in ("tenant_id", "tenant_code", "domain_id"):
        problems.append("BRIDGE_USERINFO_TENANT_MATCH must be tenant_id, tenant_code or domain_id")
    if not problems and c["NONCE_TTL_SECONDS"] < 2 * c["SIGNATURE_WINDOW_SECONDS"]:
        problems.append("BRIDGE_NONCE_TTL_SECONDS must be at least twice BRIDGE_SIGNATURE_WINDOW_SECONDS")
    if problems:
        raise ConfigError("SSO Bridge cannot start:\n  - " + "\n  - ".join(problems))
