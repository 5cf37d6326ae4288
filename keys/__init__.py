"""Key material: the RSA key pair KooGallery encrypts clientSecret with, and the data keys that
encrypt secrets at rest. Loaded once per app; `keyring()` returns the current app's keys."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app

from keys.datakey import SecretBox
from keys.rsa import KeyFileError, load_private_key

log = logging.getLogger(__name__)


@dataclass
class KeyRing:
    private_key: object | None  # RSAPrivateKey, or None until `flask keys generate` has run
    private_key_file: str
    data: SecretBox


def init_app(app: Flask) -> None:
    path = app.config["RSA_PRIVATE_KEY_FILE"]
    try:
        private_key = load_private_key(path)
    except KeyFileError as exc:
        from config import ConfigError

        raise ConfigError(f"SSO Bridge cannot start:\n  - {exc}") from None
    # A missing key is not fatal: `flask keys generate` must be able to run first, and
    # applicationSync answers 000101 until the key exists (warn_if_key_missing says so at serving).
    app.extensions["bridge_keys"] = KeyRing(private_key, path, SecretBox(app.config["DATA_KEYS"]))

    from keys import models  # noqa: F401  (signing keys table)
    from keys.cli import keys_cli

    app.cli.add_command(keys_cli)


def warn_if_key_missing(app) -> None:
    """Logged where the bridge serves (each gunicorn worker), not in every CLI command: `flask keys
    generate` has no key to warn about yet. A no-op for the other apps gunicorn.conf.py serves."""
    ring = getattr(app, "extensions", {}).get("bridge_keys")
    if ring is not None and ring.private_key is None:
        log.warning("rsa_private_key_missing path=%s hint='run flask keys generate'", ring.private_key_file)


def keyring() -> KeyRing:
    return current_app.extensions["bridge_keys"]
