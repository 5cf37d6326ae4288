"""The login flow: start an authorize request, check the state that comes back, exchange the
code, fetch userinfo, decide admission (DESIGN invariant 5), and record what happened.
No `request` here; views pass in what they read from it."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import InvalidToken
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from common.clock import aware, utcnow
from common.hashing import hash_token
from common.metrics import LOGINS
from common.secrets_text import random_text
from extensions import db
from keys import keyring
from sso import admission
from sso.auth_centre import AUTHORIZE_PATH, LOGOUT_PATH, AuthCentreClient, AuthCentreError, Client, Tokens
from sso.errors import LoginError
from sso.identity import Identity, claim, identity_from
from sso.models import LoginEvent, LoginState
from tenants import queries

log = logging.getLogger(__name__)


def auth_centre() -> AuthCentreClient:
    return current_app.extensions["auth_centre_client"]


# --- which tenant ---------------------------------------------------------------------------------


def find_tenant(ref: str) -> queries.TenantFacts:
    """By tenant ID or tenant code (what a person types); the live tenant wins over a deleted one.
    With its orders and OAuth client: what the login reads next, in the same round trip."""
    ref = (ref or "").strip()
    if not ref or len(ref) > 64:
        raise LoginError("unknown_tenant", "empty or overlong tenant reference")
    facts = queries.tenant_for_login_by_ref(ref, current_app.config.get("APP_ID"))
    if facts.tenant is None:
        raise LoginError("unknown_tenant", f"no tenant {ref!r}")
    return facts


def find_tenant_by_instance(instance_id: str) -> queries.TenantFacts:
    tenants = queries.tenants_of_instance((instance_id or "")[:64])
    if not tenants:
        raise LoginError("unknown_tenant", f"no tenant bound to instance {instance_id[:64]!r}")
    return tenant_for_login(tenants[0].tenant_id)


def tenant_for_login(tenant_id: str) -> queries.TenantFacts:
    """The tenant, its orders and its OAuth client (of BRIDGE_APP_ID, if the deployment names one)."""
    return queries.tenant_for_login(tenant_id, current_app.config.get("APP_ID"))


def client_for(facts: queries.TenantFacts) -> Client:
    """The tenant's OAuth client from applicationSync (BRIDGE_APP_ID picks one if several)."""
    tenant, app = facts.tenant, facts.credentials
    if app is None:
        raise LoginError("app_missing", "no applicationSync credentials", tenant_id=tenant.tenant_id)
    try:
        secret = keyring().data.decrypt(app.client_secret_enc)
    except InvalidToken:
        raise LoginError("app_missing", "stored client secret does not decrypt with BRIDGE_DATA_KEYS",
                         tenant_id=tenant.tenant_id) from None
    return Client(tenant.domain_name, app.client_id, secret)


# --- starting a login -----------------------------------------------------------------------------


def new_state() -> str:
    return random_text(43)  # letters and digits: what the centres document for `state`


def start_login(facts: queries.TenantFacts, *, browser_token: str, redirect_uri: str, next_url: str | None,
                client: str | None = None, reinitiated: bool = False) -> str:
    """Record a state bound to this browser and return the authorize URL to send it to.

    Anyone can start a login, so the rows this writes are capped: per client (its address) and in
    total; past a cap nothing is written and the visitor is told to wait (DESIGN invariant 10)."""
    tenant = facts.tenant
    admission.check_tenant(tenant, orders=facts.orders)
    oauth_client = client_for(facts)
    cfg = current_app.config
    client_hash = hash_token(client or "-")[:32]
    now = utcnow()
    of_client, in_total = db.session.execute(
        db.select(db.func.count().filter(LoginState.client_hash == client_hash), db.func.count())
        .select_from(LoginState).where(LoginState.expires_at > now, LoginState.used_at.is_(None))).one()
    if of_client >= cfg["LOGIN_STATES_PER_CLIENT"] or in_total >= cfg["LOGIN_STATES_TOTAL"]:
        raise LoginError("too_many_logins", "open login states over the cap", tenant_id=tenant.tenant_id)
    state = new_state()
    verifier = secrets.token_urlsafe(48) if cfg["IDP_USE_PKCE"] else None
    db.session.execute(db.insert(LoginState.__table__), dict(
        state_hash=hash_token(state), browser_hash=hash_token(browser_token), tenant_id=tenant.tenant_id,
        redirect_uri=redirect_uri, next_url=next_url, client_hash=client_hash, reinitiated=reinitiated,
        code_verifier_enc=keyring().data.encrypt(verifier) if verifier else None,
        expires_at=now + timedelta(seconds=cfg["LOGIN_STATE_TTL_SECONDS"]),
    ))
    db.session.commit()
    params = {"response_type": "code", "client_id": oauth_client.client_id, "redirect_uri": redirect_uri,
              "scope": cfg["IDP_SCOPE"], "state": state}
    if verifier:
        params |= {"code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    if reinitiated and cfg["IDP_PROMPT_NONE"]:
        params["prompt"] = "none"  # a centre that knows it answers without a page, or with an error
    return f"{tenant.domain_name}{AUTHORIZE_PATH}?{urlencode(params)}"


def portal_login_url() -> str:
    cfg = current_app.config
    base = cfg["PORTAL_LOGIN_URL"]
    query = urlencode({"ind": "UNOP", "appId": cfg.get("APP_ID") or ""})
    return f"{base}{'&' if '?' in base else '?'}{query}"


def logout_url(tenant_id: str, return_to: str) -> str | None:
    tenant = queries.tenant(tenant_id)
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
    reinitiated: bool = False


def consume_state(state: str, *, browser_token: str | None, callback_tenant: str | None) -> PendingLogin:
    """The login this state belongs to; single use, unexpired, same browser, same tenant.

    Spent by one UPDATE that checks all of that (a replay in parallel finds it used); only when it
    spends nothing is the row read, to say why."""
    if len(state) > 128:
        raise LoginError("state_invalid", "overlong state")
    state_hash, now = hash_token(state), utcnow()
    row = None
    if browser_token:
        spend = (db.update(LoginState)
                 .where(LoginState.state_hash == state_hash, LoginState.used_at.is_(None), LoginState.expires_at > now,
                        LoginState.browser_hash == hash_token(browser_token))
                 .values(used_at=now)
                 .returning(LoginState.tenant_id, LoginState.redirect_uri, LoginState.code_verifier_enc,
                            LoginState.next_url, LoginState.reinitiated))
        if callback_tenant:
            spend = spend.where(LoginState.tenant_id == callback_tenant)
        row = db.session.execute(spend, execution_options={"synchronize_session": False}).first()
    if row is None:
        db.session.rollback()
        _refuse_state(state_hash, browser_token, callback_tenant, now)
    verifier = keyring().data.decrypt(row.code_verifier_enc) if row.code_verifier_enc else None
    pending = PendingLogin(row.tenant_id, row.redirect_uri, verifier, row.next_url, bool(row.reinitiated))
    db.session.commit()  # spent before any outbound call
    return pending


def _refuse_state(state_hash: str, browser_token: str | None, callback_tenant: str | None, now) -> NoReturn:
    row = db.session.get(LoginState, state_hash)
    if row is None:
        raise LoginError("state_invalid", "state not issued by this bridge")
    if row.used_at is not None:
        raise LoginError("state_replayed", "state already used", tenant_id=row.tenant_id)
    if aware(row.expires_at) <= now:
        raise LoginError("state_expired", "state expired", tenant_id=row.tenant_id)
    if not browser_token or hash_token(browser_token) != row.browser_hash:
        raise LoginError("state_mismatch", "state was issued to another browser", tenant_id=row.tenant_id)
    raise LoginError("tenant_mismatch", "callback tenant differs from the tenant the login started for",
                     tenant_id=row.tenant_id)


_IDP_REASONS = {"unreachable": "idp_unreachable", "timeout": "idp_timeout", "garbage": "idp_garbage",
                "redirect": "idp_garbage", "invalid_grant": "code_invalid", "invalid_client": "idp_rejected_client",
                "forbidden_host": "idp_forbidden_host", "too_large": "idp_garbage", "busy": "idp_busy",
                "circuit_open": "idp_circuit_open"}


def complete_login(tenant_id: str, code: str, *, redirect_uri: str | None, code_verifier: str | None,
                   facts: queries.TenantFacts | None = None) -> tuple[Identity, Tokens]:
    """Exchange the code at the tenant's authentication centre and decide admission (`facts`: what
    find_tenant has just read, when the caller has it)."""
    if not code or len(code) > 2048:
        raise LoginError("code_missing", "no usable code", tenant_id=tenant_id)
    if facts is None:
        facts = tenant_for_login(tenant_id)
    admission.check_tenant(facts.tenant, orders=facts.orders)
    client = client_for(facts)
    db.session.commit()  # no transaction held open across the outbound calls
    try:
        tokens = auth_centre().exchange_code(client, code, redirect_uri, code_verifier)
        info = auth_centre().userinfo(client.domain_name, tokens.access_token)
    except AuthCentreError as exc:
        raise LoginError(_IDP_REASONS.get(exc.reason, "idp_error"), exc.detail, tenant_id=tenant_id,
                         retry_after=exc.retry_after) from None
    user_name = info["userName"].strip()
    admitted = admission.admit_user(facts.tenant, user_name, claim(info, "tenant", 64))
    return identity_from(admitted.tenant, admitted.user, info, jit=admitted.jit), tokens


def client_for_tenant_id(tenant_id: str) -> Client:
    facts = tenant_for_login(tenant_id)
    if facts.tenant is None:
        raise LoginError("app_missing", "tenant gone", tenant_id=tenant_id)
    return client_for(facts)


# --- audit ----------------------------------------------------------------------------------------


def record_login_event(outcome: str, *, request_id: str, reason: str | None = None, tenant_id: str | None = None,
                       user_name: str | None = None, detail: str | None = None, remote_addr: str | None = None,
                       commit: bool = True) -> None:
    """The audit row; with commit=False it joins the caller's transaction (a new session and its
    "success" row commit together)."""
    try:
        db.session.execute(db.insert(LoginEvent.__table__), dict(
            request_id=request_id, outcome=outcome, reason=reason, tenant_id=tenant_id, user_name=user_name,
            detail=(detail or "")[:255] or None, remote_addr=(remote_addr or "")[:64] or None))
        if commit:
            db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.error("login_audit_write_failed outcome=%s reason=%s", outcome, reason)
    LOGINS.labels(outcome, reason or "").inc()
    log.info("login outcome=%s reason=%s tenant=%s user=%s detail=%r", outcome, reason, tenant_id, user_name,
             (detail or "")[:200])
