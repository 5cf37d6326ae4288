"""The operator console through the Flask test client: accounts on the command line, signing in
(lockout, TOTP, CSRF, timeouts), every page, ending sessions, and both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest
from cryptography.fernet import Fernet

from admin import accounts
from admin.models import AuditEntry, Operator, OperatorSession, SignInFailure
from common.clock import utcnow
from common.hashing import hash_token
from extensions import db
from keys import keyring
from sso.models import UserSession
from sso.oidc.models import BackchannelLogout, OidcClient
from tenants.models import Tenant, TenantApp
from tests import factories as f
from tests.helpers import code_of, ok
from tests.oidc_fixtures import register, tokens_for
from tests.sso_fixtures import SECRET, fake_idp, sign_in, start

PASSWORD = "correct horse battery"
FAST_HASH = "scrypt:1024:8:1"  # the tests check the logic, not scrypt's cost
PAGES = ["/admin/", "/admin/tenants", f"/admin/tenants/{f.TENANT}", "/admin/sync", "/admin/sync/1", "/admin/logins",
         "/admin/apps", "/admin/apps/some-client", "/admin/audit"]


@pytest.fixture
def app(make_app):
    return make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH)


def create_operator(runner, name="ops", *flags, password=PASSWORD) -> str:
    result = runner.invoke(args=["admin", "create-user", name, "--password-stdin", *flags], input=f"{password}\n")
    assert result.exit_code == 0, result.output
    return result.output


def csrf_of(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def sign_in_operator(client, name="ops", password=PASSWORD, **environ):
    token = csrf_of(client.get("/admin/login"))
    return client.post("/admin/login", data={"csrf_token": token, "username": name, "password": password},
                       **({"environ_base": environ} if environ else {}))


def enter_code(client, code: str):
    token = csrf_of(client.get("/admin/login/code"))
    return client.post("/admin/login/code", data={"csrf_token": token, "code": code})


def totp_of(output: str) -> pyotp.TOTP:
    return pyotp.parse_uri(re.search(r"otpauth://\S+", output).group(0))


def post_form(client, path, page="/admin/tenants", **data):
    return client.post(path, data={"csrf_token": csrf_of(client.get(page)), **data})


def error_key(response) -> str | None:
    found = re.search(r'data-error="([^"]+)"', response.get_data(as_text=True))
    return found.group(1) if found else None


def rows(app, model, **where):
    with app.app_context():
        return list(db.session.execute(db.select(model).filter_by(**where)).scalars())


def audit_actions(app) -> list[tuple]:
    return [(e.action, e.operator, e.target) for e in rows(app, AuditEntry)]


def age(app, model, **delta):
    """Move every row's timestamps back in time, as if that much time had passed."""
    with app.app_context():
        for row in db.session.execute(db.select(model)).scalars():
            for column in ("created_at", "last_seen_at", "expires_at"):
                if hasattr(row, column):
                    setattr(row, column, getattr(row, column) - timedelta(**delta))
        db.session.commit()


@pytest.fixture
def operator(runner):
    create_operator(runner)


@pytest.fixture
def console(app, operator):
    """An operator's browser, signed in: its own cookie jar, apart from any end user's."""
    browser = app.test_client()
    assert sign_in_operator(browser).status_code == 303
    return browser


# --- the command line -----------------------------------------------------------------------------



def without_volatile_parts(response) -> str:
    """A page minus the echoed form values and the request id."""
    return re.sub(r'value="[^"]*"|<code>[^<]*</code>', "", response.get_data(as_text=True))

def test_create_user_prompts_twice_and_stores_only_a_scrypt_hash(app, runner):
    result = runner.invoke(args=["admin", "create-user", "Alice.Ops"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat the password" in result.output and "created operator alice.ops" in result.output
    [stored] = rows(app, Operator)
    assert stored.username == "alice.ops" and stored.password_hash.startswith("scrypt:")
    assert PASSWORD not in stored.password_hash and stored.totp_secret_enc is None
    listed = runner.invoke(args=["admin", "list-users"]).output
    assert re.search(r"alice\.ops\s+active\s+no\s", listed) and stored.password_hash not in listed


def test_mismatched_prompts_are_asked_again(runner):
    result = runner.invoke(args=["admin", "create-user", "ops"], input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0 and "created operator ops" in result.output


def test_create_user_refuses_weak_passwords_and_bad_names(app, runner):
    for name, password, message in [("ops", "short-pass1", "at least 12 characters"),
                                     ("ops", "x" * 1025, "at most 1024"),
                                     (".ops", PASSWORD, "a username is"),
                                     ("ops with space", PASSWORD, "a username is")]:
        result = runner.invoke(args=["admin", "create-user", name, "--password-stdin"], input=f"{password}\n")
        assert result.exit_code != 0 and message in result.output, (name, password[:20])
    assert rows(app, Operator) == []


def test_create_user_refuses_a_taken_name(runner, operator):
    result = runner.invoke(args=["admin", "create-user", "OPS", "--password-stdin"], input=f"{PASSWORD}\n")
    assert result.exit_code != 0 and "exists already" in result.output


def test_totp_uri_is_printed_once_and_the_secret_stored_encrypted(app, runner):
    output = create_operator(runner, "ops", "--totp")
    totp = totp_of(output)
    assert totp.name == "ops" and totp.issuer == "SSO Bridge"
    [stored] = rows(app, Operator)
    assert totp.secret not in stored.totp_secret_enc
    with app.app_context():
        assert keyring().data.decrypt(stored.totp_secret_enc) == totp.secret
    listed = runner.invoke(args=["admin", "list-users"]).output
    assert re.search(r"ops\s+active\s+yes\s", listed) and "otpauth" not in listed and totp.secret not in listed


def test_totp_secret_follows_a_data_key_rotation(make_app, base_config, runner):
    secret = totp_of(create_operator(runner, "ops", "--totp")).secret
    new_key = Fernet.generate_key().decode()
    rotating = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH, DATA_KEYS=[new_key, *base_config["DATA_KEYS"]])
    assert rotating.test_cli_runner().invoke(args=["keys", "rotate-data"]).exit_code == 0
    only_new = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH, DATA_KEYS=[new_key])
    [stored] = rows(only_new, Operator)
    with only_new.app_context():
        assert keyring().data.decrypt(stored.totp_secret_enc) == secret


def test_reset_password_ends_sessions_and_only_the_new_password_works(app, runner, console):
    result = runner.invoke(args=["admin", "reset-password", "ops", "--password-stdin"], input="another long password\n")
    assert result.exit_code == 0 and "their sessions have ended" in result.output
    assert console.get("/admin/tenants").status_code == 303
    assert [s.end_reason for s in rows(app, OperatorSession)] == ["password_reset"]
    assert sign_in_operator(app.test_client()).status_code == 401
    assert sign_in_operator(app.test_client(), password="another long password").status_code == 303


def test_reset_password_with_totp_replaces_the_secret(app, runner):
    old = totp_of(create_operator(runner, "ops", "--totp"))
    result = runner.invoke(args=["admin", "reset-password", "ops", "--totp", "--password-stdin"], input=f"{PASSWORD}\n")
    new = totp_of(result.output)
    assert new.secret != old.secret
    browser = app.test_client()
    sign_in_operator(browser)
    assert enter_code(browser, old.now()).status_code == 401
    assert enter_code(browser, new.now()).status_code == 303


def test_disable_user_ends_sessions_and_refuses_sign_in_until_enabled(app, runner, console):
    assert runner.invoke(args=["admin", "disable-user", "ops"]).exit_code == 0
    assert console.get("/admin/tenants").status_code == 303
    assert "disabled" in runner.invoke(args=["admin", "list-users"]).output
    refused = sign_in_operator(app.test_client())
    assert refused.status_code == 401 and error_key(refused) == "bad_credentials"  # says no more than a typo
    assert runner.invoke(args=["admin", "enable-user", "ops"]).exit_code == 0
    assert sign_in_operator(app.test_client()).status_code == 303


def test_cli_names_unknown_operators_and_audits_what_it_did(app, runner, operator):
    for args in (["reset-password", "nobody", "--password-stdin"], ["disable-user", "nobody"], ["enable-user", "nobody"]):
        result = runner.invoke(args=["admin", *args], input=f"{PASSWORD}\n")
        assert result.exit_code != 0 and "no operator named 'nobody'" in result.output
    runner.invoke(args=["admin", "disable-user", "ops"])
    actions = [(a, target) for a, who, target in audit_actions(app) if who.startswith("cli")]
    assert actions == [("operator_created", "ops"), ("operator_disabled", "ops")]


def test_list_users_with_none_says_how_to_start(runner):
    assert "flask admin create-user" in runner.invoke(args=["admin", "list-users"]).output


# --- access control -------------------------------------------------------------------------------


def test_every_page_needs_an_operator_session(client):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/admin/login?next="), path
        assert response.headers["Cache-Control"] == "no-store"


def test_state_changes_need_csrf_and_then_a_session(app, client, console):
    for path in (f"/admin/tenants/{f.TENANT}/end-sessions", "/admin/logout"):
        refused = client.post(path)  # no token: refused before anything else
        assert refused.status_code == 400 and error_key(refused) == "csrf"
        # A valid token of a browser with no operator session: back to sign-in, nothing done.
        assert post_form(client, path, page="/admin/login").status_code == 303
        assert console.post(path, data={"csrf_token": "forged"}).status_code == 400
    assert console.get("/admin/tenants").status_code == 200  # the forged logout ended nothing
    assert console.get("/admin/logout").status_code == 405
    assert console.get(f"/admin/tenants/{f.TENANT}/end-sessions").status_code == 405


def test_next_returns_to_the_page_asked_for_but_only_inside_the_console(app, operator):
    browser = app.test_client()
    location = browser.get("/admin/logins?outcome=refused").headers["Location"]
    page = browser.get(location)
    token = csrf_of(page)
    assert 'name="next" value="/admin/logins?outcome=refused"' in page.get_data(as_text=True)
    signed = browser.post("/admin/login", data={"csrf_token": token, "username": "ops", "password": PASSWORD,
                                                "next": "/admin/logins?outcome=refused"})
    assert signed.headers["Location"] == "/admin/logins?outcome=refused"
    for evil in ("https://evil.example.com/", "//evil.example.com/admin/", "/sso/", "/admin/logout"):
        other = app.test_client()
        token = csrf_of(other.get("/admin/login"))
        response = other.post("/admin/login", data={"csrf_token": token, "username": "ops", "password": PASSWORD,
                                                    "next": evil})
        assert response.headers["Location"] == "/admin/tenants", evil


def test_an_end_users_session_is_not_an_operator_session(synced, client, idp):
    sign_in(client, idp)
    assert client.get("/sso/me").status_code == 200
    assert client.get("/admin/tenants").status_code == 303


def test_pages_are_no_store_and_cannot_be_framed(console):
    for path in ("/admin/tenants", "/admin/login", "/admin/tenants/unknown"):
        response = console.get(path)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# --- signing in -----------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_httponly_cookie_and_stores_only_its_hash(app, operator):
    response = sign_in_operator(app.test_client())
    assert response.status_code == 303 and response.headers["Location"] == "/admin/tenants"
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("bridge_admin="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie and "Secure" not in cookie
    raw_id = cookie.split(";")[0].split("=", 1)[1]
    [stored] = rows(app, OperatorSession)
    assert stored.id_hash == hash_token(raw_id) and raw_id not in stored.id_hash
    assert stored.expires_at - stored.created_at == timedelta(hours=8)
    assert ("sign_in", "ops", None) in audit_actions(app)


def test_cookie_is_secure_when_configured(make_app):
    app = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH, COOKIE_SECURE=True)
    create_operator(app.test_cli_runner())
    cookie = next(c for c in sign_in_operator(app.test_client()).headers.getlist("Set-Cookie")
                  if c.startswith("__Host-bridge_admin="))
    assert "Secure" in cookie and "Path=/;" in cookie + ";" and "Domain" not in cookie and "SameSite=Strict" in cookie


def test_wrong_password_and_unknown_user_get_the_same_answer(app, operator):
    wrong = sign_in_operator(app.test_client(), password="wrong password!")
    unknown = sign_in_operator(app.test_client(), name="nobody")
    assert wrong.status_code == unknown.status_code == 401
    assert error_key(wrong) == error_key(unknown) == "bad_credentials"
    # The pages differ only in the echoed username, the form token and the request id.
    assert without_volatile_parts(wrong) == without_volatile_parts(unknown)
    assert "用户名或密码不正确。" in wrong.get_data(as_text=True)
    refusals = [who for action, who, _ in audit_actions(app) if action == "sign_in_refused"]
    assert refusals == ["ops", "nobody"]


def test_session_id_rotates_at_every_sign_in(app, console):
    first = console.get_cookie("bridge_admin", path="/admin").value
    token = csrf_of(console.get("/admin/tenants"))
    assert console.post("/admin/login", data={"csrf_token": token, "username": "ops", "password": PASSWORD}
                        ).status_code == 303
    second = console.get_cookie("bridge_admin", path="/admin").value
    assert first != second
    ended = {s.id_hash: s.end_reason for s in rows(app, OperatorSession)}
    assert ended == {hash_token(first): "replaced", hash_token(second): None}


def test_sign_out_ends_the_session(app, console):
    response = post_form(console, "/admin/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/login"
    assert any(c.startswith("bridge_admin=;") for c in response.headers.getlist("Set-Cookie"))
    assert [s.end_reason for s in rows(app, OperatorSession)] == ["logout"]
    assert "您已退出运营控制台" in console.get("/admin/login").get_data(as_text=True)
    assert console.get("/admin/tenants").status_code == 303
    assert ("sign_out", "ops", None) in audit_actions(app)


def test_idle_session_ends_after_30_minutes(app, console):
    age(app, OperatorSession, minutes=29)
    assert console.get("/admin/tenants").status_code == 200  # seen again: the idle clock restarts
    with app.app_context():
        db.session.execute(db.update(OperatorSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
        db.session.commit()
    assert console.get("/admin/tenants").status_code == 303
    assert [s.end_reason for s in rows(app, OperatorSession)] == ["idle"]


def test_session_ends_after_8_hours_however_active(app, console):
    with app.app_context():
        db.session.execute(db.update(OperatorSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert console.get("/admin/tenants").status_code == 303
    assert [s.end_reason for s in rows(app, OperatorSession)] == ["expired"]


# --- the lockout ----------------------------------------------------------------------------------


def test_five_failures_lock_the_account_from_that_client_for_15_minutes(app, operator):
    for _ in range(5):
        assert sign_in_operator(app.test_client(), password="wrong password!").status_code == 401
    locked = sign_in_operator(app.test_client())  # even the right password
    assert locked.status_code == 429 and error_key(locked) == "locked"
    assert int(locked.headers["Retry-After"]) > 14 * 60
    assert "15 分钟后重试" in locked.get_data(as_text=True)
    # A stranger who knows the name cannot keep the operator out: from another client it works.
    assert sign_in_operator(app.test_client(), **{"REMOTE_ADDR": "192.0.2.9"}).status_code == 303
    age(app, SignInFailure, minutes=14)
    assert sign_in_operator(app.test_client()).status_code == 429
    age(app, SignInFailure, minutes=1, seconds=1)
    assert sign_in_operator(app.test_client()).status_code == 303
    # Five refusals audited; the attempts refused while locked are only logged.
    assert [who for a, who, _ in audit_actions(app) if a == "sign_in_refused"] == ["ops"] * 5


def test_failures_from_one_address_lock_that_address_for_every_username(app, runner, operator):
    for i in range(accounts.CLIENT_MAX_FAILURES):
        sign_in_operator(app.test_client(), name=f"a{i}", **{"REMOTE_ADDR": "198.51.100.7"})
    assert sign_in_operator(app.test_client(), **{"REMOTE_ADDR": "198.51.100.7"}).status_code == 429
    assert sign_in_operator(app.test_client(), **{"REMOTE_ADDR": "198.51.100.8"}).status_code == 303


def test_success_resets_the_count(app, operator):
    for _ in range(2):
        for _ in range(4):
            sign_in_operator(app.test_client(), password="wrong password!")
        assert sign_in_operator(app.test_client()).status_code == 303
    assert rows(app, SignInFailure) == []


def test_failures_are_counted_across_processes(make_app, operator):
    # Two app objects on one database are two bridge processes as far as the counting goes.
    one, two = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH), make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH)
    for app in (one, two, one, two, one):
        sign_in_operator(app.test_client(), password="wrong password!")
    assert sign_in_operator(two.test_client()).status_code == 429


def test_flask_admin_unlock_lifts_the_lockout(app, runner, operator):
    for _ in range(5):
        sign_in_operator(app.test_client(), password="wrong password!")
    assert sign_in_operator(app.test_client()).status_code == 429
    result = runner.invoke(args=["admin", "unlock", "ops"])
    assert result.exit_code == 0 and "unlocked ops" in result.output
    assert sign_in_operator(app.test_client()).status_code == 303
    assert "operator_unlocked" in [a for a, _, _ in audit_actions(app)]
    assert runner.invoke(args=["admin", "unlock", "nobody"]).exit_code != 0


def test_lockout_rule():
    now = utcnow()
    at = [now - timedelta(minutes=m) for m in (30, 10, 9, 8, 7)]  # five, but not within 15 minutes
    assert accounts.lockout_until(at, now) is None
    at = [now - timedelta(minutes=m) for m in (14, 10, 9, 8, 1)]
    assert accounts.lockout_until(at, now) == now - timedelta(minutes=1) + accounts.LOCKOUT
    at = [now - timedelta(minutes=m) for m in (29, 28, 27, 26, 16)]  # locked 16 minutes ago: over
    assert accounts.lockout_until(at, now) is None
    assert accounts.lockout_until(at[:4], now) is None


# --- TOTP -----------------------------------------------------------------------------------------


@pytest.fixture
def totp(runner) -> pyotp.TOTP:
    return totp_of(create_operator(runner, "ops", "--totp"))


def test_totp_operator_signs_in_with_a_current_code(app, totp):
    browser = app.test_client()
    step = sign_in_operator(browser)
    assert step.status_code == 303 and step.headers["Location"] == "/admin/login/code"
    assert not browser.get_cookie("bridge_admin", path="/admin")  # the password alone opens nothing
    assert browser.get("/admin/tenants").status_code == 303
    page = browser.get("/admin/login/code").get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page
    wrong = enter_code(browser, "000000" if totp.now() != "000000" else "111111")
    assert wrong.status_code == 401 and error_key(wrong) == "bad_code"
    signed = enter_code(browser, totp.now())
    assert signed.status_code == 303 and signed.headers["Location"] == "/admin/tenants"
    assert browser.get("/admin/tenants").status_code == 200
    assert any(a == "sign_in" for a, _, _ in audit_actions(app))


def test_a_totp_code_works_once(app, totp):
    code = totp.now()
    first = app.test_client()
    sign_in_operator(first)
    assert enter_code(first, code).status_code == 303
    second = app.test_client()
    sign_in_operator(second)
    assert enter_code(second, code).status_code == 401


def test_wrong_codes_count_towards_the_lockout(app, totp):
    browser = app.test_client()
    sign_in_operator(browser)
    for _ in range(5):
        enter_code(browser, "12345x")
    locked = enter_code(browser, totp.now())  # even the right code
    assert locked.status_code == 429 and error_key(locked) == "locked"
    assert sign_in_operator(browser).status_code == 429


def test_code_step_expires_after_five_minutes(app, totp):
    browser = app.test_client()
    sign_in_operator(browser)
    with browser.session_transaction() as flow:
        flow["admin_pending"] = {**flow["admin_pending"], "at": flow["admin_pending"]["at"] - 301}
    assert browser.get("/admin/login/code").headers["Location"] == "/admin/login"
    token = csrf_of(browser.get("/admin/login"))
    expired = browser.post("/admin/login/code", data={"csrf_token": token, "code": totp.now()})
    assert expired.status_code == 401 and error_key(expired) == "code_expired"
    assert not browser.get_cookie("bridge_admin", path="/admin")


# --- the pages ------------------------------------------------------------------------------------


@pytest.fixture
def populated(synced, client, idp, kg):
    """acme (from the SSO tests) with alice signed in, an instance, and one refused sync call."""
    assert sign_in(client, idp).status_code == 302
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    assert code_of(kg.kit("authSync", f.auth_sync([f.user("erin", enable="maybe")]))) != "000000"
    return kg


def test_console_values_are_translated_and_times_in_the_operators_zone(app, populated, console):
    def text(path):
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", console.get(path).get_data(as_text=True)))

    zh, en = text("/admin/tenants?lang=zh"), text("/admin/tenants?lang=en")
    assert "到期时间 Asia/Shanghai" in zh and "expiry Asia/Shanghai" in en
    assert "inst-1 正常" in zh and "inst-1 active" in en and "ACTIVE" not in zh + en
    with app.app_context():
        tenant = db.session.get(Tenant, f.TENANT)
        stamp = tenant.last_sync_ts
    shanghai = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    zh, en = text(f"/admin/tenants/{f.TENANT}?lang=zh"), text(f"/admin/tenants/{f.TENANT}?lang=en")
    assert f"{shanghai:%Y-%m-%d %H:%M:%S} Asia/Shanghai" in zh and stamp not in zh
    assert "最近活动 (Asia/Shanghai)" in zh and "Last seen (Asia/Shanghai)" in en
    assert "企业管理员" in zh and "普通用户" in zh and "company administrator" in en  # alice is admin, bob a user
    zh, en = text("/admin/sync?lang=zh"), text("/admin/sync?lang=en")
    assert "请求参数不合法" in zh and "Invalid parameter" in en and "时间 (Asia/Shanghai)" in zh


def test_tenants_page_shows_status_instances_apps_and_counts_never_a_secret(app, populated, console):
    page = console.get("/admin/tenants").get_data(as_text=True)
    row = re.search(rf'<tr data-tenant="{f.TENANT}">(.*?)</tr>', page, re.S).group(1)

    def field(name):
        return re.sub(r"\s+", " ", re.search(rf'data-field="{name}">(.*?)</td>', row, re.S).group(1))

    assert "Acme 科技" in row and "acme" in row
    assert "正常" in field("status")
    assert "inst-1" in field("instances") and "正常" in field("instances") and "ACTIVE" not in field("instances")
    assert "acme-client" in field("apps") and "已保存" in field("apps")
    assert re.sub(r"<[^>]+>", "", field("users")).strip() == "4"  # alice, bob, carol (disabled), dave (revoked)
    assert re.sub(r"<[^>]+>", "", field("departments")).strip() == "1"
    assert re.sub(r"<[^>]+>", "", field("sessions")).strip() == "1"
    [app_row] = rows(app, TenantApp)
    assert SECRET not in page and app_row.client_secret_enc not in page


def test_tenant_search_finds_by_code_and_says_when_nothing_matches(populated, console):
    assert f.TENANT in console.get("/admin/tenants?q=ACM").get_data(as_text=True)
    assert "没有记录" in console.get("/admin/tenants?q=zzz").get_data(as_text=True)


def test_tenant_page_shows_users_departments_instances_apps_and_sessions(populated, console):
    page = console.get(f"/admin/tenants/{f.TENANT}").get_data(as_text=True)

    def user(name):
        return re.search(rf'<tr data-user="{name}">(.*?)</tr>', page, re.S).group(1)

    def may(name):
        return re.search(r'data-field="may-sign-in">(.*?)</td>', user(name), re.S).group(1)

    assert "是" in may("alice") and "否" in may("carol") and "否" in may("dave")
    assert re.search(r'data-field="enabled">.*?否', user("carol"), re.S)
    assert re.search(r'data-field="authorised">.*?否', user("dave"), re.S)
    assert 'data-end-user="alice"' in user("alice")
    assert '<tr data-session-user="alice">' in page and 'id="end-tenant-sessions"' in page
    assert "研发部" in page and "inst-1" in page and "acme-client" in page
    assert SECRET not in page
    assert 'data-field="login-block"' in page and "可以登录" in page


def test_ending_a_users_sessions_revokes_tokens_and_queues_backchannel_logout(app, signed_in, app_client, console):
    tokens_for(signed_in, app_client)
    response = post_form(console, f"/admin/tenants/{f.TENANT}/end-user-sessions", user_name="alice")
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/tenants/{f.TENANT}"
    assert "已结束用户 alice 的 1 个会话" in console.get(response.headers["Location"]).get_data(as_text=True)
    [ended] = rows(app, UserSession)
    assert ended.ended_at is not None and ended.end_reason == "operator"
    [logout] = rows(app, BackchannelLogout)
    assert logout.client_id == app_client[0] and logout.uri == "https://app.example.com/backchannel"
    assert signed_in.get("/sso/me").status_code == 401
    assert ("end_user_sessions", "ops", f"{f.TENANT}/alice") in audit_actions(app)
    [entry] = rows(app, AuditEntry, action="end_user_sessions")
    assert entry.detail == "1 session(s) ended"


def test_ending_all_sessions_of_a_tenant(app, synced, client, idp, console):
    bob = app.test_client()
    sign_in(client, idp)
    sign_in(bob, idp, user="bob")
    assert {s.user_name for s in rows(app, UserSession, ended_at=None)} == {"alice", "bob"}
    response = post_form(console, f"/admin/tenants/{f.TENANT}/end-sessions")
    assert "已结束该租户的 2 个会话" in console.get(response.headers["Location"]).get_data(as_text=True)
    assert rows(app, UserSession, ended_at=None) == []
    assert client.get("/sso/me").status_code == 401 and bob.get("/sso/me").status_code == 401
    assert ("end_tenant_sessions", "ops", f.TENANT) in audit_actions(app)


def test_ending_sessions_of_an_unknown_tenant_or_without_a_user_is_a_clear_page(console):
    response = post_form(console, "/admin/tenants/nope/end-sessions")
    assert response.status_code == 404 and error_key(response) == "unknown_tenant"
    response = post_form(console, f"/admin/tenants/{f.TENANT}/end-user-sessions", user_name="")
    assert response.status_code == 400 and error_key(response) == "bad_filter"


def test_sync_log_shows_failures_first_with_the_exact_reason(app, populated, console):
    page = console.get("/admin/sync").get_data(as_text=True)
    codes = re.findall(r'data-code="(\d{6})"', page)
    assert codes[0] != "000000" and set(codes[1:]) == {"000000"}
    assert "userList[0].enable" in re.search(r'data-field="result-msg">(.*?)</td>', page).group(1)
    assert "请求参数不合法" in re.search(r'data-field="result-msg">(.*?)</td>', page).group(1)
    only_ok = console.get("/admin/sync?code=000000").get_data(as_text=True)
    assert set(re.findall(r'data-code="(\d{6})"', only_ok)) == {"000000"}
    failed = console.get("/admin/sync?code=failed").get_data(as_text=True)
    assert re.findall(r'data-code="(\d{6})"', failed) == codes[:1]
    assert 'data-call=' not in console.get("/admin/sync?tenant=someone-else").get_data(as_text=True)
    assert console.get("/admin/sync?code=abc").status_code == 400


def test_sync_call_detail_shows_the_redacted_body(app, populated, console):
    page = console.get("/admin/sync").get_data(as_text=True)
    ids = re.findall(r'data-call="(\d+)"', page)
    bodies = [console.get(f"/admin/sync/{i}").get_data(as_text=True) for i in ids]
    application = next(b for b in bodies if "applicationSync" in b)
    assert "[redacted]" in application and "acme-client" in application and SECRET not in application
    assert '<pre class="body" id="body">' in application


def test_login_audit_lists_outcomes_and_filters(app, synced, client, idp, console):
    sign_in(client, idp)
    refused = app.test_client()
    _, params = start(refused)
    fake_idp(idp, "carol")
    refused.get("/sso/callback", query_string={"code": "c2", "state": params["state"], "tenant": f.TENANT})
    page = console.get("/admin/logins").get_data(as_text=True)
    assert re.findall(r'<tr data-outcome="(\w+)"', page) == ["refused", "success"]
    assert "user_disabled" in page and "账号已被停用" in page
    only = console.get("/admin/logins?outcome=refused&user=carol").get_data(as_text=True)
    assert re.findall(r'data-field="user">(\w+)<', only) == ["carol"]
    assert console.get("/admin/logins?outcome=nonsense").status_code == 400


def test_oidc_apps_are_listed_without_secrets(app, runner, console):
    client_id, secret = register(runner, "--backchannel-logout-uri", "https://app.example.com/backchannel")
    listing = console.get("/admin/apps").get_data(as_text=True)
    assert "Demo App" in listing and client_id in listing and "https://app.example.com/callback" in listing
    detail = console.get(f"/admin/apps/{client_id}").get_data(as_text=True)
    assert "https://app.example.com/backchannel" in detail and "client_secret_basic" in detail
    [stored] = rows(app, OidcClient)
    for page in (listing, detail):
        assert secret not in page and stored.client_secret not in page


def test_audit_page_shows_sign_ins_and_actions_with_filters(app, console, populated):
    post_form(console, f"/admin/tenants/{f.TENANT}/end-user-sessions", user_name="alice")
    page = console.get("/admin/audit").get_data(as_text=True)
    assert re.findall(r'<tr data-action="(\w+)"', page) == ["end_user_sessions", "sign_in", "operator_created"]
    filtered = console.get("/admin/audit?action=sign_in").get_data(as_text=True)
    assert re.findall(r'<tr data-action="(\w+)"', filtered) == ["sign_in"]


def test_bad_input_is_a_clear_page(console):
    for path, status, key in [
        ("/admin/tenants/no-such-tenant", 404, "unknown_tenant"),
        ("/admin/tenants?after=x", 400, "bad_cursor"),  # the cases are in tests/test_admin_paging.py
        ("/admin/sync?code=failed&before=x", 400, "bad_cursor"),
        ("/admin/sync/999", 404, "unknown_sync_call"),
        ("/admin/sync/abc", 404, None),  # not a route at all: the bridge's own page
        ("/admin/apps/nope", 404, "unknown_app"),
        ("/admin/logins?tenant=" + "x" * 65, 400, "bad_filter"),
    ]:
        response = console.get(path)
        assert (response.status_code, error_key(response)) == (status, key), path
        if key:
            assert 'class="console-nav"' in response.get_data(as_text=True)  # still inside the console


def test_long_lists_are_paginated_keeping_the_filters(make_app, synced):
    app = make_app(ADMIN_PASSWORD_HASH_METHOD=FAST_HASH, ADMIN_PAGE_SIZE=2)
    create_operator(app.test_cli_runner())
    browser = app.test_client()
    sign_in_operator(browser)
    first = browser.get(f"/admin/tenants/{f.TENANT}").get_data(as_text=True)
    assert re.findall(r'<tr data-user="(\w+)">', first) == ["alice", "bob"]
    assert "共 4 条" in first
    after = re.search(r'rel="next" href="[^"]*[?&]amp;after=([\w-]+)"', first.replace("?", "?&amp;")).group(1)
    second = browser.get(f"/admin/tenants/{f.TENANT}?after={after}").get_data(as_text=True)
    assert re.findall(r'<tr data-user="(\w+)">', second) == ["carol", "dave"]
    assert 'rel="next"' not in second and 'rel="prev"' in second
    sync = browser.get("/admin/sync?code=000000").get_data(as_text=True)
    assert re.search(r'rel="next" href="/admin/sync\?code=000000&amp;after=[\w-]+"', sync)


def test_pages_speak_both_languages(populated, console):
    for path, zh, en in [("/admin/tenants", "租户", "Tenants"), ("/admin/sync", "同步日志", "Sync log"),
                         ("/admin/logins", "登录记录", "Login audit"), ("/admin/apps", "OIDC 应用", "OIDC apps"),
                         ("/admin/audit", "操作审计", "Operator audit"),
                         (f"/admin/tenants/{f.TENANT}", "结束该租户的所有会话", "End all sessions of this tenant")]:
        english = console.get(f"{path}?lang=en").get_data(as_text=True)
        assert en in english and "SSO Bridge console" in english and 'lang="en"' in english
        chinese = console.get(f"{path}?lang=zh").get_data(as_text=True)
        assert zh in chinese and "SSO Bridge 运营控制台" in chinese and 'lang="zh-CN"' in chinese
    login = console.get("/admin/login?lang=en")  # signed in: straight on to the console
    assert login.status_code == 302


# --- the console's home: the last 24 hours --------------------------------------------------------


def _add_event(app, hours_ago: float, outcome: str, reason: str | None = None):
    from sso.models import LoginEvent

    with app.app_context():
        db.session.add(LoginEvent(request_id="r", outcome=outcome, reason=reason, tenant_id=f.TENANT, user_name="u",
                                  created_at=utcnow() - timedelta(hours=hours_ago)))
        db.session.commit()


def test_home_charts_sign_ins_and_sync_calls_per_hour_with_the_last_failures(app, populated, console):
    for hours_ago, outcome, reason in ((0, "refused", "user_disabled"), (2.1, "refused", "user_disabled"),
                                       (2.2, "success", None), (30, "refused", "not_authorised"),
                                       (1, "logout", None)):
        _add_event(app, hours_ago, outcome, reason)
    page = console.get("/admin/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html and "<script" not in html
    # alice's sign-in (populated) + one 2 h ago succeeded; two refusals inside 24 h, the 30 h one is out, logouts are no sign-ins
    assert re.search(r'id="chart-sign_ins" data-total="4" data-failures="2"', html)
    assert re.search(r'<li data-series="success">.*?<strong>2</strong>', html)
    assert re.search(r'<li data-series="user_disabled">.*?账号已被停用.*?<strong>2</strong>', html)
    assert 'data-series="not_authorised"' not in html
    assert re.search(r'id="chart-sync_calls" data-total="(\d+)" data-failures="1"', html)  # the refused authSync
    assert 'data-code="000002"' in html and 'data-reason="user_disabled"' in html  # the last failures listed
    english = console.get("/admin/?lang=en").get_data(as_text=True)
    assert "Sign-ins" in english and "Your account is disabled" in english and "Last failed sync calls" in english


def test_last_day_counts_are_grouped_by_the_database(app, populated):
    from ops import activity

    _add_event(app, 0, "refused", "something_unheard_of")
    with app.app_context():
        counts = activity.login_counts(utcnow() - timedelta(hours=24))
        hourly = activity.sign_ins_by_hour(24)
    assert counts[("success", "")] == 1 and counts[("refused", "other")] == 1  # unknown labels are bounded
    assert hourly.series["success"][-1] == 1 and hourly.series["other"][-1] == 1 and len(hourly.starts) == 24


def test_metrics_report_the_last_24_hours_from_the_database(app, populated, client):
    _add_event(app, 1, "refused", "user_disabled")
    _add_event(app, 25, "refused", "user_disabled")  # older than a day: not counted
    body = client.get("/metrics").get_data(as_text=True)
    assert 'bridge_login_events_last_24h{outcome="refused",reason="user_disabled"} 1.0' in body
    assert 'bridge_login_events_last_24h{outcome="success",reason=""} 1.0' in body
    assert 'bridge_sync_calls_last_24h{interface="kit:authSync",result_code="000002"} 1.0' in body


def test_ending_sessions_asks_first_without_script(app, populated, console):
    html = console.get(f"/admin/tenants/{f.TENANT}").get_data(as_text=True)
    assert '<details class="confirm"' in html and 'data-ask-end-user="alice"' in html
    assert re.search(r'<details class="confirm">\s*<summary[^>]*id="ask-end-tenant-sessions"', html)
    assert "确定结束用户 alice 的所有会话吗" in html


def test_tenant_page_shows_the_domain_id_the_operator_recorded(populated, console, runner):
    def shown():
        page = console.get(f"/admin/tenants/{f.TENANT}").get_data(as_text=True)
        return re.search(r'data-field="domain-id">(.*?)</dd>', page, re.S).group(1)

    assert "未记录" in shown() and "flask tenants set-domain-id" in shown()
    assert runner.invoke(args=["tenants", "set-domain-id", "acme", "dom-acme-1"]).exit_code == 0
    assert shown() == "<code>dom-acme-1</code>"
