"""Fixtures and helpers for the OIDC-provider tests, as a pytest plugin (registered in
conftest.py): a registered app, a signed-in browser, the authorization-code dance."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.sso_fixtures import sign_in

REDIRECT = "https://app.example.com/callback"
ISSUER = "http://localhost"


def register(runner, *extra) -> tuple[str, str | None]:
    result = runner.invoke(args=["apps", "register", "--name", "Demo App", "--redirect-uri", REDIRECT, *extra])
    assert result.exit_code == 0, result.output
    client_id = re.search(r"client_id:\s+(\S+)", result.output).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", result.output)
    return client_id, secret.group(1) if secret else None


@pytest.fixture
def app_client(runner):
    return register(runner, "--backchannel-logout-uri", "https://app.example.com/backchannel",
                    "--post-logout-redirect-uri", "https://app.example.com/bye")


@pytest.fixture
def signed_in(synced, client, idp):
    assert sign_in(client, idp).status_code == 302
    return client


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(client, client_id, **extra):
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": "openid profile email koogallery", "state": "st-1", "nonce": secrets.token_hex(8), **extra}
    return client.get("/oidc/authorize", query_string={k: v for k, v in params.items() if v is not None})


def code_from(response) -> str:
    assert response.status_code == 302, response.data[:400]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def exchange(client, client_id, secret, code, *, verifier=None, method="basic"):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier:
        data["code_verifier"] = verifier
    headers = {}
    if method == "basic" and secret:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    else:
        data["client_id"] = client_id
        if secret:
            data["client_secret"] = secret
    return client.post("/oidc/token", data=data, headers=headers)


def tokens_for(client, app_client, **extra):
    client_id, secret = app_client
    verifier, challenge = pkce()
    extra.setdefault("nonce", secrets.token_hex(8))  # a nonce is single-use, as OIDC requires
    code = code_from(authorize(client, client_id, code_challenge=challenge, code_challenge_method="S256", **extra))
    response = exchange(client, client_id, secret, code, verifier=verifier)
    assert response.status_code == 200, response.get_json()
    return {**response.get_json(), "nonce": extra["nonce"]}


def verify_id_token(client, tokens: dict, client_id: str) -> dict:
    token, nonce = tokens["id_token"], tokens["nonce"]
    keys = KeySet.import_key_set(client.get("/oidc/jwks").get_json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": client_id},
                      exp={"essential": True}, nonce={"essential": True, "value": nonce},
                      sub={"essential": True}).validate(decoded.claims)
    return decoded.claims
