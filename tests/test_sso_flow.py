"""The browser login against a faked authentication centre (responses, strict): every path a
user can take, what they see, and what is stored."""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from itsdangerous import Signer

from common.clock import utcnow
from extensions import db
from keys.rsa import encrypt_client_secret
from sso.models import LoginState, UserSession
from sso.sessions import sign_session_id
from tests import factories as f
from tests.helpers import ok
from tests.oidc_fixtures import register
from tests.sso_fixtures import CALLBACK, IDP, SECRET, csrf_token, events, fake_idp, refused, sign_in, start

# --- the happy path -------------------------------------------------------------------------------


def test_login_start_redirects_to_the_tenants_authorize_with_state_and_pkce(synced, client):
    location, params = start(client)
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/api/v1/oauth2/authorize"
    assert params["response_type"] == "code" and params["client_id"] == "acme-client"
    assert params["redirect_uri"] == CALLBACK and params["scope"] == "get_user_info"
    assert len(params["state"]) >= 32
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43


def test_full_login_opens_a_session_with_identity_and_role(synced, app, client, idp):
    response = sign_in(client, idp)
    assert response.status_code == 302 and response.headers["Location"] == "/sso/"
    cookie = response.headers.getlist("Set-Cookie")
    sid = next(c for c in cookie if c.startswith("bridge_sid="))
    assert "HttpOnly" in sid and "SameSite=Lax" in sid and "Path=/" in sid
    me = client.get("/sso/me").get_json()
    assert (me["tenant"], me["tenant_code"], me["user_name"], me["name"], me["role"]) == (
        f.TENANT, "acme", "alice", "爱丽丝", "admin")
    assert me["org_name"] == "研发部"
    home = client.get("/sso/").get_data(as_text=True)
    assert "爱丽丝" in home and "Acme 科技" in home
    token_call = next(c for c in idp.calls if c.request.url.endswith("/token"))
    body = parse_qs(token_call.request.body)
    assert body["client_secret"] == [SECRET] and body["code"] == ["code-1"] and "code_verifier" in body
    assert events(app) == [("success", None, "alice")]


def test_stored_session_holds_hashes_and_encrypted_tokens_only(synced, app, client, idp):
    response = sign_in(client, idp)
    raw_cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("bridge_sid=")).split(";")[0]
    with app.app_context():
        stored = db.session.execute(db.select(UserSession)).scalar_one()
        assert stored.id_hash not in raw_cookie and "at-1" not in stored.access_token_enc
        assert "rt-1" not in stored.refresh_token_enc


def test_next_is_kept_server_side_and_only_same_origin(synced, client, idp):
    _, params = start(client, next="/sso/me")
    fake_idp(idp)
    done = client.get("/sso/callback", query_string={"code": "c", "state": params["state"]})
    assert done.headers["Location"] == "/sso/me"


@pytest.mark.parametrize("target", ["//evil.example.com/x", "https://evil.example.com/", "/\\evil.example.com",
                                    "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"])
def test_open_redirects_are_ignored(synced, client, idp, target):
    _, params = start(client, next=target)
    fake_idp(idp)
    done = client.get("/sso/callback", query_string={"code": "c", "state": params["state"]})
    assert done.headers["Location"] == "/sso/"


def test_login_page_offers_tenant_code_and_portal(synced, client):
    page = client.get("/sso/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Company code" in page and "Sign in with Huawei Cloud" in page
    zh = client.get("/sso/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "企业代码" in zh and 'lang="zh-CN"' in zh


def test_language_switcher_sticks(synced, client):
    assert "Company code" in client.get("/sso/login?lang=en").get_data(as_text=True)
    assert "Company code" in client.get("/sso/login", headers={"Accept-Language": "zh"}).get_data(as_text=True)


def test_tenant_code_form_requires_csrf_and_starts_login(synced, client):
    assert client.post("/sso/login", data={"tenant": "acme"}).status_code == 400
    token = csrf_token(client, "/sso/login")
    response = client.post("/sso/login", data={"tenant": "ACME", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].startswith(f"{IDP}/api/v1/oauth2/authorize")


def test_portal_button_goes_to_the_unified_login(make_app, synced):
    app = make_app(APP_ID="app-123")
    client = app.test_client()
    token = csrf_token(client, "/sso/login")
    response = client.post("/sso/login", data={"portal": "1", "csrf_token": token})
    assert response.headers["Location"] == (
        "https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId=app-123")


def test_instance_front_end_url_starts_the_tenants_login(synced, client):
    response = client.get("/sso/login?instance=inst-1")
    assert response.status_code == 302 and response.headers["Location"].startswith(IDP)


# --- state and code protections -------------------------------------------------------------------


def test_replayed_state_is_refused(synced, client, idp):
    _, params = start(client)
    fake_idp(idp)
    assert client.get("/sso/callback", query_string={"code": "c", "state": params["state"]}).status_code == 302
    refused(client.get("/sso/callback", query_string={"code": "c", "state": params["state"]}), "state_replayed", 400)


def test_state_from_another_browser_is_refused_and_not_spent(synced, app, client, idp):
    _, params = start(client)
    other = app.test_client()
    refused(other.get("/sso/callback", query_string={"code": "c", "state": params["state"]}), "state_mismatch", 400)
    refused(client.get("/sso/callback", query_string={"code": "c", "state": params["state"], "tenant": "other"}),
            "tenant_mismatch", 403)
    fake_idp(idp)  # the browser the state was issued to still completes its login
    assert client.get("/sso/callback", query_string={"code": "c", "state": params["state"]}).status_code == 302
    assert client.get("/sso/me").status_code == 200


def test_unknown_state_is_refused(synced, client):
    refused(client.get("/sso/callback", query_string={"code": "c", "state": "forged"}), "state_invalid", 400)


def test_expired_state_is_refused(synced, app, client):
    _, params = start(client)
    with app.app_context():
        row = db.session.execute(db.select(LoginState)).scalar_one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    refused(client.get("/sso/callback", query_string={"code": "c", "state": params["state"]}), "state_expired", 400)


def test_callback_tenant_differing_from_state_is_a_mix_up(synced, client):
    _, params = start(client)
    response = client.get("/sso/callback", query_string={"code": "c", "state": params["state"], "tenant": "other"})
    refused(response, "tenant_mismatch", 403)


def test_expired_or_used_code_is_explained(synced, client, idp):
    _, params = start(client)
    fake_idp(idp, token_status=400)
    refused(client.get("/sso/callback", query_string={"code": "old", "state": params["state"]}), "code_invalid", 400)


def test_callback_without_code_or_with_idp_error(synced, client):
    refused(client.get("/sso/callback?state=x"), "code_missing", 400)
    refused(client.get("/sso/callback?error=access_denied&state=x"), "idp_denied", 403)


# --- admission ------------------------------------------------------------------------------------


@pytest.mark.parametrize("user, reason", [("carol", "user_disabled"), ("dave", "not_authorised"),
                                          ("mallory", "not_authorised")])
def test_only_authorised_enabled_users_are_admitted(synced, app, client, idp, user, reason):
    refused(sign_in(client, idp, user), reason, 403)
    assert client.get("/sso/me").status_code == 401
    assert events(app) == [("refused", reason, user)]


@pytest.mark.parametrize("meanwhile, reason", [
    ({"interface": "authSync", "body": f.auth_sync([{"userName": "alice"}], flag=3,
                                                  currentSyncTime="20991231000000000")}, "not_authorised"),
    ({"interface": "tenantSync", "body": f.tenant_sync(tenantCode="acme", name="Acme 科技", domainName=IDP,
                                                      flag=0, timeStamp="20991231000000000")}, "tenant_deleted"),
], ids=["user revoked", "tenant deleted"])
def test_what_kooGallery_changes_while_the_centre_answers_decides(synced, app, client, idp, meanwhile, reason):
    """Admission reads the tenant and the user again after the centre's calls: a revocation that
    arrives while the centre answers the token request is not missed."""
    _, params = start(client)

    def token_while_kooGallery_syncs(_request):
        ok(synced.kit(meanwhile["interface"], meanwhile["body"]))
        return 200, {}, json.dumps({"access_token": "at-1", "token_type": "Bearer", "expires_in": 7200})

    idp.add_callback(responses.POST, f"{IDP}/api/v1/oauth2/token", callback=token_while_kooGallery_syncs,
                     content_type="application/json")
    idp.get(f"{IDP}/api/v1/oauth2/userinfo", json={"userName": "alice", "tenant": f.TENANT})
    response = client.get("/sso/callback", query_string={"code": "code-1", "state": params["state"],
                                                         "tenant": f.TENANT})
    refused(response, reason, 403)
    assert client.get("/sso/me").status_code == 401


def test_a_refusal_shown_again_in_the_other_language_keeps_its_reason(synced, app, client, idp):
    page = refused(sign_in(client, idp, "carol"), "user_disabled", 403).get_data(as_text=True)
    rid = re.search(r'class="rid">[^<]*<code>([0-9a-f]+)</code>', page).group(1)
    switch = re.search(r'id="lang-switch" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert switch == "/sso/refused?lang=en"  # not the callback again: its code and state are spent
    english = refused(client.get(switch), "user_disabled", 403).get_data(as_text=True)
    assert "Your account is disabled" in english and rid in english  # the same request id to quote
    back = re.search(r'id="lang-switch" href="([^"]+)"', english).group(1).replace("&amp;", "&")
    assert "账号已被停用" in refused(client.get(back), "user_disabled", 403).get_data(as_text=True)
    assert events(app) == [("refused", "user_disabled", "carol")]  # showing it again records nothing


def test_refused_page_without_a_refusal_goes_to_the_login_page(synced, client):
    response = client.get("/sso/refused")
    assert response.status_code == 302 and response.headers["Location"] == "/sso/login"


def test_use_another_account_signs_out_at_the_centre_and_starts_again_at_that_tenant(synced, client, idp):
    page = refused(sign_in(client, idp, "carol"), "user_disabled", 403).get_data(as_text=True)
    assert "使用其他账号登录" in page
    assert client.post("/sso/other-account").status_code == 400  # a form with CSRF, not a link
    response = client.post("/sso/other-account", data={"csrf_token": csrf_token(client, "/sso/refused")})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/api/v1/logout"
    back = parse_qs(location.query)["redirect_url"][0]
    assert back == f"http://localhost/sso/login?tenant={f.TENANT}"
    assert client.get(urlsplit(back).path + "?" + urlsplit(back).query).status_code == 302  # a new login starts


def test_use_another_account_without_a_tenant_goes_to_the_login_form(synced, client):
    refused(client.get("/sso/login?tenant=nobody"), "unknown_tenant", 404)
    response = client.post("/sso/other-account", data={"csrf_token": csrf_token(client, "/sso/refused")})
    assert response.status_code == 303 and response.headers["Location"] == "/sso/login"


def test_mistyped_company_code_is_shown_on_the_form_with_what_was_typed(synced, app, client):
    response = client.post("/sso/login", data={"tenant": "acm", "csrf_token": csrf_token(client, "/sso/login")})
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and 'data-error="unknown_tenant"' in page and "data-reason" not in page
    assert 'id="tenant" name="tenant" value="acm"' in page and "找不到企业代码“acm”" in page
    assert events(app) == [("refused", "unknown_tenant", None)]


def test_userinfo_for_another_tenant_is_refused(synced, client, idp):
    refused(sign_in(client, idp, tenant="someone-elses-tenant"), "tenant_mismatch", 403)


def test_unknown_tenant_gets_a_clear_page(synced, client):
    refused(client.get("/sso/login?tenant=nobody"), "unknown_tenant", 404)


def test_deleted_tenant_is_refused(synced, client, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="", timeStamp="20220501000000000")))
    refused(client.get("/sso/login?tenant=acme"), "tenant_deleted", 403)


def test_frozen_instance_is_refused_and_unfreezing_admits_again(synced, client, kg, idp):
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    ok(kg.basic({"activity": "updateInstanceStatus", "instanceId": "inst-1", "status": "FREEZE"}))
    refused(client.get("/sso/login?tenant=acme"), "instance_suspended", 403)
    ok(kg.basic({"activity": "updateInstanceStatus", "instanceId": "inst-1", "status": "UNFREEZE"}))
    assert sign_in(client, idp).status_code == 302


def test_tenant_without_app_credentials_is_explained(kg, client):
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="acme", domainName=IDP)))
    refused(client.get("/sso/login?tenant=acme"), "app_missing", 503)


def test_just_in_time_admission_when_configured_and_authsync_missing(make_app, rsa_key, idp):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(JIT_USERS=True)
    client = app.test_client()
    kg = KooGallery(client, KIT_KEY, BASIC_KEY)
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="acme", domainName=IDP)))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret(SECRET, rsa_key[0].public_key()))))
    assert sign_in(client, idp, "newcomer").status_code == 302
    assert client.get("/sso/me").get_json()["user_name"] == "newcomer"


# --- workbench launches (no state) ----------------------------------------------------------------


def test_workbench_code_is_discarded_and_login_reinitiated(synced, client, idp):
    response = client.get("/sso/callback", query_string={"code": "unsolicited", "tenant": f.TENANT})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    params = parse_qs(location.query)
    assert location.path == "/t/acme/api/v1/oauth2/authorize" and params["state"]
    assert not idp.calls  # the unsolicited code was never exchanged
    fake_idp(idp)
    done = client.get("/sso/callback", query_string={"code": "bound", "state": params["state"][0], "tenant": f.TENANT})
    assert done.status_code == 302 and client.get("/sso/me").status_code == 200
    assert parse_qs(idp.calls[0].request.body)["code"] == ["bound"]


def test_idp_that_drops_state_does_not_loop_and_the_person_confirms(synced, client, idp):
    client.get("/sso/callback", query_string={"code": "c1", "tenant": f.TENANT})
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"code": "c2", "tenant": f.TENANT})
    assert page.status_code == 200 and 'data-confirm="workbench"' in page.get_data(as_text=True)
    assert "爱丽丝" in page.get_data(as_text=True) and "Acme 科技" in page.get_data(as_text=True)
    assert client.get("/sso/me").status_code == 401  # nothing opened before the click
    assert parse_qs(idp.calls[0].request.body)["code"] == ["c2"]


def test_direct_policy_exchanges_the_workbench_code(make_app, synced, idp):
    app = make_app(WORKBENCH_LOGIN="direct")
    client = app.test_client()
    fake_idp(idp)
    response = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
    assert response.status_code == 302 and client.get("/sso/me").get_json()["user_name"] == "alice"
    body = parse_qs(idp.calls[0].request.body)
    # The centre issued the code for the registered login address, not for a request of ours.
    assert body["code"] == ["wb-code"] and "redirect_uri" not in body and "code_verifier" not in body


def test_a_workbench_login_lands_in_the_one_app_that_can_be_launched(make_app, synced, idp):
    app = make_app(WORKBENCH_LOGIN="direct")
    runner, client = app.test_cli_runner(), app.test_client()
    register(runner)  # no initiate-login URI: not launchable
    first, _ = register(runner, "--initiate-login-uri", "https://one.example.com/start?from=kg")

    def land() -> str:
        fake_idp(idp)
        response = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
        assert response.status_code == 302, response.data[:300]
        return response.headers["Location"]

    assert land() == "https://one.example.com/start?from=kg&iss=http%3A%2F%2Flocalhost"
    register(runner, "--initiate-login-uri", "https://two.example.com/start")
    assert land() == "/sso/"  # two launchable apps: which one is not the bridge's guess
    chosen = make_app(WORKBENCH_LOGIN="direct", OIDC_LANDING_APP=first).test_client()
    fake_idp(idp)
    response = chosen.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
    assert response.headers["Location"] == "https://one.example.com/start?from=kg&iss=http%3A%2F%2Flocalhost"


def test_a_deployment_can_send_redirect_uri_with_workbench_codes(make_app, synced, idp):
    client = make_app(WORKBENCH_LOGIN="direct", IDP_WORKBENCH_REDIRECT_URI="send").test_client()
    fake_idp(idp)
    client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
    assert parse_qs(idp.calls[0].request.body)["redirect_uri"] == [CALLBACK]


# --- sessions -------------------------------------------------------------------------------------


def test_session_id_rotates_at_every_login(synced, app, client, idp):
    first = sign_in(client, idp)
    first_cookie = next(c for c in first.headers.getlist("Set-Cookie") if c.startswith("bridge_sid=")).split(";")[0]
    second = sign_in(client, idp)
    second_cookie = next(c for c in second.headers.getlist("Set-Cookie") if c.startswith("bridge_sid=")).split(";")[0]
    assert first_cookie != second_cookie
    stale = app.test_client()
    stale.set_cookie("bridge_sid", first_cookie.split("=", 1)[1])
    assert stale.get("/sso/me").status_code == 401


def test_forged_or_unsigned_session_cookie_is_ignored(synced, app, client, idp):
    signed_in = sign_in(client, idp)
    genuine = next(c for c in signed_in.headers.getlist("Set-Cookie") if c.startswith("bridge_sid="))
    genuine = genuine.split(";")[0].split("=", 1)[1]
    raw_id, signature = genuine.rsplit(".", 1)
    with app.app_context():
        other_id = secrets.token_urlsafe(32)  # a session id the bridge never issued, correctly signed below
        forged = {
            "the session id unsigned": raw_id,
            "a tampered signature": f"{raw_id}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
            "the session id signed with another key": Signer("not-the-bridge-key-" + "y" * 40,
                                                              salt="bridge-session-id").sign(raw_id).decode(),
            "the session id signed for another purpose": Signer(app.config["SECRET_KEY"]).sign(raw_id).decode(),
            "another session id signed with another key": Signer("not-the-bridge-key-" + "y" * 40,
                                                                  salt="bridge-session-id").sign(other_id).decode(),
            "an unknown session id, genuinely signed": sign_session_id(other_id),
        }
    for what, cookie in forged.items():
        attacker = app.test_client()
        attacker.set_cookie("bridge_sid", cookie)
        assert attacker.get("/sso/me").status_code == 401, what
    genuine_browser = app.test_client()
    genuine_browser.set_cookie("bridge_sid", genuine)
    me = genuine_browser.get("/sso/me")
    assert me.status_code == 200 and me.get_json()["user_name"] == "alice"  # the forgeries ended nothing


@pytest.mark.parametrize("revoke", [
    lambda kg: kg.kit("authSync", f.auth_sync([{"userName": "alice"}], flag=3, currentSyncTime="20220501000000000")),
    lambda kg: kg.kit("authSync", f.auth_sync([f.user("alice", enable="false")], flag=2,
                                              currentSyncTime="20220501000000000")),
    lambda kg: kg.kit("authSync", f.auth_sync([{"userName": "alice"}], flag=0, currentSyncTime="20220501000000000")),
    lambda kg: kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="", timeStamp="20220501000000000")),
])
def test_revocation_ends_the_session_at_once(synced, app, client, idp, revoke):
    sign_in(client, idp)
    assert client.get("/sso/me").status_code == 200
    ok(revoke(synced))
    with app.app_context():
        assert db.session.execute(db.select(UserSession.ended_at)).scalar_one() is not None
    assert client.get("/sso/me").status_code == 401


@pytest.mark.parametrize("activity", [{"activity": "updateInstanceStatus", "status": "FREEZE"},
                                      {"activity": "releaseInstance"}])
def test_freezing_or_releasing_the_instance_ends_sessions(synced, app, client, idp, kg, activity):
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    sign_in(client, idp)
    ok(kg.basic({**activity, "instanceId": "inst-1"}))
    with app.app_context():
        assert db.session.execute(db.select(UserSession.end_reason)).scalar_one().startswith("instance_")
    assert client.get("/sso/me").status_code == 401


def test_revoking_another_user_leaves_this_session(synced, client, idp):
    sign_in(client, idp)
    ok(synced.kit("authSync", f.auth_sync([{"userName": "bob"}], flag=3, currentSyncTime="20220501000000000")))
    assert client.get("/sso/me").status_code == 200


def test_idle_session_expires(synced, app, client, idp):
    sign_in(client, idp)
    with app.app_context():
        stored = db.session.execute(db.select(UserSession)).scalar_one()
        stored.last_seen_at = utcnow() - timedelta(minutes=61)
        db.session.commit()
    assert client.get("/sso/me").status_code == 401
    assert client.get("/sso/").headers["Location"] == "/sso/login"


def test_absolute_lifetime_expires(synced, app, client, idp):
    sign_in(client, idp)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get("/sso/me").status_code == 401


def test_access_token_is_refreshed_while_active(synced, app, client, idp):
    sign_in(client, idp)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(access_expires_at=utcnow() + timedelta(seconds=30)))
        db.session.commit()
    idp.post(f"{IDP}/api/v1/oauth2/token", json={"access_token": "at-2", "token_type": "Bearer", "expires_in": 7200,
                                                  "refresh_token": "rt-2"})
    assert client.get("/sso/me").status_code == 200
    refresh_call = [c for c in idp.calls if c.request.url.endswith("/token")][-1]
    assert parse_qs(refresh_call.request.body)["refresh_token"] == ["rt-1"]
    with app.app_context():
        from keys import keyring

        stored = db.session.execute(db.select(UserSession)).scalar_one()
        assert keyring().data.decrypt(stored.access_token_enc) == "at-2"
        assert stored.access_expires_at.replace(tzinfo=None) > (utcnow() + timedelta(hours=1)).replace(tzinfo=None)


def test_rejected_refresh_ends_the_session(synced, app, client, idp):
    sign_in(client, idp)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(access_expires_at=utcnow()))
        db.session.commit()
    idp.post(f"{IDP}/api/v1/oauth2/token", status=400, json={"error": "invalid_grant"})
    assert client.get("/sso/me").status_code == 401
    refresh = parse_qs(idp.calls[-1].request.body)
    assert (refresh["grant_type"], refresh["refresh_token"]) == (["refresh_token"], ["rt-1"])
    with app.app_context():
        ended = db.session.execute(db.select(UserSession)).scalar_one()
        assert ended.ended_at is not None and ended.end_reason == "refresh_rejected"


# --- logout ---------------------------------------------------------------------------------------


def test_logout_needs_csrf_ends_session_and_goes_to_idp_logout(synced, app, client, idp):
    sign_in(client, idp)
    assert client.post("/sso/logout").status_code == 400
    assert client.get("/sso/me").status_code == 200
    response = client.post("/sso/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/api/v1/logout"
    assert parse_qs(location.query)["redirect_url"] == ["http://localhost/sso/signed-out"]
    assert client.get("/sso/me").status_code == 401
    assert ("logout", None, "alice") in events(app)


def test_secrets_never_reach_the_log(synced, client, idp, caplog):
    caplog.set_level(logging.DEBUG)
    assert sign_in(client, idp).status_code == 302
    assert client.get("/sso/me").status_code == 200
    text = caplog.text
    assert "auth_centre_call what=token" in text and "login outcome=success" in text  # the login was logged
    for secret in (SECRET, "at-1", "rt-1", "code-1"):
        assert secret not in text


def test_tenant_host_resolving_into_the_private_network_is_never_called(synced, client, idp, monkeypatch):
    import socket

    _, params = start(client)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))])
    response = client.get("/sso/callback", query_string={"code": "c", "state": params["state"]})
    refused(response, "idp_forbidden_host", 502)
    assert not idp.calls


def test_callback_tenant_cannot_redirect_the_secret(synced, client, idp, kg):
    """A callback naming another tenant uses that tenant's stored domainName, never a URL from the request."""
    _, params = start(client)
    fake_idp(idp)
    response = client.get("/sso/callback", query_string={"code": "c", "state": params["state"],
                                                         "domainName": "https://evil.example.com",
                                                         "redirect_uri": "https://evil.example.com/cb"})
    assert response.status_code == 302
    assert [c.request.url.split("?")[0] for c in idp.calls] == [f"{IDP}/api/v1/oauth2/token",
                                                                 f"{IDP}/api/v1/oauth2/userinfo"]
    assert parse_qs(idp.calls[0].request.body)["redirect_uri"] == [CALLBACK]
