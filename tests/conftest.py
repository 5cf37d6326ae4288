"""Test harness: a fresh app per test, on SQLite and on a real PostgreSQL the harness starts."""

from __future__ import annotations

import os
import shutil

import pytest

from app import create_app, register_migrations
from extensions import db
from keys.rsa import generate_private_key, write_private_key
from tests.helpers import BASIC_KEY, DATA_KEY, KIT_KEY, empty_database
from tests.koogallery import KooGallery
from tests.pg import PgBouncer, PostgresCluster, find_pg_bin, find_pgbouncer

pytest_plugins = ["tests.sso_fixtures", "tests.oidc_fixtures"]  # shared fixtures live in plugins, not in test modules


def _postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session", autouse=True)
def _clean_environment():
    """A developer's shell must not leak into the tests."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("FLASK_", "BRIDGE_"))}
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def public_dns_for_example_hosts(monkeypatch):
    """There is no DNS here: *.example.com (faked with `responses`) resolves to a public address,
    so the bridge's check that an authentication centre is not on a private network stays on."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and (host == "example.com" or host.endswith(".example.com")):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def rsa_key(tmp_path_factory):
    key = generate_private_key()
    path = tmp_path_factory.mktemp("keys") / "koogallery_rsa.pem"
    write_private_key(key, str(path))
    return key, str(path)


@pytest.fixture(scope="session")
def base_config(rsa_key, tmp_path_factory):
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "SECRET_KEY": "test-secret-key-" + "x" * 40,
        "KIT_ACCESS_KEY": KIT_KEY,
        "BASIC_ACCESS_KEY": BASIC_KEY,
        "DATA_KEYS": [DATA_KEY],
        "RSA_PRIVATE_KEY_FILE": rsa_key[1],
        "LOG_LEVEL": "WARNING",
        "COOKIE_SECURE": False,
        "OIDC_BACKCHANNEL_DELIVERY": "cron",
        "DATABASE_PGBOUNCER": VIA_PGBOUNCER,
        "METRICS_PUBLIC": True,  # tests scrape /metrics; test_hardening checks it is closed by default
    }


def _migrate(config: dict, url: str) -> None:
    from flask_migrate import upgrade

    app = create_app({**config, "DATABASE_URL": url})
    register_migrations(app)
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres():
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if _postgres_required():
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found, and this run requires PostgreSQL")
        pytest.skip("PostgreSQL binaries not found")
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(request, postgres, base_config):
    url = os.environ.get("TEST_DATABASE_URL") or postgres.create_database("bridge_test")
    if VIA_PGBOUNCER:
        url = request.getfixturevalue("pgbouncer").url("bridge_test")
    _migrate(base_config, url)
    return url


# --- PgBouncer -------------------------------------------------------------------------------------
# TEST_VIA_PGBOUNCER=1: every PostgreSQL test and live server reaches the database through PgBouncer
# in transaction-pooling mode, as the scale-out deployment does (docs/scale-out.md).
VIA_PGBOUNCER = os.environ.get("TEST_VIA_PGBOUNCER") == "1"


def reaches_postgres(item) -> bool:
    """Whether a test reaches the harness PostgreSQL: it asks for postgres_url (directly or through a
    fixture), or it is the [postgresql] instance of a database_url test."""
    callspec = getattr(item, "callspec", None)
    return "postgres_url" in getattr(item, "fixturenames", ()) or (
        callspec is not None and callspec.params.get("database_url") == "postgresql")


def pytest_collection_modifyitems(config, items):
    # The PgBouncer pass runs what reaches PostgreSQL; the rest ran unchanged in the direct pass.
    if not VIA_PGBOUNCER:
        return
    kept = [item for item in items if reaches_postgres(item)]
    config.hook.pytest_deselected(items=[item for item in items if not reaches_postgres(item)])
    items[:] = kept


def require_pgbouncer() -> None:
    """Skip without pgbouncer, or fail where the run requires PostgreSQL (CI) or PgBouncer."""
    if find_pgbouncer() is None:
        if _postgres_required() or VIA_PGBOUNCER:
            pytest.fail("pgbouncer not found (apt-get install pgbouncer), and this run requires it")
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")


@pytest.fixture(scope="session")
def pgbouncer_installed():
    require_pgbouncer()


@pytest.fixture(scope="session")
def pgbouncer(postgres):
    """PgBouncer (pool_mode = transaction) in front of the session's PostgreSQL."""
    if postgres is None:
        pytest.skip("TEST_DATABASE_URL is set: there is no harness PostgreSQL to put PgBouncer in front of")
    require_pgbouncer()
    bouncer = PgBouncer(postgres, pool_size=20).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def sqlite_template(base_config, tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
    _migrate(base_config, f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, sqlite_template):
    if request.param == "sqlite":
        path = tmp_path / "bridge.sqlite"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    # Module-scoped live servers share this database too: empty it before and after every test.
    empty_database(url)
    yield url
    empty_database(url)


@pytest.fixture
def make_app(base_config, database_url):
    """Build an app with extra settings; every app built is disposed of after the test."""
    apps = []

    def factory(**overrides):
        app = create_app({**base_config, "DATABASE_URL": database_url, **overrides})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def app_ctx(app):
    """Inside an app context on an empty database (each database), settings at their defaults; the
    rule tests call the modules directly here."""
    with app.app_context():
        yield app
        db.session.rollback()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def kg(client):
    return KooGallery(client, KIT_KEY, BASIC_KEY)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser). Required in CI."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if _postgres_required():
            pytest.fail("Chromium is not installed, and this run requires the browser tests")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, tmp_path):
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def fresh(stack):
    """The live chain (a module's `stack`, see tests/e2e.py) reset to the seed for this test."""
    stack.reset()
    return stack
