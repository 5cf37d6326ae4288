"""Workbench launches that a centre cannot answer silently, account switching, and the limits on
what an anonymous login start may store (DESIGN invariants 8–10)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from common.clock import utcnow
from extensions import db
from ops.maintenance import run_maintenance
from sso.models import HeldSignIn, LoginState, UserSession
from tenants.models import Department, TenantUser
from tests import factories as f
from tests.helpers import ok, rows
from tests.sso_fixtures import IDP, fake_idp, sign_in, start


@pytest.fixture
def idp():
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _launch(client):
    """A workbench launch: a code and the tenant, no state. The bridge keeps the code and re-initiates."""
    response = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT})
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)


def test_the_reinitiated_authorize_asks_for_a_silent_answer_with_a_letters_and_digits_state(synced, client):
    params = _launch(client)
    assert params["prompt"] == ["none"] and re.fullmatch(r"[A-Za-z0-9]{43}", params["state"][0])
    _, fresh = start(client)
    assert re.fullmatch(r"[A-Za-z0-9]{43}", fresh["state"]) and "prompt" not in fresh


@pytest.mark.parametrize("error", ["login_required", "interaction_required", "invalid_request"])
def test_a_centre_that_cannot_answer_silently_leads_to_a_one_click_confirmation(synced, client, idp, error):
    params = _launch(client)
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"error": error, "state": params["state"][0],
                                                     "tenant": f.TENANT})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-confirm="workbench"' in text and "爱丽丝" in text and "Acme 科技" in text
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/sso/me").status_code == 401
    body = parse_qs(idp.calls[0].request.body)  # the kept workbench code, as issued
    assert body["code"] == ["wb-code"] and "redirect_uri" not in body and "code_verifier" not in body
    done = client.post("/sso/continue", data={"csrf_token": _csrf(text), "action": "continue"})
    assert done.status_code == 302 and client.get("/sso/me").get_json()["user_name"] == "alice"


def test_an_error_without_a_kept_code_is_still_a_refusal(synced, client):
    _, params = start(client)
    response = client.get("/sso/callback", query_string={"error": "access_denied", "state": params["state"]})
    assert response.status_code == 403 and b'data-reason="idp_denied"' in response.data


def test_confirm_policy_always_asks_and_a_forged_click_opens_nothing(make_app, synced, idp):
    client = make_app(WORKBENCH_LOGIN="confirm").test_client()
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT}).get_data(as_text=True)
    assert 'data-confirm="workbench"' in page
    stranger = make_app(WORKBENCH_LOGIN="confirm").test_client()  # another browser: no held sign-in, no CSRF
    assert stranger.post("/sso/continue", data={"action": "continue"}).status_code == 400
    assert stranger.get("/sso/me").status_code == 401


def test_use_another_account_signs_out_at_the_centre_and_starts_again(make_app, synced, idp):
    client = make_app(WORKBENCH_LOGIN="confirm").test_client()
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT}).get_data(as_text=True)
    response = client.post("/sso/continue", data={"csrf_token": _csrf(page), "action": "other"})
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/api/v1/logout"
    back = parse_qs(location.query)["redirect_url"][0]
    assert back.endswith(f"/sso/login?tenant={f.TENANT}")
    assert client.get("/sso/me").status_code == 401


def test_an_expired_confirmation_opens_nothing(app, make_app, synced, idp):
    client = make_app(WORKBENCH_LOGIN="confirm").test_client()
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT}).get_data(as_text=True)
    with app.app_context():
        db.session.execute(db.update(HeldSignIn).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = client.post("/sso/continue", data={"csrf_token": _csrf(page), "action": "continue"})
    assert b'data-reason="confirm_expired"' in response.data and client.get("/sso/me").status_code == 401


def test_a_user_revoked_while_the_confirmation_waits_is_refused(app, make_app, synced, idp):
    client = make_app(WORKBENCH_LOGIN="confirm").test_client()
    fake_idp(idp)
    page = client.get("/sso/callback", query_string={"code": "wb-code", "tenant": f.TENANT}).get_data(as_text=True)
    ok(synced.kit("authSync", f.auth_sync([{"userName": "alice"}], flag=3, currentSyncTime="20990101000000000")))
    response = client.post("/sso/continue", data={"csrf_token": _csrf(page), "action": "continue"})
    assert b'data-reason="not_authorised"' in response.data and client.get("/sso/me").status_code == 401


# --- account switching ----------------------------------------------------------------------------


def test_a_login_for_another_account_needs_a_click_that_names_both(app, synced, client, idp):
    assert sign_in(client, idp, "alice").status_code == 302
    page = sign_in(client, idp, "bob")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-confirm="switch"' in text and "爱丽丝" in text and "User bob" in text
    assert client.get("/sso/me").get_json()["user_name"] == "alice"  # no GET alone replaced it
    client.post("/sso/continue", data={"csrf_token": _csrf(text), "action": "keep"})
    assert client.get("/sso/me").get_json()["user_name"] == "alice"
    page = sign_in(client, idp, "bob").get_data(as_text=True)
    client.post("/sso/continue", data={"csrf_token": _csrf(page), "action": "continue"})
    assert client.get("/sso/me").get_json()["user_name"] == "bob"
    ended = {s.user_name: s.end_reason for s in rows(app, UserSession)}
    assert ended == {"alice": "replaced", "bob": None}


def test_signing_in_again_as_the_same_account_needs_no_click(synced, client, idp):
    sign_in(client, idp, "alice")
    assert sign_in(client, idp, "alice").status_code == 302


# --- what anonymous login starts may store --------------------------------------------------------


def test_open_login_states_are_capped_per_client(make_app, synced):
    client = make_app(LOGIN_STATES_PER_CLIENT=3).test_client()
    for _ in range(3):
        assert client.get("/sso/login?tenant=acme").status_code == 302
    refused = client.get("/sso/login?tenant=acme")
    assert refused.status_code == 429 and b'data-reason="too_many_logins"' in refused.data
    assert len(rows(make_app(), LoginState)) == 3


def test_open_login_states_are_capped_in_total(make_app, synced):
    client = make_app(LOGIN_STATES_TOTAL=2).test_client()
    client.get("/sso/login?tenant=acme", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    client.get("/sso/login?tenant=acme", environ_base={"REMOTE_ADDR": "198.51.100.2"})
    assert client.get("/sso/login?tenant=acme", environ_base={"REMOTE_ADDR": "198.51.100.3"}).status_code == 429


# --- released orders: personal data kept for the retention period, then purged -----------------------


def test_maintenance_purges_a_released_orders_people_after_the_retention_period(app, synced, client, idp):
    sign_in(client, idp, "alice")
    ok(synced.basic({"activity": "releaseInstance", "instanceId": "inst-1"}))
    with app.app_context():
        assert run_maintenance()["released_users"] == 0  # kept within the retention period
    assert rows(app, TenantUser)
    with app.app_context():
        db.session.execute(db.text("UPDATE kg_instance SET released_at = :t"), {"t": utcnow() - timedelta(days=16)})
        db.session.commit()
        removed = run_maintenance()
    assert removed["released_users"] == 4 and rows(app, TenantUser) == [] and rows(app, Department) == []
    assert rows(app, UserSession) == []
