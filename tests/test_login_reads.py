"""A login reads what KooGallery told the bridge in one round trip before the centre's calls (the
tenant, its order links, its OAuth client) and one after them (the tenant and its orders again,
with the user's row). Those reads answer exactly what the separate reads answer, for every shape
of tenant; and a whole login sends no more statements than that."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from extensions import db
from sso.auth_centre import AuthCentreClient
from tenants import queries
from tenants.models import Tenant, TenantApp, TenantUser
from tests import factories as f
from tests.helpers import assert_same, assert_same_orders, fields, tenant_with_several_orders
from tests.sso_fixtures import fake_idp, sign_in


def _app(tenant_id, app_id, ts, **over):
    return TenantApp(**{"tenant_id": tenant_id, "app_id": app_id, "client_id": f"client-{app_id}",
                        "client_secret_enc": f"secret-{app_id}", "last_sync_ts": ts, **over})


@pytest.fixture
def tenants(app_ctx):
    now = datetime.now(UTC)
    db.session.add_all([
        *tenant_with_several_orders(now, without_orders="bare"),
        # Newest first: deleted, without a secret, without a client id, then the two usable ones.
        _app("several", "gone", "5", deleted_at=now),
        _app("several", "no-secret", "4", client_secret_enc=None),
        _app("several", "no-client", "3", client_id=None),
        _app("several", "newer", "2"),
        _app("several", "older", "1"),
        TenantUser(tenant_id="several", user_name="alice", name="Alice", role="admin", last_sync_ts="1",
                   org_code="D1", authorized=True, enabled=False),
        TenantUser(tenant_id="bare", user_name="alice", name="Other Alice", last_sync_ts="1")])
    db.session.commit()


# The rules written out with the ORM, to compare the joined reads with.
def usable_client(tenant_id, app_id) -> TenantApp | None:
    """The newest (by sync time) client with an id and a secret, not deleted; of app_id if given."""
    query = db.select(TenantApp).where(TenantApp.tenant_id == tenant_id, TenantApp.deleted_at.is_(None),
                                       TenantApp.client_id.is_not(None), TenantApp.client_secret_enc.is_not(None))
    if app_id:
        query = query.filter_by(app_id=app_id)
    return db.session.scalars(query.order_by(TenantApp.last_sync_ts.desc()).limit(1)).first()


def named_tenant(ref) -> Tenant | None:
    """By tenant ID, else by code in any case, a live tenant before a deleted one."""
    return db.session.get(Tenant, ref) or db.session.scalars(
        db.select(Tenant).where(db.func.lower(Tenant.tenant_code) == ref.lower())
        .order_by(Tenant.deleted_at.is_not(None))).first()


@pytest.mark.parametrize("tenant_id", ["several", "bare", "missing"])
@pytest.mark.parametrize("app_id", [None, "older", "gone", "nobody"])
def test_the_tenant_for_a_login_is_what_the_separate_reads_answer(tenants, tenant_id, app_id):
    facts = queries.tenant_for_login(tenant_id, app_id)
    assert fields(facts.tenant) == fields(queries.tenant(tenant_id))
    assert_same_orders(facts.orders, queries.orders_of(tenant_id))
    assert_same(facts.credentials, usable_client(tenant_id, app_id))
    assert facts.user is None


@pytest.mark.parametrize("ref", ["several", "SEV", "sev", "bare", "BARE", "shared", "Shared", "missing", ""])
def test_the_tenant_a_person_names_is_the_one_tenant_by_ref_finds(tenants, ref):
    # "shared": a deleted and a live tenant with that code, and a third tenant whose ID it is not.
    now = datetime.now(UTC)
    db.session.add_all([Tenant(tenant_id="old-shared", tenant_code="Shared", name="Gone", last_sync_ts="1",
                               domain_name="https://idp.example.com", deleted_at=now),
                        Tenant(tenant_id="live-shared", tenant_code="shared", name="Live", last_sync_ts="1",
                               domain_name="https://idp.example.com"),
                        _app("live-shared", "a", "1")])
    db.session.commit()
    facts = queries.tenant_for_login_by_ref(ref, None)
    found = named_tenant(ref)
    assert_same(facts.tenant, found)
    if found is not None:
        assert_same_orders(facts.orders, queries.orders_of(found.tenant_id))
        assert_same(facts.credentials, usable_client(found.tenant_id, None))


def test_a_tenant_id_wins_over_another_tenants_code(tenants):
    db.session.add(Tenant(tenant_id="sev-2", tenant_code="several", name="Code like an ID", last_sync_ts="1",
                          domain_name="https://idp.example.com"))
    db.session.commit()
    assert queries.tenant_for_login_by_ref("several", None).tenant.name == "Several"
    assert queries.tenant_for_login_by_ref("SEVERAL", None).tenant.name == "Code like an ID"


def test_the_newest_usable_client_is_the_one_a_login_uses(tenants):
    facts = queries.tenant_for_login("several", None)
    assert (facts.credentials.app_id, facts.credentials.client_id) == ("newer", "client-newer")
    assert queries.tenant_for_login("several", "older").credentials.client_secret_enc == "secret-older"
    assert queries.tenant_for_login("several", "gone").credentials is None  # deleted: not usable
    assert [linked for linked, _ in facts.orders] == ["i-new", "i-unknown", "i-old"]  # one row per order
    assert queries.tenant_for_login("missing", None) == queries.TenantFacts(None)


@pytest.mark.parametrize("tenant_id", ["several", "bare", "missing"])
@pytest.mark.parametrize("user_name", ["alice", "bob"])
def test_the_tenant_with_a_user_is_what_the_separate_reads_answer(tenants, tenant_id, user_name):
    facts = queries.tenant_and_user(tenant_id, user_name)
    assert fields(facts.tenant) == fields(queries.tenant(tenant_id))
    assert_same_orders(facts.orders, queries.orders_of(tenant_id))
    assert_same(facts.user, db.session.get(TenantUser, (tenant_id, user_name)))
    assert facts.credentials is None


def test_the_user_read_with_the_tenant_is_that_tenants_user(tenants):
    assert queries.tenant_and_user("several", "alice").user.name == "Alice"
    assert queries.tenant_and_user("bare", "alice").user.name == "Other Alice"
    assert queries.tenant_and_user("several", "bob").user is None


# --- what a whole login sends -----------------------------------------------------------------------


@pytest.fixture
def sent():
    """The statements and commits every app of the test sends, with a marker where the centre is called."""
    log: list[str] = []

    def statement(_conn, _cursor, text, *_args):
        log.append(" ".join(text.split()))

    def commit(_conn):
        log.append("COMMIT")

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    real = AuthCentreClient.exchange_code

    def exchange(self, *args, **kwargs):
        log.append("-- the centre's calls --")
        return real(self, *args, **kwargs)

    AuthCentreClient.exchange_code = exchange
    yield log
    AuthCentreClient.exchange_code = real
    event.remove(Engine, "before_cursor_execute", statement)
    event.remove(Engine, "commit", commit)


def _reads_of_kooGallery_data(statements: list[str]) -> list[str]:
    """The tables each read of what KooGallery told the bridge joins, in order."""
    return [" ".join(sorted(set(re.findall(r"(?:FROM|JOIN) (kg_[a-z_]+)", s)))) for s in statements
            if s.startswith("SELECT") and " kg_" in s]


def _around_the_centre(log: list[str]) -> tuple[list[str], list[str]]:
    """The login's statements before the centre's calls and after them, without the route's rate
    limit (its own transaction, counted before anything else: bench/ runs without it) and without
    what opens a transaction (SQLite's BEGIN IMMEDIATE, PgBouncer mode's SET LOCAL timeouts)."""
    marker = log.index("-- the centre's calls --")
    login = [s for s in log if "sso_rate_window" not in s and not s.startswith(("BEGIN", "SET LOCAL"))]
    while login[0] == "COMMIT":
        login.pop(0)
    cut = login.index("-- the centre's calls --")
    assert marker >= cut
    return login[:cut], login[cut + 1:]


ONE_READ_BEFORE = ["kg_app kg_instance kg_tenant kg_tenant_instance"]
# The tenant again with the user; then the user's department, whose name this centre did not send.
ONE_READ_AFTER = ["kg_instance kg_tenant kg_tenant_instance kg_user", "kg_org"]


def test_a_workbench_login_reads_the_tenant_once_before_the_centre_and_once_after(make_app, synced, idp, sent):
    client = make_app(WORKBENCH_LOGIN="direct").test_client()
    fake_idp(idp)
    sent.clear()  # the sync calls that set the tenant up
    response = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
    assert response.status_code == 302 and response.headers["Location"] == "/sso/"
    before, after = _around_the_centre(sent)
    assert _reads_of_kooGallery_data(before) == ONE_READ_BEFORE and before[-1] == "COMMIT", before
    assert len(before) == 2, before
    assert _reads_of_kooGallery_data(after) == ONE_READ_AFTER, after
    # The session and its audit row are written, and commit with the landing read: one transaction.
    assert [s.split(" (")[0] for s in after if s.startswith("INSERT")] == [
        "INSERT INTO sso_session", "INSERT INTO sso_login_event"]
    assert len(after) == 6 and after[-1] == "COMMIT" and after.count("COMMIT") == 1, after


def test_a_login_we_started_reads_the_tenant_once_each_way(synced, app, client, idp, sent):
    sent.clear()
    response = sign_in(client, idp)
    assert response.status_code == 302
    before, after = _around_the_centre(sent)
    # The start: the tenant, the open states counted, the state stored. The callback: the state
    # spent, the tenant again for the code.
    assert _reads_of_kooGallery_data(before) == ONE_READ_BEFORE * 2, before
    assert [s.split(" ")[0] for s in before if s != "COMMIT"] == ["SELECT", "SELECT", "INSERT", "UPDATE", "SELECT"]
    assert _reads_of_kooGallery_data(after) == ONE_READ_AFTER, after
    assert len(after) == 6 and after[-1] == "COMMIT", after
