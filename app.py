"""Composition root: `create_app()` builds the bridge. No module-level app object:
serve with `gunicorn 'app:create_app()'`; `flask` finds the factory by itself."""

from __future__ import annotations

import os
import re
import sqlite3
import uuid

import click
from flask import Flask, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import admin
import keys
import ops
import sso
import tenants
from config import load_config
from extensions import MIGRATIONS, csrf, db
from ops.logs import configure_logging

REQUEST_ID_HEADER = "X-Request-Id"
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:{logo}; form-action 'self' http: https:; "
            "frame-ancestors 'none'; base-uri 'none'")
_INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def create_app(test_config: dict | None = None) -> Flask:
    # The instance folder holds local config, the SQLite file and the RSA key; tests and
    # multi-instance deployments point it elsewhere.
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("BRIDGE_INSTANCE_PATH")
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    load_config(app, test_config)
    configure_logging(app.config["LOG_LEVEL"])
    if app.config.get("PROXY_HOPS"):
        # Behind TLS-terminating proxies: trust exactly that many X-Forwarded-* hops, so callback
        # URLs and the issuer are https://public-host, and nothing a client sends can fake it.
        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    register_extensions(app)
    register_request_ids(app)  # first: every other before_request hook (the rate limits) logs with it
    register_blueprints(app)
    register_errorhandlers(app)
    return app


def register_extensions(app: Flask) -> None:
    engine_options = {"pool_pre_ping": True}
    timeouts = _postgres_timeouts(app.config)
    via_pgbouncer = str(app.config.get("DATABASE_PGBOUNCER")).strip().lower() in ("true", "1", "yes", "on")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        engine_options = {"connect_args": {"timeout": 30}}
        timeouts = {}
    elif via_pgbouncer:
        # Transaction pooling: a prepared statement would live on a server connection the next
        # transaction may not get. psycopg 3 prepares nothing with prepare_threshold=None.
        engine_options["connect_args"] = {"prepare_threshold": None}
    elif timeouts:
        # Straight to PostgreSQL: the timeouts are session settings given at connect time (no round trip).
        engine_options["connect_args"] = {"options": " ".join(f"-c {k}={v}" for k, v in timeouts.items())}
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)
    db.init_app(app)
    if timeouts and via_pgbouncer:
        # PgBouncer does not pass startup `options` on, and a session SET would stay on a server
        # connection other clients get next: SET LOCAL at the start of every transaction instead,
        # which ends with the transaction (one extra statement per transaction).
        statement = "; ".join(f"SET LOCAL {k} = {v}" for k, v in timeouts.items())
        with app.app_context():
            event.listen(db.engine, "begin", lambda conn: conn.exec_driver_sql(statement))
    if click.get_current_context(silent=True) is not None:
        # Built for a command line (`flask`, `sso-bridge`). A serving worker builds the app outside
        # any, and so never loads Alembic: 6-10 MiB of each worker's memory.
        register_migrations(app)
    keys.init_app(app)
    csrf.init_app(app)


def register_migrations(app: Flask) -> None:
    """Flask-Migrate: `db …` on the app's command line and the migrations' settings."""
    from flask_migrate import Migrate

    Migrate(app, db, directory=MIGRATIONS)


def _postgres_timeouts(config) -> dict[str, int]:
    """lock_timeout and statement_timeout in milliseconds, below the marketplace's 5 s answer limit."""
    values = {"lock_timeout": config.get("DATABASE_LOCK_TIMEOUT_MS"),
              "statement_timeout": config.get("DATABASE_STATEMENT_TIMEOUT_MS")}
    return {k: int(v) for k, v in values.items() if v}


def register_blueprints(app: Flask) -> None:
    tenants.init_app(app)
    from tenants.views import bp as sync_bp

    csrf.exempt(sync_bp)  # KooGallery's calls are authenticated by their signatures
    sso.init_app(app)
    admin.init_app(app)
    ops.init_app(app)

    @app.get("/")
    def index():
        return redirect(url_for("sso.home"))


def register_request_ids(app: Flask) -> None:
    from sso.branding import branding_from

    logo_origin = branding_from(app.config).logo_origin  # a BRIDGE_BRAND_LOGO on another host
    page_csp = PAGE_CSP.format(logo=f" {logo_origin}" if logo_origin else "")

    @app.before_request
    def assign_request_id():
        # A proxy's id is kept when it looks like one, so one id follows the request end to end.
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _INCOMING_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def expose_request_id(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        if response.mimetype == "text/html":
            # Pages carry no third-party content; OAuth codes in URLs must not leak by Referer;
            # the login and logout forms must not be framed (clickjacking).
            response.headers.setdefault("Content-Security-Policy", page_csp)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def register_errorhandlers(app: Flask) -> None:
    """Pages for browsers; the sync API answers in KooGallery JSON by itself (tenants.views)."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template("error.html", status=400, key="csrf"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if type(exc).__module__.startswith("authlib."):
            return exc.get_response()  # OAuth error JSON (e.g. invalid_token on /oidc/userinfo)
        key = {404: "not_found", 503: "unavailable"}.get(exc.code, "bad_request" if exc.code < 500 else "server_error")
        return render_template("error.html", status=exc.code, key=key), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        app.logger.exception("unhandled_error path=%s", request.path)
        return render_template("error.html", status=500, key="server_error"), 500


# SQLite: take the write lock when a transaction starts (BEGIN IMMEDIATE), so concurrent writers
# queue on the busy timeout instead of failing on a lock upgrade; enforce foreign keys.
@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA journal_mode=WAL")


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
