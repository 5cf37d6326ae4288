"""Fixtures and helpers for the browser-login tests, as a pytest plugin (registered in
conftest.py): a synced tenant with a faked authentication centre. Tests import the helpers from
here, never from another test module."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from extensions import db
from keys.rsa import encrypt_client_secret
from sso.models import LoginEvent
from tests import factories as f
from tests.helpers import ok

IDP = "https://idp.example.com/t/acme"
CALLBACK = "http://localhost/sso/callback"
SECRET = "client-secret-for-acme"


@pytest.fixture
def synced(kg, rsa_key):
    ok(kg.basic(f.new_instance(businessId="inst-1")))  # the order the kit calls name
    ok(kg.kit("tenantSync", f.tenant_sync(tenantCode="acme", name="Acme 科技", domainName=IDP)))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret(SECRET, rsa_key[0].public_key()),
                                                    clientId="acme-client")))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "D1", "orgName": "研发部"}])))
    ok(kg.kit("authSync", f.auth_sync([f.user("alice", name="爱丽丝", role="admin"), f.user("bob"),
                                       f.user("carol", enable="false")])))
    ok(kg.kit("authSync", f.auth_sync([f.user("dave")])))
    ok(kg.kit("authSync", f.auth_sync([{"userName": "dave"}], flag=3, currentSyncTime="20220421000000000")))
    return kg


@pytest.fixture
def idp():
    """The tenant's authentication centre, faked strictly: an unregistered call fails, and so does a
    registered answer the test never asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru("http://localhost")  # the bridge's own endpoints, called by the OIDC tests
        yield mock


def fake_idp(idp, user="alice", *, tenant=f.TENANT, token_status=200, access="at-1", refresh="rt-1"):
    """The centre's answers to one login. A refused code ends the login before userinfo, so
    userinfo is registered only with a token (the fake is strict: every answer must be asked for)."""
    if token_status != 200:
        idp.post(f"{IDP}/api/v1/oauth2/token", status=token_status,
                 json={"error": "invalid_grant", "error_description": "Invalid authorization code"})
        return
    idp.post(f"{IDP}/api/v1/oauth2/token", json={"access_token": access, "token_type": "Bearer",
                                                  "expires_in": 7200, "refresh_token": refresh})
    info = {"id": "u-1", "userName": user, "name": user.title(), "role": "user", "organizationCode": "D1"}
    if tenant:
        info["tenant"] = tenant
    idp.get(f"{IDP}/api/v1/oauth2/userinfo", json=info)


def start(client, **params):
    response = client.get("/sso/login", query_string={"tenant": "acme", **params})
    assert response.status_code == 302, response.data[:300]
    location = urlsplit(response.headers["Location"])
    return location, {k: v[0] for k, v in parse_qs(location.query).items()}


def sign_in(client, idp, user="alice", **fake):
    _, params = start(client)
    fake_idp(idp, user, **fake)
    return client.get("/sso/callback", query_string={"code": "code-1", "state": params["state"], "tenant": f.TENANT})


def refused(response, reason, status):
    assert response.status_code == status, response.data[:500]
    assert f'data-reason="{reason}"'.encode() in response.data
    assert b"Request ID" in response.data or "请求编号".encode() in response.data
    return response


def csrf_token(client, path="/sso/logout") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def events(app):
    with app.app_context():
        return [(e.outcome, e.reason, e.user_name) for e in db.session.execute(db.select(LoginEvent)).scalars()]
