"""What the tests share that is not a fixture: the test access keys, assertions on KooGallery
answers, reading rows back. Tests import this module, never another test module or conftest."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet

from app import create_app
from extensions import db

KIT_KEY = "kit-access-key-0123456789"
BASIC_KEY = "basic-access-key-0123456789"
DATA_KEY = Fernet.generate_key().decode()


def missing_dependency(what: str, apt_command: str):
    """A Debian package a test needs is not installed: a failure where CI runs the whole suite, a
    skip that says how to install it elsewhere (`make test` installs it as root)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not installed, and CI runs this test: {apt_command}")
    pytest.skip(f"{what} not installed ({apt_command})")


def ok(response):
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resultCode"] == "000000", body
    return body


def code_of(response) -> str:
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()["resultCode"]


def rows(app, model, **where):
    with app.app_context():
        return db.session.execute(db.select(model).filter_by(**where)).scalars().all()


def truncate_all(config: dict, url: str) -> None:
    app = create_app({**config, "DATABASE_URL": url})
    with app.app_context():
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        db.engine.dispose()
