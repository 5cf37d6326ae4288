"""The console's long lists page by keyset: walking the Next links shows every row of a list once,
in its order, with its filters; rows that arrive between two page views do not shift the next page;
Previous walks back exactly; a damaged or stale link is a clear page. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from admin import services
from admin.models import AuditEntry
from common.clock import utcnow
from extensions import db
from sso.models import LoginEvent
from tenants.models import Department, SyncCall, Tenant, TenantUser
from tests.test_admin import FAST_HASH, create_operator, error_key, sign_in_operator

SUCCESS = "000000"
# Failures and successes interleaved, over two tenants: 9 failures, 14 successes.
CODES = ["000000", "000002", "000000", "000000", "000001", "000000", "000002", "000000", "000000", "000005",
         "000000", "000000", "000002", "000000", "000003", "000000", "000002", "000000", "000001", "000000",
         "000000", "000002", "000000"]


@pytest.fixture
def console3(make_app):
    """An operator's browser on a console that shows three rows a page."""
    app = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH, ADMIN_PAGE_SIZE=3)
    create_operator(app.test_cli_runner())
    browser = app.test_client()
    assert sign_in_operator(browser).status_code == 303
    browser.application = app
    return browser


def add_sync_calls(app, codes, tenant_of=lambda i: "t" if i % 2 else "u") -> list[tuple[int, str, str]]:
    """(id, result code, tenant) of each row added, in the order added (oldest first)."""
    with app.app_context():
        calls = [SyncCall(request_id=f"r{i}", interface="kit:tenantSync", result_code=code, result_msg="m",
                          duration_ms=1, tenant_id=tenant_of(i)) for i, code in enumerate(codes)]
        db.session.add_all(calls)
        db.session.commit()
        return [(c.id, c.result_code, c.tenant_id) for c in calls]


def failures_first(rows) -> list[int]:
    newest_first = sorted(rows, reverse=True)
    return [i for i, code, _ in newest_first if code != SUCCESS] + [i for i, code, _ in newest_first if code == SUCCESS]


def pager(html: str, list_name: str = "rows") -> str:
    return re.search(rf'<nav class="pager" data-list="{list_name}".*?</nav>', html, re.S).group(0)


def link(html: str, rel: str, list_name: str = "rows") -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', pager(html, list_name))
    return unescape(found.group(1)) if found else None


def walk(browser, url: str, row: str, *, rel: str = "next", list_name: str = "rows") -> tuple[list[str], list[str]]:
    """The rows of every page from `url` on, following `rel` links; and the URLs visited."""
    seen, urls = [], []
    while url:
        response = browser.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = response.get_data(as_text=True)
        page_rows = re.findall(rf'<tr {row}="([^"]+)"', html)
        seen += page_rows[::-1] if rel == "prev" else page_rows
        urls.append(url)
        url = link(html, rel, list_name)
        assert len(urls) < 50, "the links go round in a circle"
    return seen, urls


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def ids(rows) -> list[int]:
    return [int(i) for i in rows]


# --- every row once, in order, with the filters ---------------------------------------------------


def test_walking_the_sync_log_shows_every_call_once_failures_first_newest_first(console3):
    rows = add_sync_calls(console3.application, CODES)
    seen, urls = walk(console3, "/admin/sync", "data-call")
    assert ids(seen) == failures_first(rows)
    assert len(urls) == 8  # 23 rows, 3 a page
    # The failures end inside a page (9 = 3 × 3): the next page starts the successes exactly there.
    assert query(urls[3])["after"] and ids(seen[9:12]) == failures_first(rows)[9:12]

    for url, expected in [
        ("/admin/sync?tenant=t", failures_first([r for r in rows if r[2] == "t"])),
        ("/admin/sync?code=failed", [i for i in failures_first(rows) if dict((r[0], r[1]) for r in rows)[i] != SUCCESS]),
        ("/admin/sync?code=000002", sorted((r[0] for r in rows if r[1] == "000002"), reverse=True)),
        ("/admin/sync?tenant=u&code=000000", sorted((r[0] for r in rows if r[1] == SUCCESS and r[2] == "u"),
                                                    reverse=True)),
    ]:
        seen, urls = walk(console3, url, "data-call")
        assert ids(seen) == expected, url
        filters = query(url)
        for visited in urls[1:]:  # every link kept the filters
            assert {k: v for k, v in query(visited).items() if k != "after"} == filters, visited


def test_walking_back_with_previous_retraces_the_pages_and_the_top_is_the_first_page(console3):
    rows = add_sync_calls(console3.application, CODES)
    forward, urls = walk(console3, "/admin/sync?tenant=t", "data-call")
    backward, back_urls = walk(console3, urls[-1], "data-call", rel="prev")
    assert backward[::-1] == forward  # the same rows, page by page, back to the top
    assert len(back_urls) == len(urls)
    top = console3.get(back_urls[-1]).get_data(as_text=True)
    assert link(top, "prev") is None and 'data-page="first"' not in top  # nothing above the first page
    second = console3.get(urls[1]).get_data(as_text=True)
    first_link = unescape(re.search(r'href="([^"]+)" data-page="first"', second).group(1))
    assert query(first_link) == {"tenant": "t"}  # the first page: the filters, no cursor
    assert ids(forward) == failures_first([r for r in rows if r[2] == "t"])


def test_rows_arriving_between_two_page_views_do_not_shift_the_next_page(console3):
    app = console3.application
    rows = add_sync_calls(app, CODES)
    expected = failures_first(rows)
    first = console3.get("/admin/sync").get_data(as_text=True)
    second_url = link(first, "next")
    second = console3.get(second_url).get_data(as_text=True)
    third_url = link(second, "next")  # still inside the failures
    new = add_sync_calls(app, ["000002", "000000", "000001"])  # newer failures and a success arrive meanwhile
    seen, _ = walk(console3, third_url, "data-call")
    # No row twice, none skipped: the new failures are above the walk's position (a fresh first page
    # shows them); the new success belongs at the head of the successes, which the walk has not reached.
    assert ids(seen) == expected[6:9] + [new[1][0]] + expected[9:]
    # The new rows are at the top, where a fresh walk starts.
    fresh, _ = walk(console3, "/admin/sync", "data-call")
    assert len(fresh) == len(set(fresh)) == len(CODES) + 3

    # Inside the successes: the page after a cursor is the same before and after new rows arrive.
    deep_url = link(console3.get(third_url).get_data(as_text=True), "next")
    deep_url = link(console3.get(deep_url).get_data(as_text=True), "next")
    before = console3.get(deep_url).get_data(as_text=True)
    add_sync_calls(app, ["000000"] * 4 + ["000002"])
    after = console3.get(deep_url).get_data(as_text=True)
    assert re.findall(r'data-call="(\d+)"', after) == re.findall(r'data-call="(\d+)"', before)


def test_the_login_audit_walks_newest_first_with_its_filters(console3):
    app = console3.application
    with app.app_context():
        events = [LoginEvent(request_id=f"r{i}", tenant_id=("t1", "t2")[i % 2], user_name=("ann", "ben", "cy")[i % 3],
                             outcome=("success", "refused", "success", "logout")[i % 4],
                             reason="not_authorised" if i % 4 == 1 else None) for i in range(26)]
        db.session.add_all(events)
        db.session.commit()
        facts = [(e.id, e.tenant_id, e.user_name, e.outcome) for e in events]
    for url, keep in [("/admin/logins", lambda e: True),
                      ("/admin/logins?tenant=t2&outcome=refused", lambda e: e[1] == "t2" and e[3] == "refused"),
                      ("/admin/logins?user=ann", lambda e: e[2] == "ann"),
                      ("/admin/logins?reason=not_authorised&lang=en", lambda e: e[3] == "refused")]:
        seen, urls = walk(console3, url, 'data-outcome="[a-z]+" data-event')
        assert ids(seen) == sorted((e[0] for e in facts if keep(e)), reverse=True), url
        assert all(query(u).items() >= query(url).items() for u in urls), urls


def test_the_operator_audit_and_the_oidc_apps_walk_too(console3):
    app = console3.application
    with app.app_context():
        db.session.add_all([AuditEntry(action="sign_in" if i % 3 else "end_user_sessions", operator=f"op{i % 2}",
                                       target="x") for i in range(11)])
        db.session.commit()
        expected = list(db.session.execute(db.select(AuditEntry.id).where(AuditEntry.operator == "op1")
                                           .order_by(AuditEntry.id.desc())).scalars())
    seen, _ = walk(console3, "/admin/audit?operator=op1", 'data-action="[a-z_]+" data-entry')
    assert ids(seen) == expected and len(expected) > 3


def _tenants(app) -> list[tuple[str, str]]:
    """(code, id) of the tenants added: live ones by code then id, then the deleted ones (the
    console's order)."""
    now = utcnow()
    specs = [(f"t-{i:02d}", f"code{(i * 7) % 13:02d}", None) for i in range(13)]  # codes out of id order
    specs += [("t-20", "", None), ("t-19", "", None)]  # two live tenants without a code: ordered by id
    specs += [("t-30", "code03", now), ("t-31", "code01", now), ("t-29", "code03", now)]  # tombstones share codes
    with app.app_context():
        db.session.add_all([Tenant(tenant_id=t, tenant_code=code, name=f"名称 {t}", domain_name="https://idp.example.com",
                                   last_sync_ts="20260101000000000", deleted_at=deleted) for t, code, deleted in specs])
        db.session.commit()
    live = sorted((code, t) for t, code, deleted in specs if deleted is None)
    gone = sorted((code, t) for t, code, deleted in specs if deleted is not None)
    return live + gone


def test_walking_the_tenants_shows_live_ones_by_code_then_the_deleted(console3):
    tenants = _tenants(console3.application)
    seen, urls = walk(console3, "/admin/tenants", "data-tenant")
    assert seen == [t for _, t in tenants]
    seen, urls = walk(console3, "/admin/tenants?q=CODE0", "data-tenant")  # any case, any part
    assert seen == [t for code, t in tenants if code.startswith("code0")] and len(urls) > 2
    assert all(query(u)["q"] == "CODE0" for u in urls)
    backward, _ = walk(console3, urls[-1], "data-tenant", rel="prev")
    assert backward[::-1] == seen


def test_a_tenants_users_and_departments_page_apart(console3):
    app = console3.application
    _tenants(app)
    with app.app_context():
        names = [f"user{i:02d}" for i in range(8)]
        db.session.add_all([TenantUser(tenant_id="t-01", user_name=n, last_sync_ts="20260101000000000",
                                       deleted_at=utcnow() if n in ("user01", "user05") else None) for n in names])
        db.session.add_all([Department(tenant_id="t-01", org_code=f"D{i}", org_name=f"部门 {i}",
                                       last_sync_ts="20260101000000000") for i in range(7)])
        db.session.commit()
    users, user_urls = walk(console3, "/admin/tenants/t-01", "data-user")
    assert users == [n for n in names if n not in ("user01", "user05")] + ["user01", "user05"]  # live first
    departments, dept_urls = walk(console3, user_urls[1], "data-department", list_name="dept_")
    assert departments == [f"D{i}" for i in range(7)]
    # Paging the departments keeps the users where they were, and back.
    assert all(query(u).get("after") == query(user_urls[1])["after"] for u in dept_urls)
    html = console3.get(dept_urls[-1]).get_data(as_text=True)
    assert re.findall(r'<tr data-user="([^"]+)">', html) == users[3:6]


# --- counts ---------------------------------------------------------------------------------------


def test_the_count_is_shown_on_every_page_and_capped(console3, monkeypatch):
    add_sync_calls(console3.application, CODES)
    html = console3.get("/admin/sync").get_data(as_text=True)
    assert "共 23 条" in pager(html)
    html = console3.get(f"{link(html, 'next')}&lang=en").get_data(as_text=True)
    assert "23 in all" in pager(html)
    monkeypatch.setattr(services, "COUNT_LIMIT", 5)
    seen, urls = walk(console3, "/admin/sync?lang=zh", "data-call")
    assert len(seen) == len(set(seen)) == 23  # capped, the list still pages to its end
    assert "共 5+ 条" in pager(console3.get(urls[-1]).get_data(as_text=True))


def test_a_tenant_search_is_counted_only_when_its_matches_fit_on_a_page(console3):
    _tenants(console3.application)
    # A substring search reads every tenant: counting its matches would read them all again.
    many = console3.get("/admin/tenants?q=code0").get_data(as_text=True)
    assert link(many, "next") and "共" not in pager(many)
    few = console3.get("/admin/tenants?q=code12").get_data(as_text=True)
    assert re.findall(r'<tr data-tenant="([^"]+)"', few) == ["t-11"] and "共 1 条" in pager(few)


# --- damaged and stale links ----------------------------------------------------------------------


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("lang,title", [("zh", "无效的翻页链接"), ("en", "Invalid page link")])
def test_a_damaged_cursor_is_a_clear_page_in_both_languages(console3, lang, title):
    add_sync_calls(console3.application, CODES)
    _tenants(console3.application)
    good = query(link(console3.get("/admin/sync").get_data(as_text=True), "next"))["after"]
    for path in [
        "/admin/sync?after=!!!",  # not base64
        "/admin/sync?after=" + good[:-1] + "x",  # one character changed
        "/admin/sync?after=" + base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        "/admin/sync?after=" + _cursor({"run": 0}),  # not a list
        "/admin/sync?after=" + _cursor(7),
        "/admin/sync?after=" + _cursor([]),
        "/admin/sync?after=" + _cursor([2, 5]),  # the sync log has two runs
        "/admin/sync?code=failed&after=" + _cursor([1, 5]),  # "failures only" has one
        "/admin/sync?after=" + _cursor([0, "5"]),  # an id is a number
        "/admin/sync?after=" + _cursor([0, True]),
        "/admin/sync?after=" + _cursor([0, 5.5]),
        "/admin/sync?after=" + _cursor([0, 10**30]),  # past what the databases bind
        "/admin/sync?after=" + _cursor([0, 5, 6]),
        "/admin/sync?after=" + "A" * 600,
        f"/admin/sync?after={good}&before={good}",
        "/admin/tenants?after=" + _cursor([0, "code", 5]),
        "/admin/tenants?after=" + _cursor([0, "co\u0000de", "t-01"]),  # NUL: no database takes it
        "/admin/tenants?after=" + _cursor([0, "\ud800", "t-01"]),  # a lone surrogate
        "/admin/tenants?before=" + _cursor([0, "x" * 65, "t-01"]),  # longer than any code
        "/admin/logins?before=" + _cursor([1, 5]),
        "/admin/tenants/t-01?dept_after=" + _cursor([0, None]),
    ]:
        response = console3.get(f"{path}&lang={lang}")
        html = response.get_data(as_text=True)
        assert (response.status_code, error_key(response)) == (400, "bad_cursor"), path
        assert title in html and 'class="console-nav"' in html, path  # inside the console, in its language


def test_a_cursor_past_the_end_says_the_page_is_gone(console3):
    rows = add_sync_calls(console3.application, CODES)
    oldest_success = min(i for i, code, _ in rows if code == SUCCESS)
    response = console3.get("/admin/sync?after=" + services.cursor(1, oldest_success))
    assert (response.status_code, error_key(response)) == (404, "stale_cursor")
    assert "该页已不存在" in response.get_data(as_text=True)
    # A cursor whose row was removed still places the page: the rows after where it was.
    response = console3.get("/admin/sync?after=" + services.cursor(1, oldest_success + 1000))
    assert response.status_code == 200 and response.get_data(as_text=True).count("data-call=") == 3


def test_a_stale_before_cursor_falls_back_to_the_first_page(console3):
    rows = add_sync_calls(console3.application, CODES)
    newest_failure = failures_first(rows)[0]
    html = console3.get("/admin/sync?before=" + services.cursor(0, newest_failure)).get_data(as_text=True)
    assert ids(re.findall(r'data-call="(\d+)"', html)) == failures_first(rows)[:3]
    assert link(html, "prev") is None


def test_old_page_number_links_show_the_first_page(console3):
    add_sync_calls(console3.application, CODES)
    old, first = console3.get("/admin/sync?page=4"), console3.get("/admin/sync")
    assert old.status_code == 200
    assert re.findall(r'data-call="(\d+)"', old.get_data(as_text=True)) == re.findall(
        r'data-call="(\d+)"', first.get_data(as_text=True))


def test_a_deep_page_sends_the_statements_a_shallow_one_does(console3):
    """A page reads its rows after the cursor, and the capped count: the page right after the
    newest success sends the same statements as the page of the oldest ones, and none an OFFSET."""
    from sqlalchemy import event

    app = console3.application
    rows = add_sync_calls(app, CODES + [SUCCESS] * 30)
    successes = sorted((i for i, code, _ in rows if code == SUCCESS), reverse=True)
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "kg_sync_call" in statement and "DISTINCT" not in statement:
            statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            assert console3.get("/admin/sync?after=" + services.cursor(1, successes[0])).status_code == 200
            shallow, statements[:] = list(statements), []
            assert console3.get("/admin/sync?after=" + services.cursor(1, successes[-4])).status_code == 200
            deep = list(statements)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        dialect = db.engine.dialect.name
    assert shallow == deep and len(deep) == 3, deep  # the successes after the cursor; the two counts
    if dialect == "postgresql":  # SQLite's dialect writes LIMIT ? OFFSET 0 for any LIMIT
        assert not any("OFFSET" in s.upper() for s in deep)
