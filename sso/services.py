"""The login flow: start an authorize request, check the state that comes back, exchange the
code, fetch userinfo, decide admission (DESIGN invariant 5), and record what happened.
No `request` here; views pass in what they read from it."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import InvalidToken
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from extensions import db
from keys import keyring
from ops.metrics import LOGINS
from sso.auth_centre import AUTHORIZE_PATH, LOGOUT_PATH, AuthCentreClient, AuthCentreError, Client, Tokens
from sso.errors import LoginError
from sso.models import LoginEvent, LoginState
from sso.sessions import Identity, hash_token
from tenants.models import Department, Tenant, TenantApp, TenantInstance, TenantUser, utcnow
from tenants.services import tenant_login_block

log = logging.getLogger(__name__)


def auth_centre() -> AuthCentreClient:
    return current_app.extensions["auth_centre_client"]


# --- which tenant ---------------------------------------------------------------------------------


def find_tenant(ref: str) -> Tenant:
    """By tenant ID or tenant code (what a person types); the live tenant wins over a deleted one."""
    ref = (ref or "").strip()
    if not ref or len(ref) > 64:
        raise LoginError("unknown_tenant", "empty or overlong tenant reference")
    tenant = db.session.get(Tenant, ref)
    if tenant is None:
        tenant = db.session.execute(
            db.select(Tenant).where(db.func.lower(Tenant.tenant_code) == ref.lower())
            .order_by(Tenant.deleted_at.is_not(None))).scalars().first()
    if tenant is None:
        raise LoginError("unknown_tenant", f"no tenant {ref!r}")
    return tenant


def find_tenant_by_instance(instance_id: str) -> Tenant:
    tenant_ids = db.session.execute(db.select(TenantInstance.tenant_id).filter_by(
        instance_id=(instance_id or "")[:64])).scalars().all()
    tenants = [t for t in (db.session.get(Tenant, tid) for tid in tenant_ids) if t is not None]
    if not tenants:
        raise LoginError("unknown_tenant", f"no tenant bound to instance {instance_id[:64]!r}")
    return sorted(tenants, key=lambda t: t.deleted_at is not None)[0]


def check_tenant_open(tenant: Tenant) -> None:
    block = tenant_login_block(tenant)
    if block:
        raise LoginError(block, tenant_id=tenant.tenant_id)


def client_for(tenant: Tenant) -> Client:
    """The tenant's OAuth client from applicationSync (BRIDGE_APP_ID picks one if several)."""
    stmt = (db.select(TenantApp).filter_by(tenant_id=tenant.tenant_id, deleted_at=None)
            .where(TenantApp.client_secret_enc.is_not(None), TenantApp.client_id.is_not(None))
            .order_by(TenantApp.last_sync_ts.desc()))
    if current_app.config.get("APP_ID"):
        stmt = stmt.filter_by(app_id=current_app.config["APP_ID"])
    app = db.session.execute(stmt).scalars().first()
    if app is None:
        raise LoginError("app_missing", "no applicationSync credentials", tenant_id=tenant.tenant_id)
    try:
        secret = keyring().data.decrypt(app.client_secret_enc)
    except InvalidToken:
        raise LoginError("app_missing", "stored client secret does not decrypt with BRIDGE_DATA_KEYS",
                         tenant_id=tenant.tenant_id) from None
    return Client(tenant.domain_name, app.client_id, secret)


# --- starting a login -----------------------------------------------------------------------------


def start_login(tenant: Tenant, *, browser_token: str, redirect_uri: str, next_url: str | None) -> str:
    """Record a state bound to this browser and return the authorize URL to send it to."""
    check_tenant_open(tenant)
    client = client_for(tenant)
    cfg = current_app.config
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48) if cfg["IDP_USE_PKCE"] else None
    db.session.add(LoginState(
        state_hash=hash_token(state), browser_hash=hash_token(browser_token), tenant_id=tenant.tenant_id,
        redirect_uri=redirect_uri, next_url=next_url,
        code_verifier_enc=keyring().data.encrypt(verifier) if verifier else None,
        expires_at=utcnow() + timedelta(seconds=cfg["LOGIN_STATE_TTL_SECONDS"]),
    ))
    db.session.commit()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
              "scope": cfg["IDP_SCOPE"], "state": state}
    if verifier:
        params |= {"code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    return f"{tenant.domain_name}{AUTHORIZE_PATH}?{urlencode(params)}"


def portal_login_url() -> str:
    cfg = current_app.config
    base = cfg["PORTAL_LOGIN_URL"]
    query = urlencode({"ind": "UNOP", "appId": cfg.get("APP_ID") or ""})
    return f"{base}{'&' if '?' in base else '?'}{query}"


def logout_url(tenant_id: str, return_to: str) -> str | None:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None or not tenant.domain_name:
        return None
    return f"{tenant.domain_name}{LOGOUT_PATH}?{urlencode({'redirect_url': return_to})}"


# --- coming back ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingLogin:
    tenant_id: str
    redirect_uri: str
    code_verifier: str | None
    next_url: str | None


def consume_state(state: str, *, browser_token: str | None, callback_tenant: str | None) -> PendingLogin:
    """The login this state belongs to; single use, unexpired, same browser, same tenant."""
    if len(state) > 128:
        raise LoginError("state_invalid", "overlong state")
    row = db.session.get(LoginState, hash_token(state), with_for_update=True)
    if row is None:
        raise LoginError("state_invalid", "state not issued by this bridge")
    if row.used_at is not None:
        raise LoginError("state_replayed", "state already used", tenant_id=row.tenant_id)
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires <= utcnow():
        raise LoginError("state_expired", "state expired", tenant_id=row.tenant_id)
    if not browser_token or hash_token(browser_token) != row.browser_hash:
        raise LoginError("state_mismatch", "state was issued to another browser", tenant_id=row.tenant_id)
    if callback_tenant and callback_tenant != row.tenant_id:
        raise LoginError("tenant_mismatch", "callback tenant differs from the tenant the login started for",
                         tenant_id=row.tenant_id)
    row.used_at = utcnow()
    verifier = keyring().data.decrypt(row.code_verifier_enc) if row.code_verifier_enc else None
    pending = PendingLogin(row.tenant_id, row.redirect_uri, verifier, row.next_url)
    db.session.commit()  # used before any outbound call: a replay in parallel finds it used
    return pending


_IDP_REASONS = {"unreachable": "idp_unreachable", "timeout": "idp_timeout", "garbage": "idp_garbage",
                "redirect": "idp_garbage", "invalid_grant": "code_invalid", "invalid_client": "idp_rejected_client",
                "forbidden_host": "idp_forbidden_host", "too_large": "idp_garbage", "busy": "idp_busy",
                "circuit_open": "idp_circuit_open"}


def complete_login(tenant_id: str, code: str, *, redirect_uri: str, code_verifier: str | None) -> tuple[Identity, Tokens]:
    """Exchange the code at the tenant's authentication centre and decide admission."""
    if not code or len(code) > 2048:
        raise LoginError("code_missing", "no usable code", tenant_id=tenant_id)
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise LoginError("unknown_tenant", f"no tenant {tenant_id[:64]!r}")
    check_tenant_open(tenant)
    client = client_for(tenant)
    db.session.commit()  # no transaction held open across the outbound calls
    try:
        tokens = auth_centre().exchange_code(client, code, redirect_uri, code_verifier)
        info = auth_centre().userinfo(client.domain_name, tokens.access_token)
    except AuthCentreError as exc:
        raise LoginError(_IDP_REASONS.get(exc.reason, "idp_error"), exc.detail, tenant_id=tenant_id,
                         retry_after=exc.retry_after) from None
    return admit(tenant, info), tokens


def refresh_tokens(tenant_id: str, refresh_token: str) -> Tokens:
    tenant = db.session.get(Tenant, tenant_id)
    return auth_centre().refresh(client_for(tenant), refresh_token)


def _text(info: dict, name: str, max_len: int) -> str | None:
    value = info.get(name)
    return str(value)[:max_len] if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def admit(tenant: Tenant, info: dict) -> Identity:
    """Only users KooGallery authorised for this tenant, enabled; the IdP must agree on the tenant."""
    user_name = info["userName"].strip()
    info_tenant = _text(info, "tenant", 64)
    if info_tenant is not None and info_tenant != tenant.tenant_id:
        raise LoginError("tenant_mismatch", f"userinfo tenant {info_tenant!r}", tenant_id=tenant.tenant_id,
                         user_name=user_name)
    user = db.session.get(TenantUser, (tenant.tenant_id, user_name))
    jit = False
    if user is None or user.deleted_at is not None:
        known_users = db.session.scalar(db.select(db.func.count()).select_from(TenantUser)
                                        .filter_by(tenant_id=tenant.tenant_id))
        if not (current_app.config["JIT_USERS"] and known_users == 0):
            raise LoginError("not_authorised", "user not in authSync", tenant_id=tenant.tenant_id, user_name=user_name)
        jit = True
    elif not user.authorized:
        raise LoginError("not_authorised", "authorisation cancelled", tenant_id=tenant.tenant_id, user_name=user_name)
    elif not user.enabled:
        raise LoginError("user_disabled", "enable=false", tenant_id=tenant.tenant_id, user_name=user_name)

    org_code = (user.org_code if user else None) or _text(info, "organizationCode", 64)
    org_name = _text(info, "organizationName", 128)
    if org_code and not org_name:
        dept = db.session.get(Department, (tenant.tenant_id, org_code))
        org_name = dept.org_name if dept else None
    role = (user.role if user else (_text(info, "role", 32) or "user")).lower()
    return Identity(
        tenant_id=tenant.tenant_id, tenant_code=tenant.tenant_code, tenant_name=tenant.name, user_name=user_name,
        name=(user.name if user and user.name else _text(info, "name", 64)),
        role="admin" if role == "admin" else "user", org_code=org_code, org_name=org_name,
        email=(user.email if user and user.email else _text(info, "email", 128)),
        mobile=(user.mobile if user and user.mobile else _text(info, "mobile", 32)), jit=jit,
    )


# --- audit ----------------------------------------------------------------------------------------


def record_login_event(outcome: str, *, request_id: str, reason: str | None = None, tenant_id: str | None = None,
                       user_name: str | None = None, detail: str | None = None, remote_addr: str | None = None,
                       commit: bool = True) -> None:
    """The audit row; with commit=False it joins the caller's transaction (a new session and its
    "success" row commit together)."""
    try:
        db.session.add(LoginEvent(request_id=request_id, outcome=outcome, reason=reason, tenant_id=tenant_id,
                                  user_name=user_name, detail=(detail or "")[:255] or None,
                                  remote_addr=(remote_addr or "")[:64] or None))
        if commit:
            db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.error("login_audit_write_failed outcome=%s reason=%s", outcome, reason)
    LOGINS.labels(outcome, reason or "").inc()
    log.info("login outcome=%s reason=%s tenant=%s user=%s detail=%r", outcome, reason, tenant_id, user_name,
             (detail or "")[:200])
