"""The OIDC provider as an app sees it: discovery, authorize, token, userinfo, logout, and every
error. ID tokens are checked with joserfc against the published JWKS, as a client would."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from extensions import db
from sso.oidc.models import BackchannelLogout
from tests import factories as f
from tests.helpers import ok
from tests.oidc_fixtures import (
    ISSUER,
    authorize,
    code_from,
    exchange,
    pkce,
    register,
    tokens_for,
    verify_id_token,
)
from tests.sso_fixtures import IDP, sign_in

# --- discovery ------------------------------------------------------------------------------------


def test_discovery_describes_the_provider(client):
    conf = client.get("/.well-known/openid-configuration").get_json()
    assert conf["issuer"] == ISSUER
    assert conf["authorization_endpoint"] == f"{ISSUER}/oidc/authorize"
    assert conf["token_endpoint"] == f"{ISSUER}/oidc/token" and conf["jwks_uri"] == f"{ISSUER}/oidc/jwks"
    assert conf["end_session_endpoint"] == f"{ISSUER}/oidc/logout"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "koogallery"} <= set(conf["scopes_supported"])
    assert conf["backchannel_logout_supported"] is True


def test_jwks_publishes_an_rsa_signing_key(client):
    [key] = client.get("/oidc/jwks").get_json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key and "p" not in key


# --- the happy path -------------------------------------------------------------------------------


def test_authorize_without_session_runs_the_sso_login_and_comes_back(synced, client, app_client):
    response = authorize(client, app_client[0], tenant="acme")
    location = urlsplit(response.headers["Location"])
    assert location.path == "/sso/login"
    query = parse_qs(location.query)
    assert query["tenant"] == ["acme"] and query["next"][0].startswith("/oidc/authorize?")
    started = client.get(response.headers["Location"])  # the SSO login starts at the tenant's IdP
    assert started.headers["Location"].startswith(f"{IDP}/api/v1/oauth2/authorize")


def test_login_hint_with_tenant_code_skips_the_prompt(synced, client, app_client):
    response = authorize(client, app_client[0], login_hint="alice@acme")
    assert parse_qs(urlsplit(response.headers["Location"]).query)["tenant"] == ["acme"]


def test_code_flow_issues_verifiable_id_token_with_koogallery_claims(signed_in, app_client):
    tokens = tokens_for(signed_in, app_client)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"] and tokens["expires_in"] == 3600
    claims = verify_id_token(signed_in, tokens, app_client[0])
    assert claims["tenant"] == f.TENANT and claims["tenant_code"] == "acme" and claims["tenant_name"] == "Acme 科技"
    assert claims["preferred_username"] == "alice" and claims["name"] == "爱丽丝" and claims["role"] == "admin"
    assert claims["org_code"] == "D1" and claims["org_name"] == "研发部" and claims["sid"]
    assert claims["instance_id"] == "inst-1"


def test_reused_nonce_is_refused(signed_in, app_client):
    tokens_for(signed_in, app_client, nonce="once")
    query = parse_qs(urlsplit(authorize(signed_in, app_client[0], nonce="once").headers["Location"]).query)
    assert query["error"] == ["invalid_request"]


def test_client_secret_post_is_accepted(signed_in, app_client):
    client_id, secret = app_client
    code = code_from(authorize(signed_in, client_id))
    response = exchange(signed_in, client_id, secret, code, method="post")
    assert response.status_code == 200 and "id_token" in response.get_json()


def test_userinfo_by_get_and_post(signed_in, app_client):
    access = tokens_for(signed_in, app_client)["access_token"]
    for method in ("get", "post"):
        info = getattr(signed_in, method)("/oidc/userinfo", headers={"Authorization": f"Bearer {access}"}).get_json()
        assert info["preferred_username"] == "alice" and info["tenant"] == f.TENANT and info["role"] == "admin"
    assert signed_in.get("/oidc/userinfo").status_code == 401
    bad = signed_in.get("/oidc/userinfo", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_token"


def test_scopes_limit_the_claims(signed_in, app_client):
    tokens = tokens_for(signed_in, app_client, scope="openid")
    claims = verify_id_token(signed_in, tokens, app_client[0])
    assert "tenant" not in claims and "name" not in claims and claims["sub"]


def test_sub_is_stable_per_tenant_user(signed_in, app_client):
    first = verify_id_token(signed_in, tokens_for(signed_in, app_client), app_client[0])["sub"]
    second = verify_id_token(signed_in, tokens_for(signed_in, app_client), app_client[0])["sub"]
    from sso.oidc.server import subject

    assert first == second == subject(f.TENANT, "alice") != subject("other-tenant", "alice")


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_client_gets_an_error_page_not_a_redirect(signed_in):
    response = authorize(signed_in, "no-such-client")
    assert response.status_code == 400 and b'data-error="invalid_client"' in response.data


def test_unregistered_redirect_uri_gets_an_error_page(signed_in, app_client):
    response = authorize(signed_in, app_client[0], redirect_uri="https://evil.example.com/cb")
    assert response.status_code == 400 and "Location" not in response.headers


def test_unsupported_response_type_is_redirected_to_the_app(signed_in, app_client):
    response = authorize(signed_in, app_client[0], response_type="token")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"] and query["state"] == ["st-1"]


@pytest.mark.parametrize("change, error, status", [
    ({"secret": "wrong"}, "invalid_client", 401),
    ({"code": "forged"}, "invalid_grant", 400),
])
def test_token_errors_are_oauth_json(signed_in, app_client, change, error, status):
    client_id, secret = app_client
    code = code_from(authorize(signed_in, client_id))
    response = exchange(signed_in, client_id, change.get("secret", secret), change.get("code", code))
    assert response.status_code == status and response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_unsupported_grant_type(signed_in, app_client):
    client_id, secret = app_client
    response = signed_in.post("/oidc/token", data={"grant_type": "password", "client_id": client_id,
                                                     "client_secret": secret, "username": "a", "password": "b"})
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"


def test_prompt_none_without_session_returns_login_required(synced, client, app_client):
    query = parse_qs(urlsplit(authorize(client, app_client[0], prompt="none").headers["Location"]).query)
    assert query["error"] == ["login_required"] and query["state"] == ["st-1"]


def _backchannel_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(BackchannelLogout))


def test_prompt_login_forces_a_fresh_sso_login_without_ending_the_session_on_a_get(signed_in, app, app_client, idp):
    tokens_for(signed_in, app_client)  # the app holds tokens: ending the session would queue a logout
    response = authorize(signed_in, app_client[0], prompt="login")
    location = urlsplit(response.headers["Location"])
    next_url = parse_qs(location.query)["next"][0]
    assert location.path == "/sso/login" and "prompt" not in next_url and "auth_after=" in next_url
    assert signed_in.get("/sso/me").status_code == 200 and _backchannel_rows(app) == 0
    # Coming back with the old session is not enough: still a login first.
    again = signed_in.get(next_url)
    assert urlsplit(again.headers["Location"]).path == "/sso/login"
    _age_sessions(app, seconds=5)  # auth_time has one-second resolution: make the old login clearly older
    assert sign_in(signed_in, idp).status_code == 302  # the fresh login replaces the session
    code = code_from(signed_in.get(next_url))
    assert code


def _age_sessions(app, *, seconds: int) -> None:
    from datetime import timedelta

    from sso.models import UserSession

    with app.app_context():
        for row in db.session.execute(db.select(UserSession)).scalars():
            row.created_at = row.created_at - timedelta(seconds=seconds)
        db.session.commit()


def test_max_age_elapsed_asks_for_a_fresh_login(signed_in, app, app_client):
    _age_sessions(app, seconds=7200)
    response = authorize(signed_in, app_client[0], max_age="3600")
    assert urlsplit(response.headers["Location"]).path == "/sso/login"
    assert signed_in.get("/sso/me").status_code == 200
    assert code_from(authorize(signed_in, app_client[0], max_age="86400"))


@pytest.mark.parametrize("bad", [{"client_id": "no-such-app"}, {"redirect_uri": "https://evil.example.com/cb"}])
def test_prompt_login_with_an_invalid_request_changes_nothing(signed_in, app, app_client, bad):
    tokens_for(signed_in, app_client)
    bad = dict(bad)
    client_id = bad.pop("client_id", app_client[0])
    response = authorize(signed_in, client_id, prompt="login", **bad)
    assert response.status_code == 400 and b"invalid_" in response.data
    assert signed_in.get("/sso/me").status_code == 200 and _backchannel_rows(app) == 0


def test_rp_logout_with_someone_elses_hint_keeps_this_visitors_cookie(signed_in, app, app_client, idp):
    other = app.test_client()
    assert sign_in(other, idp, "bob").status_code == 302
    their_hint = tokens_for(other, app_client)["id_token"]
    response = signed_in.get("/oidc/logout", query_string={"id_token_hint": their_hint})
    assert response.status_code == 302
    assert "bridge_sid=;" not in response.headers.get("Set-Cookie", "")
    assert signed_in.get("/sso/me").status_code == 200


# --- PKCE -----------------------------------------------------------------------------------------


def test_public_client_must_use_pkce(signed_in, runner):
    client_id, secret = register(runner, "--public")
    assert secret is None
    query = parse_qs(urlsplit(authorize(signed_in, client_id).headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    verifier, challenge = pkce()
    code = code_from(authorize(signed_in, client_id, code_challenge=challenge, code_challenge_method="S256"))
    response = exchange(signed_in, client_id, None, code, verifier=verifier, method="post")
    assert response.status_code == 200 and response.get_json()["id_token"]


def test_pkce_downgrade_to_plain_is_refused(signed_in, app_client):
    query = parse_qs(urlsplit(authorize(signed_in, app_client[0], code_challenge="a" * 43,
                                        code_challenge_method="plain").headers["Location"]).query)
    assert query["error"] == ["invalid_request"]


def test_wrong_or_missing_verifier_is_refused(signed_in, app_client):
    client_id, secret = app_client
    _, challenge = pkce()
    code = code_from(authorize(signed_in, client_id, code_challenge=challenge, code_challenge_method="S256"))
    wrong = exchange(signed_in, client_id, secret, code, verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    code = code_from(authorize(signed_in, client_id, code_challenge=challenge, code_challenge_method="S256"))
    missing = exchange(signed_in, client_id, secret, code)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"


# --- replay and refresh ---------------------------------------------------------------------------


def test_code_replay_fails_and_revokes_what_the_first_use_issued(signed_in, app_client):
    client_id, secret = app_client
    code = code_from(authorize(signed_in, client_id))
    first = exchange(signed_in, client_id, secret, code).get_json()
    replay = exchange(signed_in, client_id, secret, code)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert signed_in.get("/oidc/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 401


def refresh(client, app_client, refresh_token):
    client_id, secret = app_client
    return client.post("/oidc/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                            "client_id": client_id, "client_secret": secret})


def test_refresh_rotates_and_an_old_refresh_token_revokes_the_family(signed_in, app_client):
    tokens = tokens_for(signed_in, app_client)
    renewed = refresh(signed_in, app_client, tokens["refresh_token"])
    assert renewed.status_code == 200
    new = renewed.get_json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert signed_in.get("/oidc/userinfo", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    reused = refresh(signed_in, app_client, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert signed_in.get("/oidc/userinfo", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401


# --- revocation reaches the apps ------------------------------------------------------------------


def test_revoking_the_user_revokes_tokens_and_queues_backchannel_logout(signed_in, app, app_client, kg, idp):
    tokens = tokens_for(signed_in, app_client)
    sid = verify_id_token(signed_in, tokens, app_client[0])["sid"]
    ok(kg.kit("authSync", f.auth_sync([{"userName": "alice"}], flag=3, currentSyncTime="20220601000000000")))
    assert signed_in.get("/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert refresh(signed_in, app_client, tokens["refresh_token"]).status_code == 400

    idp.post("https://app.example.com/backchannel", status=503)
    idp.post("https://app.example.com/backchannel", status=200)
    from sso.oidc.backchannel import deliver_due

    with app.app_context():
        assert deliver_due() == (0, 1)  # the app was down: retried later
        db.session.execute(db.update(BackchannelLogout).values(next_attempt_at=db.func.now()))
        db.session.commit()
        assert deliver_due() == (1, 0)
        row = db.session.execute(db.select(BackchannelLogout)).scalar_one()
        assert row.delivered_at is not None and row.attempts == 2
    token = parse_qs(idp.calls[-1].request.body)["logout_token"][0]
    keys = KeySet.import_key_set(signed_in.get("/oidc/jwks").get_json())
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    assert claims["iss"] == ISSUER and claims["aud"] == app_client[0] and claims["sid"] == sid
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"] and "nonce" not in claims


def test_bridge_logout_also_logs_out_of_the_apps(signed_in, app, app_client):
    tokens_for(signed_in, app_client)
    page = signed_in.get("/sso/logout").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in.post("/sso/logout", data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(BackchannelLogout)) == 1


# --- RP-initiated logout --------------------------------------------------------------------------


def test_rp_logout_with_hint_ends_session_and_returns_to_the_app(signed_in, app_client):
    tokens = tokens_for(signed_in, app_client)
    response = signed_in.get("/oidc/logout", query_string={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://app.example.com/bye", "state": "s9"})
    assert response.headers["Location"] == "https://app.example.com/bye?state=s9"
    assert signed_in.get("/sso/me").status_code == 401


def test_rp_logout_refuses_unregistered_return_address(signed_in, app_client):
    tokens = tokens_for(signed_in, app_client)
    response = signed_in.get("/oidc/logout", query_string={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example.com/"})
    assert response.status_code == 400 and signed_in.get("/sso/me").status_code == 200


def test_rp_logout_without_hint_asks_first(signed_in):
    page = signed_in.get("/oidc/logout")
    assert page.status_code == 200 and b'name="confirm"' in page.data
    assert signed_in.get("/sso/me").status_code == 200
    assert signed_in.post("/oidc/logout", data={"confirm": "1"}).status_code == 200  # no CSRF token: asks again
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    done = signed_in.post("/oidc/logout", data={"confirm": "1", "csrf_token": token})
    assert done.status_code == 302 and signed_in.get("/sso/me").status_code == 401


def test_forged_id_token_hint_is_refused(signed_in):
    assert signed_in.get("/oidc/logout?id_token_hint=eyJhbGciOiJub25lIn0.e30.").status_code == 400


# --- apps and keys --------------------------------------------------------------------------------


def test_apps_cli_list_show_rotate_remove(signed_in, runner, app_client):
    client_id, secret = app_client
    assert client_id in runner.invoke(args=["apps", "list"]).output
    shown = runner.invoke(args=["apps", "show", client_id]).output
    assert "https://app.example.com/backchannel" in shown and secret not in shown
    new_secret = re.search(r"client_secret:\s+(\S+)", runner.invoke(args=["apps", "rotate-secret", client_id]).output).group(1)
    code = code_from(authorize(signed_in, client_id))
    assert exchange(signed_in, client_id, secret, code).status_code == 401
    code = code_from(authorize(signed_in, client_id))
    assert exchange(signed_in, client_id, new_secret, code).status_code == 200
    assert "removed" in runner.invoke(args=["apps", "remove", client_id]).output
    assert authorize(signed_in, client_id).status_code == 400


def test_register_rejects_bad_uris(runner):
    result = runner.invoke(args=["apps", "register", "--name", "x", "--redirect-uri", "not a url"])
    assert result.exit_code != 0 and "absolute http(s) URL" in result.output


def test_signing_key_rotation_keeps_old_key_published(signed_in, runner, app_client):
    old_kid = jwt.decode(tokens_for(signed_in, app_client)["id_token"],
                         KeySet.import_key_set(signed_in.get("/oidc/jwks").get_json())).header["kid"]
    assert "new signing key" in runner.invoke(args=["keys", "rotate-signing"]).output
    tokens = tokens_for(signed_in, app_client)
    kids = {k["kid"] for k in signed_in.get("/oidc/jwks").get_json()["keys"]}
    new_kid = jwt.decode(tokens["id_token"], KeySet.import_key_set(signed_in.get("/oidc/jwks").get_json())).header["kid"]
    assert new_kid != old_kid and {old_kid, new_kid} <= kids


def test_workbench_launch_lands_in_the_registered_app(synced, client, runner, idp):
    register(runner, "--initiate-login-uri", "https://app.example.com/login")
    response = sign_in(client, idp)
    assert response.headers["Location"] == "https://app.example.com/login?iss=http%3A%2F%2Flocalhost"


def test_tenant_hint_for_another_company_signs_in_there(signed_in, app_client):
    response = authorize(signed_in, app_client[0], tenant="other-company")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert urlsplit(response.headers["Location"]).path == "/sso/login" and query["tenant"] == ["other-company"]
    same = authorize(signed_in, app_client[0], tenant="ACME")
    assert "code=" in same.headers["Location"]


def test_generated_client_ids_are_safe_on_a_command_line(runner):
    for _ in range(20):
        client_id, _secret = register(runner)
        assert re.fullmatch(r"[0-9a-f]{24}", client_id)


def test_oidc_error_page_explains_the_oauth_error_in_the_pages_language(client):
    # An unknown client_id: no trustworthy redirect, so the person gets a page.
    query = "/oidc/authorize?response_type=code&client_id=nobody&redirect_uri=https://x.example.com/cb"
    zh = client.get(f"{query}&lang=zh").get_data(as_text=True)
    en = client.get(f"{query}&lang=en").get_data(as_text=True)
    assert "应用身份验证失败（client_id 未登记或密钥错误）。" in zh and "<code>invalid_client</code>" in zh
    assert "The app could not be authenticated (unknown client_id or wrong secret)." in en
    authlib = re.search(r"<code>invalid_client</code>: ([^<]+)</p>", en).group(1)  # the technical detail
    assert authlib.strip() and authlib not in zh
