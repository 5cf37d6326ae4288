"""The outbound client on its own: exact requests, and every way an authentication centre fails."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
import requests
import responses

from sso.auth_centre import AuthCentreClient, AuthCentreError, Client

IDP = "https://idp.example.com/t/acme"
CLIENT = Client(IDP, "client-1", "secret-1")
TOKEN_URL = f"{IDP}/api/v1/oauth2/token"
USERINFO_URL = f"{IDP}/api/v1/oauth2/userinfo"


@pytest.fixture
def idp():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client():
    return AuthCentreClient(connect_timeout=1, read_timeout=2, pool_size=4)


def form(call) -> dict:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_exchange_sends_exactly_the_documented_form(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at", "token_type": "Bearer", "expires_in": 7200,
                              "scope": "get_user_info", "refresh_token": "rt"})
    tokens = client.exchange_code(CLIENT, "the-code", "https://bridge.example.com/sso/callback", "verifier-1")
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at", "rt", 7200)
    call = idp.calls[0]
    assert call.request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert form(call) == {"grant_type": "authorization_code", "code": "the-code", "client_id": "client-1",
                          "client_secret": "secret-1", "redirect_uri": "https://bridge.example.com/sso/callback",
                          "code_verifier": "verifier-1"}


def test_refresh_token_is_optional_in_the_answer(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at", "token_type": "bearer"})
    tokens = client.exchange_code(CLIENT, "c", "https://b/cb")
    assert tokens.refresh_token is None and tokens.expires_in == 7200
    assert "code_verifier" not in form(idp.calls[0])


@pytest.mark.parametrize("answer, reason", [
    (dict(status=400, json={"error": "invalid_grant", "error_description": "Invalid authorization code"}), "invalid_grant"),
    (dict(status=401, json={"error": "invalid_client", "error_description": "Bad client credentials"}), "invalid_client"),
    (dict(status=403, body="<html>Forbidden</html>", content_type="text/html"), "invalid_client"),
    (dict(status=502, body="<html>Bad gateway</html>", content_type="text/html"), "server_error"),
    (dict(status=503, json={"error": "busy"}), "server_error"),
    (dict(status=200, body="{not json", content_type="application/json"), "garbage"),
    (dict(status=200, json=["a", "list"]), "garbage"),
    (dict(status=200, json={"token_type": "Bearer"}), "garbage"),
    (dict(status=200, json={"access_token": "at", "token_type": "mac"}), "garbage"),
    (dict(status=302, headers={"Location": "https://elsewhere.example.com/steal"}), "redirect"),
    (dict(body=requests.ConnectTimeout("slow")), "timeout"),
    (dict(body=requests.ReadTimeout("slow")), "timeout"),
    (dict(body=requests.ConnectionError("refused")), "unreachable"),
])
def test_exchange_failures_have_a_reason(idp, client, answer, reason):
    idp.post(TOKEN_URL, **answer)
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(CLIENT, "c", "https://b/cb")
    assert err.value.reason == reason
    assert len(idp.calls) == 1  # a redirect is never followed


def test_secret_is_not_in_error_details(idp, client):
    idp.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "secret-1 is wrong"})
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(CLIENT, "c", "https://b/cb")
    assert err.value.reason == "invalid_client"


def test_userinfo_sends_bearer_and_returns_fields(idp, client):
    idp.get(USERINFO_URL, json={"userName": "zhangsan", "name": "张三", "tenant": "t1"})
    info = client.userinfo(IDP, "at-1")
    assert info["userName"] == "zhangsan"
    assert idp.calls[0].request.headers["Authorization"] == "Bearer at-1"
    assert idp.calls[0].request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("answer, reason", [
    (dict(status=401, json={"error": "unauthorized", "error_description": "Full authentication is required"}), "unauthorized"),
    (dict(status=200, json={"name": "no user name"}), "garbage"),
    (dict(status=200, json={"userName": ""}), "garbage"),
    (dict(status=200, json={"userName": "x" * 65}), "garbage"),
    (dict(status=200, body="<html>", content_type="text/html"), "garbage"),
    (dict(status=500), "server_error"),
    (dict(status=301, headers={"Location": "http://169.254.169.254/"}), "redirect"),
    (dict(body=requests.ReadTimeout("slow")), "timeout"),
])
def test_userinfo_failures_have_a_reason(idp, client, answer, reason):
    idp.get(USERINFO_URL, **answer)
    with pytest.raises(AuthCentreError) as err:
        client.userinfo(IDP, "at")
    assert err.value.reason == reason


def test_refresh_sends_refresh_grant_and_keeps_old_refresh_token_if_not_rotated(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at2", "token_type": "Bearer", "expires_in": 3600})
    tokens = client.refresh(CLIENT, "rt-1")
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at2", "rt-1", 3600)
    body = form(idp.calls[0])
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "rt-1"
    assert body["client_id"] == "client-1" and body["client_secret"] == "secret-1"


def test_refresh_rejected_is_invalid_grant(idp, client):
    idp.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "Invalid refresh token"})
    with pytest.raises(AuthCentreError) as err:
        client.refresh(CLIENT, "rt-1")
    assert err.value.reason == "invalid_grant"


def test_connections_are_pooled_per_host(client):
    assert client._adapter("https://a.example.com/") is client._adapter("https://a.example.com/")
    assert client._adapter("https://a.example.com/") is not client._adapter("https://b.example.com/")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.1", "::1"])
def test_hosts_resolving_to_private_addresses_are_never_called(idp, client, monkeypatch, address):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))])
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(Client("https://rebound.example.net", "c", "s"), "code", "https://b/cb")
    assert err.value.reason == "forbidden_host" and not idp.calls


def test_unresolvable_host_is_unreachable(idp, client):
    with pytest.raises(AuthCentreError) as err:
        client.userinfo("https://no-such-host.invalid", "at")
    assert err.value.reason == "unreachable"


def test_private_hosts_allowed_for_the_local_simulator(idp):
    local = AuthCentreClient(connect_timeout=1, read_timeout=1, pool_size=1, allow_private=True)
    idp.get("http://127.0.0.1:5001/t/acme/api/v1/oauth2/userinfo", json={"userName": "u"})
    assert local.userinfo("http://127.0.0.1:5001/t/acme", "at")["userName"] == "u"
