"""What the tests share that is not a fixture: the test access keys, assertions on KooGallery
answers, reading rows back. Tests import this module, never another test module or conftest."""

from __future__ import annotations

import os

import pytest
import sqlalchemy
from cryptography.fernet import Fernet

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


_TRUNCATE: dict[str, tuple] = {}  # url -> (engine, statement): made once per database


def truncate_all(url: str) -> None:
    """Empty every table of the bridge's PostgreSQL database (before and after each test: module-scoped
    live servers share it). One engine and one statement per database, not an app per call."""
    if url not in _TRUNCATE:
        engine = sqlalchemy.create_engine(url, pool_size=1, pool_pre_ping=True)
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version' ORDER BY tablename").scalars().all()
        _TRUNCATE[url] = (engine, f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    engine, statement = _TRUNCATE[url]
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
