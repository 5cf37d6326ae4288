"""A tenant authentication centre's OAuth2 rules, OneAccess-style (spec §6): what is checked, in
which order, and the exact error vocabulary. No Flask request in here; idp.py turns requests
into calls and answers into responses.

The token endpoint answers only the documented descriptions ("Invalid authorization code",
"Bad client credentials", ...); the precise reason is logged, as a real server would keep it
to itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

from simulator.directory import Directory
from simulator.i18n import N_
from simulator.seed import Tenant, User
from simulator.state import Store

log = logging.getLogger(__name__)

DEFAULT_SCOPE = "get_user_info"
# RFC 7636: the S256 challenge is base64url(SHA-256) without padding, 43 characters; verifiers
# are 43-128 characters of the unreserved set.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


class OAuthError(Exception):
    """An OAuth error answer: HTTP status plus the JSON `error` and `error_description`."""

    def __init__(self, status: int, error: str, description: str, reason: str | None = None):
        super().__init__(reason or description)
        self.status, self.error, self.description = status, error, description
        self.reason = reason or description

    def as_json(self) -> dict:
        return {"error": self.error, "error_description": self.description}


def invalid_code(reason: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", "Invalid authorization code", reason)


def invalid_refresh_token(reason: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", "Invalid refresh token", reason)


def bad_client(reason: str) -> OAuthError:
    return OAuthError(401, "invalid_client", "Bad client credentials", reason)


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def unauthorized(reason: str) -> OAuthError:
    return OAuthError(401, "unauthorized", "Full authentication is required to access this resource", reason)


class AuthorizePageError(Exception):
    """An authorize request that cannot be answered by redirecting (unknown client, unregistered
    redirect_uri): shown to the user as a page. `message` is an i18n key."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message, self.detail = message, detail


class AuthorizeRedirectError(Exception):
    """An authorize request refused by redirecting back with ?error= (RFC 6749 §4.1.2.1)."""

    def __init__(self, request: AuthorizeRequest, error: str, description: str):
        super().__init__(description)
        self.request, self.error, self.description = request, error, description


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str | None


def redirect_uri_registered(uri: str, *, app_login_url: str, bridge_url: str) -> bool:
    """The app's registered login address, or any address on the bridge (its own authorize
    requests carry its callback). Compared as origin + path prefix, not as a string prefix, so
    http://127.0.0.1:50001 is not mistaken for http://127.0.0.1:5000."""
    if not uri or "#" in uri:
        return False
    if uri == app_login_url:
        return True
    try:
        got, base = urlsplit(uri), urlsplit(bridge_url.rstrip("/"))
        same_origin = (got.scheme, got.hostname, got.port) == (base.scheme, base.hostname, base.port)
    except ValueError:
        return False
    return same_origin and got.scheme in ("http", "https") and (got.path + "/").startswith(base.path + "/")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


class AuthorizationServer:
    def __init__(self, directory: Directory, store: Store, *, app_login_url: str, bridge_url: str,
                 code_ttl: float, access_ttl: int, refresh_ttl: float):
        self.directory, self.store = directory, store
        self.app_login_url, self.bridge_url = app_login_url, bridge_url
        self.code_ttl, self.access_ttl, self.refresh_ttl = code_ttl, access_ttl, refresh_ttl

    # --- authorize -------------------------------------------------------------------------------

    def check_authorize_request(self, tenant: Tenant, args) -> AuthorizeRequest:
        """Checks in the order that decides how a refusal is shown: client and redirect_uri first
        (a page: never redirect to an address we cannot trust), then the rest (a redirect)."""
        client_id = args.get("client_id") or ""
        if not client_id:
            raise AuthorizePageError(N_("error.missing_client_id"))
        if not hmac.compare_digest(client_id.encode(), tenant.client_id.encode()):
            raise AuthorizePageError(N_("error.unknown_client"), client_id)
        redirect_uri = args.get("redirect_uri") or ""
        if not redirect_uri:
            raise AuthorizePageError(N_("error.missing_redirect_uri"))
        if not redirect_uri_registered(redirect_uri, app_login_url=self.app_login_url, bridge_url=self.bridge_url):
            raise AuthorizePageError(N_("error.redirect_uri_mismatch"), redirect_uri)
        request = AuthorizeRequest(client_id=client_id, redirect_uri=redirect_uri,
                                   scope=args.get("scope") or DEFAULT_SCOPE, state=args.get("state") or None,
                                   code_challenge=args.get("code_challenge") or None)
        if args.get("response_type") != "code":
            raise AuthorizeRedirectError(request, "unsupported_response_type",
                                         "Unsupported response types: " + (args.get("response_type") or "(none)"))
        method = args.get("code_challenge_method")
        if request.code_challenge or method:
            if method != "S256":
                raise AuthorizeRedirectError(request, "invalid_request", "code_challenge_method must be S256")
            if not request.code_challenge or not _CHALLENGE.fullmatch(request.code_challenge):
                raise AuthorizeRedirectError(request, "invalid_request",
                                             "code_challenge must be 43 base64url characters")
        return request

    def issue_code(self, tenant: Tenant, user: User, *, client_id: str, redirect_uri: str,
                   scope: str = DEFAULT_SCOPE, code_challenge: str | None = None) -> str:
        return self.store.issue_code(tenant_code=tenant.tenant_code, client_id=client_id, user_name=user.user_name,
                                     redirect_uri=redirect_uri, scope=scope, code_challenge=code_challenge,
                                     ttl=self.code_ttl)

    # --- token -----------------------------------------------------------------------------------

    def authenticate_client(self, tenant: Tenant, form, basic: tuple[str, str] | None) -> str:
        """client_id/client_secret from HTTP Basic (RFC 6749 §2.3.1, form-encoded inside) or the body."""
        body_id, body_secret = form.get("client_id"), form.get("client_secret")
        if basic is not None:
            client_id, secret = basic
            if body_id and body_id not in (client_id, unquote_plus(client_id)):
                raise bad_client("client_id in the body differs from HTTP Basic")
        else:
            client_id, secret = body_id, body_secret
        if not client_id or secret is None:
            raise bad_client("no client credentials")
        for cid, sec in {(client_id, secret), (unquote_plus(client_id), unquote_plus(secret))}:
            if (hmac.compare_digest(cid.encode(), tenant.client_id.encode())
                    and hmac.compare_digest(sec.encode(), tenant.client_secret.encode())):
                return tenant.client_id
        raise bad_client(f"wrong client_id or client_secret for tenant {tenant.tenant_code}")

    def token(self, tenant: Tenant, form, basic: tuple[str, str] | None, *, codes_expired: bool = False) -> dict:
        client_id = self.authenticate_client(tenant, form, basic)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise invalid_request("Missing grant type")
        if grant_type == "authorization_code":
            return self._exchange_code(tenant, client_id, form, codes_expired=codes_expired)
        if grant_type == "refresh_token":
            return self._refresh(tenant, client_id, form)
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type[:64]}")

    def _exchange_code(self, tenant: Tenant, client_id: str, form, *, codes_expired: bool) -> dict:
        code = form.get("code")
        if not code:
            raise invalid_request("Missing authorization code")
        if codes_expired:
            raise invalid_code("fault expired_codes is on for this tenant")
        grant = self.store.redeem_code(code)
        if grant is None:
            raise invalid_code("unknown code")
        if grant.used_at is not None:
            raise invalid_code("code already used; tokens issued for it are revoked")
        if grant.tenant_code != tenant.tenant_code:
            raise invalid_code(f"code was issued by tenant {grant.tenant_code}")
        if grant.client_id != client_id:
            raise invalid_code("code was issued to another client")
        if grant.expires_at <= self.store.now():
            raise invalid_code("code expired")
        redirect_uri = form.get("redirect_uri")
        if redirect_uri and redirect_uri != grant.redirect_uri:
            raise invalid_code(f"redirect_uri {redirect_uri} differs from the authorize request's")
        if grant.code_challenge:
            verifier = form.get("code_verifier") or ""
            if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), grant.code_challenge):
                raise invalid_code("PKCE code_verifier missing or wrong")
        user = self.directory.user(tenant, grant.user_name)
        if user is None:
            raise invalid_code(f"user {grant.user_name} no longer exists")
        access, refresh = self.store.issue_tokens(
            tenant_code=tenant.tenant_code, client_id=client_id, user_name=user.user_name, scope=grant.scope,
            access_ttl=self.access_ttl, refresh_ttl=self.refresh_ttl, code=code)
        return self._token_answer(access, refresh, grant.scope)

    def _refresh(self, tenant: Tenant, client_id: str, form) -> dict:
        presented = form.get("refresh_token")
        if not presented:
            raise invalid_request("Missing refresh token")
        grant = self.store.token(presented, "refresh")
        if grant is None:
            raise invalid_refresh_token("unknown, used or expired refresh token")
        if grant.tenant_code != tenant.tenant_code or grant.client_id != client_id:
            raise invalid_refresh_token("refresh token belongs to another tenant or client")
        if self.directory.user(tenant, grant.user_name) is None:
            raise invalid_refresh_token(f"user {grant.user_name} no longer exists")
        try:
            access, refresh = self.store.issue_tokens(
                tenant_code=tenant.tenant_code, client_id=client_id, user_name=grant.user_name, scope=grant.scope,
                access_ttl=self.access_ttl, refresh_ttl=self.refresh_ttl, code=grant.code, replaces=presented)
        except LookupError:
            raise invalid_refresh_token("refresh token used concurrently") from None
        return self._token_answer(access, refresh, grant.scope)

    def _token_answer(self, access: str, refresh: str, scope: str) -> dict:
        # Key order as in the documentation's example.
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl, "scope": scope,
                "refresh_token": refresh}

    # --- userinfo --------------------------------------------------------------------------------

    def userinfo(self, tenant: Tenant, authorization: str | None, *, wrong_tenant: bool = False,
                 domain_id_tenant: bool = False) -> dict:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("no bearer token")
        grant = self.store.token(token.strip(), "access")
        if grant is None:
            raise unauthorized("unknown or expired access token")
        if grant.tenant_code != tenant.tenant_code:
            raise unauthorized(f"access token was issued by tenant {grant.tenant_code}")
        user = self.directory.user(tenant, grant.user_name)
        if user is None:
            raise unauthorized(f"user {grant.user_name} no longer exists")
        department = tenant.department(user.org_code)
        tenant_id = tenant.tenant_id
        if wrong_tenant:
            tenant_id = next((t.tenant_id for t in self.directory.tenants if t.tenant_id != tenant.tenant_id),
                             "0" * 32)
        if domain_id_tenant:  # the enterprise's domainId, as the centre documents `tenant`
            tenant_id = "domain-" + hashlib.sha256(tenant.tenant_id.encode()).hexdigest()[:24]
        user_id = self.directory.user_id(tenant, user)
        info = {"id": user_id, "userName": user.user_name, "name": user.name, "email": user.email,
                "mobile": user.mobile, "role": user.role,
                "organizationName": department.name if department else None, "organizationCode": user.org_code,
                "userId": user_id, "projectName": tenant.name, "tenant": tenant_id}
        # Contact fields are absent when the buyer did not grant them (spec §5.3), not null.
        return {k: v for k, v in info.items() if v is not None}
