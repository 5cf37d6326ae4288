"""Applying KooGallery's calls to the database. No `request` here: each function takes the parsed
body, changes rows inside the caller's transaction, and returns an Outcome or raises SyncError.

Common rules (spec §2, §5, §7): repeats succeed without duplicates; a delete of something unknown
succeeds (and leaves a tombstone so an older, late "add" cannot resurrect it); an update whose
KooGallery time is older than what is stored is acknowledged and ignored."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common.clock import utcnow
from extensions import db
from keys.rsa import DecryptError, decrypt_client_secret
from tenants import parsing as p
from tenants.errors import ResultCode, SyncError, invalid
from tenants.models import (
    Department,
    DepartmentList,
    Instance,
    InstanceStatus,
    SeenNonce,
    Tenant,
    TenantApp,
    TenantInstance,
    TenantUser,
)
from tenants.newer import apply_if_newer, fill_if_blank, insert_missing, keep_first, set_null, tombstone_unlisted
from tenants.signals import centre_changed, revoke_access

log = logging.getLogger(__name__)

ADD, DELETE, MODIFY, CANCEL = 1, 0, 2, 3


@dataclass
class Outcome:
    message: str = "success"
    extra: dict = field(default_factory=dict)
    tenant_id: str | None = None
    instance_id: str | None = None
    unknown_instance: bool = False  # a production kit call named an instance the bridge does not know
    audit_note: str = ""  # for the operator's sync log only, not for KooGallery


# --- replay guard and identical re-sends -------------------------------------------------------


@dataclass(frozen=True)
class Resend:
    """An identical re-send of a call already answered: answer it again, apply nothing twice."""

    answer: dict


def request_hash(interface: str, raw: bytes) -> str:
    return hashlib.sha256(interface.encode("utf-8") + b"\n" + raw).hexdigest()


def claim_nonce(nonce: str, fingerprint: str, ttl_seconds: int) -> Resend | None:
    """First statement of every verified call's transaction. A concurrent duplicate waits on the
    primary key until the first call commits (or rolls back, and then the retry may use it).
    A nonce already used for this very request gives back its answer; for anything else, 000001."""
    row = {"nonce": nonce, "expires_at": utcnow() + timedelta(seconds=ttl_seconds), "request_hash": fingerprint}
    if insert_missing(SeenNonce, [row], ("nonce",)):
        return None
    seen = db.session.get(SeenNonce, nonce)
    if seen is None or seen.request_hash != fingerprint or seen.answer is None:
        raise SyncError(ResultCode.AUTH_FAILED, "nonce was already used (replayed request)")
    return Resend(json.loads(seen.answer))


_REMEMBER_ANSWER = db.update(SeenNonce).where(SeenNonce.nonce == db.bindparam("seen_nonce")).values(
    answer=db.bindparam("answer"))


def remember_answer(nonce: str, answer: dict) -> None:
    """Stored with the change, in its transaction: the answer a re-send will get."""
    db.session.connection().execute(_REMEMBER_ANSWER, {
        "seen_nonce": nonce, "answer": json.dumps(answer, ensure_ascii=False, separators=(",", ":"))})


def purge_expired_nonces(now: datetime | None = None) -> int:
    result = db.session.execute(db.delete(SeenNonce).where(SeenNonce.expires_at < (now or utcnow())))
    return result.rowcount or 0


def _optional(body: dict, name: str, *, max_len: int = 64) -> str | None:
    """An optional text field; sent empty, it is absent."""
    return p.text(body, name, required=False, max_len=max_len) or None


def _ignored(outcome: Outcome, test: bool) -> Outcome:
    outcome.message = ("success (debug call; production data kept)" if test
                       else "success (older than stored data; ignored)")
    return outcome


def note_unknown_instance(outcome: Outcome, body: dict) -> Outcome:
    """A production kit call whose instanceId matches no instance (no newInstance received, or an
    order of another listing): stored as sent, but the sync log says so, the envelope counts it, and
    admission refuses the tenant's sign-ins until the instance arrives (`instance_unknown`)."""
    if outcome.instance_id and not p.test_flag(body) and db.session.get(Instance, outcome.instance_id) is None:
        outcome.unknown_instance = True
        outcome.audit_note = f"instanceId {outcome.instance_id} matches no instance (no newInstance received)"
    return outcome


# --- kit: tenantSync -----------------------------------------------------------------------------


def apply_tenant_sync(body: dict, *, allow_insecure_idp: bool, allowed_networks=()) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    instance_id = _optional(body, "instanceId")
    order_id = _optional(body, "orderId")
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=instance_id)
    key = {"tenant_id": tenant_id}

    if flag == DELETE:
        tombstone = dict(key, tenant_code=_optional(body, "tenantCode") or "",
                         name=_optional(body, "name", max_len=255) or "", domain_name="",
                         test_flag=test, last_sync_ts=ts, deleted_at=utcnow())
        # One order unbinding leaves the tenant to the orders that still bind it: the guarded
        # write first touches only the version, and the rest happens under its row lock.
        if not apply_if_newer(Tenant, [tombstone], tuple(key), update=() if instance_id else
                              {"deleted_at": keep_first("deleted_at")}):
            return _ignored(outcome, test)
        if instance_id:
            db.session.execute(db.delete(TenantInstance).filter_by(tenant_id=tenant_id, instance_id=instance_id))
            remaining = db.session.scalar(db.select(db.func.count()).select_from(TenantInstance)
                                          .filter_by(tenant_id=tenant_id))
            if remaining:
                outcome.message = f"success (unbound from {instance_id}; {remaining} order(s) still bind the tenant)"
                return outcome
            db.session.execute(db.update(Tenant).filter_by(tenant_id=tenant_id, deleted_at=None)
                               .values(deleted_at=utcnow()))
        # A deleted tenant keeps no credentials: its client secrets go with it.
        db.session.execute(db.update(TenantApp).filter_by(tenant_id=tenant_id).values(client_secret_enc=None))
        revoke_access(tenant_id, None, "tenant_deleted")
        return outcome

    name = p.text(body, "name", max_len=255)
    domain = p.normalise_domain_name(p.text(body, "domainName", max_len=255), allow_insecure=allow_insecure_idp,
                                     allowed_networks=allowed_networks)
    tenant_code = p.text(body, "tenantCode", required=flag == ADD)
    row = dict(key, tenant_code=tenant_code or "", name=name, domain_name=domain, test_flag=test, last_sync_ts=ts)
    update = {"name": None, "domain_name": None}  # modify: only name and domainName
    if flag == ADD:
        update |= {"tenant_code": None, "deleted_at": set_null}
    elif tenant_code:  # a modify that names the code fills it in when we had none
        update["tenant_code"] = fill_if_blank("tenant_code")
    previous_domain, previous_code, code_holder = _stored_and_code_holder(tenant_id, tenant_code)
    if code_holder is not None and (flag == ADD or not previous_code):  # only when this call may set the code
        raise invalid(f"tenantCode {tenant_code!r} is already used by another live tenant ({code_holder}); "
                      "tenant codes are unique regardless of case")
    if not apply_if_newer(Tenant, [row], tuple(key), update=update):
        return _ignored(outcome, test)
    if previous_domain and previous_domain != domain:
        # Logins under way were started at the old centre: their codes must not go to the new one.
        centre_changed(tenant_id)
    if instance_id:
        insert_missing(TenantInstance, [dict(tenant_id=tenant_id, instance_id=instance_id, order_id=order_id)],
                       ("tenant_id", "instance_id"))
    return outcome


# Built once (building a statement costs more than running it); a NULL code matches nobody.
_STORED_AND_CODE_HOLDER = db.select(Tenant.tenant_id, Tenant.domain_name, Tenant.tenant_code).where(
    (Tenant.tenant_id == db.bindparam("tenant_id"))
    | ((db.func.lower(Tenant.tenant_code) == db.bindparam("code")) & (Tenant.tenant_code != db.literal_column("''"))
       & Tenant.deleted_at.is_(None) & (Tenant.tenant_id != db.bindparam("tenant_id"))))


def _stored_and_code_holder(tenant_id: str, tenant_code: str | None) -> tuple[str | None, str | None, str | None]:
    """The tenant's stored domainName and code, and the other live tenant that holds `tenant_code`
    (None: the code is free), in one query. People type the code at the login page, so two live
    tenants may not share it in any case (the unique index uq_kg_tenant_code_live backs this up
    against races; the `<> ''` term, a literal so that a prepared statement's generic plan can
    prove the index's predicate too, lets the query use it). A re-send for the same tenant is no
    conflict: repeats stay idempotent."""
    rows = db.session.connection().execute(_STORED_AND_CODE_HOLDER, {
        "tenant_id": tenant_id, "code": tenant_code.lower() if tenant_code else None}).all()
    stored = next((r for r in rows if r.tenant_id == tenant_id), None)
    holder = next((r.tenant_id for r in rows if r.tenant_id != tenant_id), None)
    return (stored.domain_name if stored else None, stored.tenant_code if stored else None, holder)


# --- kit: applicationSync ------------------------------------------------------------------------


def apply_application_sync(body: dict, *, private_key, secret_box) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    app_id = p.text(body, "appId")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    instance_id = _optional(body, "instanceId")
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=instance_id)
    key = ("tenant_id", "app_id")
    row = dict(tenant_id=tenant_id, app_id=app_id, instance_id=instance_id, test_flag=test, last_sync_ts=ts)

    if flag == DELETE:
        row |= dict(client_id=None, client_secret_enc=None, deleted_at=utcnow())
        if not apply_if_newer(TenantApp, [row], key, update={"client_secret_enc": None,
                                                             "deleted_at": keep_first("deleted_at")}):
            return _ignored(outcome, test)
        return outcome

    client_id = p.text(body, "clientId")
    ciphertext = p.text(body, "clientSecret", max_len=4096)
    if private_key is None:
        raise SyncError(ResultCode.CLIENT_SECRET_UNUSABLE,
                        "bridge has no RSA private key yet (operator: run flask keys generate)")
    try:
        secret, oaep = decrypt_client_secret(ciphertext, private_key)
    except DecryptError as exc:
        raise SyncError(ResultCode.CLIENT_SECRET_UNUSABLE, f"clientSecret cannot be decrypted: {exc}") from None
    log.info("client_secret_decrypted tenant=%s app=%s params=%s", tenant_id, app_id, oaep)
    row |= dict(client_id=client_id, client_secret_enc=secret_box.encrypt(secret), deleted_at=None)
    if not apply_if_newer(TenantApp, [row], key, update=("instance_id", "client_id", "client_secret_enc",
                                                         "deleted_at")):
        return _ignored(outcome, test)
    return outcome


# --- kit: authSync -------------------------------------------------------------------------------

_USER_TEXT_FIELDS = (  # (wire name, column, max length)
    ("name", "name", 64), ("orgCode", "org_code", 64), ("position", "position", 64),
    ("employeeCode", "employee_code", 64), ("mobile", "mobile", 32), ("email", "email", 128),
    ("workPlace", "work_place", 255), ("entryDate", "entry_date", 32),
)


def _user_profile(raw: dict, index: int) -> dict:
    """The columns one userList entry sets. V1 nests some fields under `extension`."""
    merged = {**(raw.get("extension") if isinstance(raw.get("extension"), dict) else {}), **raw}
    where = f"userList[{index}]"
    profile = {}
    try:
        for wire, column, max_len in _USER_TEXT_FIELDS:
            if wire in merged:
                profile[column] = _optional(merged, wire, max_len=max_len)
        if merged.get("employeeType") not in (None, ""):
            profile["employee_type"] = p.small_int(merged, "employeeType", tuple(range(0, 100)))
        if merged.get("role") not in (None, ""):
            role = p.text(merged, "role", max_len=32).lower()
            profile["role"] = "admin" if role == "admin" else "user"
        if merged.get("enable") not in (None, ""):
            profile["enabled"] = p.boolean_text(merged["enable"], "enable")
    except SyncError as exc:
        raise invalid(f"{where}.{exc.message}") from None
    return profile


def apply_auth_sync(body: dict, *, max_users: int) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    app_id = p.text(body, "appId")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY, CANCEL))
    sync_time = p.sync_time(body, "currentSyncTime" if body.get("currentSyncTime") else "timeStamp")
    p.sync_time(body, "timeStamp")
    instance_id = _optional(body, "instanceId")
    test = p.test_flag(body)
    _, user_list = p.json_list(body, "userList")
    if len(user_list) > max_users:
        raise invalid(f"userList has {len(user_list)} users; at most {max_users} per call")

    changes: dict[str, dict] = {}  # userName -> columns; a name repeated in the batch: last wins
    for i, raw in enumerate(user_list):
        try:
            user_name = p.text(raw, "userName")
        except SyncError as exc:
            raise invalid(f"userList[{i}].{exc.message}") from None
        profile = _user_profile(raw, i) if flag in (ADD, MODIFY) else {}
        if flag in (ADD, MODIFY):
            state = dict(authorized=True, deleted_at=None)
        elif flag == CANCEL:
            state = dict(authorized=False)
        else:
            state = dict(authorized=False, deleted_at=utcnow())
        changes[user_name] = {**profile, **state}

    # A multi-row INSERT needs the same columns in every row: absent profile fields are NULL for a
    # new user and kept for a stored one, so users are written in groups of the same shape.
    blank = {column: None for _, column, _ in _USER_TEXT_FIELDS} | {"employee_type": None, "role": "user",
                                                                     "enabled": True, "deleted_at": None}
    shapes: dict[tuple, list[dict]] = {}
    for name in sorted(changes):
        shapes.setdefault(tuple(changes[name]), []).append(
            {**blank, **changes[name], "tenant_id": tenant_id, "user_name": name, "app_id": app_id,
             "test_flag": test, "last_sync_ts": sync_time})
    written: list[str] = []
    for columns, rows in shapes.items():
        update = {c: None for c in (*columns, "app_id")}
        if flag == DELETE:
            update["deleted_at"] = keep_first("deleted_at")
        written += [name for _, name in apply_if_newer(TenantUser, rows, ("tenant_id", "user_name"), update)]
    if flag in (DELETE, CANCEL) or any(changes[n].get("enabled") is False for n in written):
        revoke_access(tenant_id, sorted(written), {DELETE: "user_deleted", CANCEL: "user_revoked"}.get(
            flag, "user_disabled"))
    kept = len(changes) - len(written)
    message = f"success ({len(changes)} user(s)"
    message += f"; {kept} {'kept: production data' if test else 'older than stored data, ignored'})" if kept else ")"
    return Outcome(message=message, tenant_id=tenant_id, instance_id=instance_id)


# --- kit: departments ----------------------------------------------------------------------------


def apply_single_org_sync(body: dict) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    org_code = p.text(body, "orgCode")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=_optional(body, "instanceId"))
    key = ("tenant_id", "org_code")
    if flag == DELETE:
        row = dict(tenant_id=tenant_id, org_code=org_code, org_name=_optional(body, "orgName",
                   max_len=128) or "", parent_code=None, test_flag=test, last_sync_ts=ts, deleted_at=utcnow())
        update = {"deleted_at": keep_first("deleted_at")}
    else:
        row = dict(tenant_id=tenant_id, org_code=org_code, org_name=p.text(body, "orgName", max_len=128),
                   parent_code=_optional(body, "parentCode"),
                   test_flag=test, last_sync_ts=ts, deleted_at=None)
        update = ("org_name", "parent_code", "deleted_at")
    if not apply_if_newer(Department, [row], key, update):
        return _ignored(outcome, test)
    return outcome


def apply_all_org_sync(body: dict) -> Outcome:
    """The full department list replaces the tenant's: upsert what is listed, delete the rest.
    The list itself has a version: an older full list changes nothing."""
    tenant_id = p.text(body, "tenantId")
    ts = p.sync_time(body, "timeStamp")
    test = p.test_flag(body)
    instance_id = _optional(body, "instanceId")
    field_name, items = p.json_list(body, "orgInfoList", "orgInfo")
    listed: dict[str, dict] = {}
    for i, item in enumerate(items):
        try:
            code = p.text(item, "orgCode")
            name_key = next((k for k in ("orgName", "OrgName", "name") if item.get(k) not in (None, "")), "orgName")
            name = p.text(item, name_key, max_len=128)
            parent = _optional(item, "parentCode")
        except SyncError as exc:
            raise invalid(f"{field_name}[{i}].{exc.message}") from None
        listed[code] = dict(tenant_id=tenant_id, org_code=code, org_name=name, parent_code=parent, test_flag=test,
                            last_sync_ts=ts, deleted_at=None)
    outcome = Outcome(tenant_id=tenant_id, instance_id=instance_id)
    if not apply_if_newer(DepartmentList, [dict(tenant_id=tenant_id, test_flag=test, last_sync_ts=ts)],
                          ("tenant_id",), ()):
        return _ignored(outcome, test)
    codes = sorted(listed)
    written = apply_if_newer(Department, [listed[c] for c in codes], ("tenant_id", "org_code"),
                             ("org_name", "parent_code", "deleted_at"))
    removed = tombstone_unlisted(Department, tenant_id=tenant_id, key_column="org_code", listed=codes, ts=ts,
                                 test=test)
    kept = len(codes) - len(written)
    outcome.message = f"success ({len(listed)} department(s), {removed} removed"
    outcome.message += f", {kept} newer kept)" if kept else ")"
    return outcome


# --- what the operator records ------------------------------------------------------------------

_DOMAIN_ID = re.compile(r"[!-~]{1,64}")  # printable ASCII, no spaces: what a centre's domainId looks like


class RecordError(ValueError):
    """The operator's value cannot be recorded; the message says why."""


def record_domain_id(tenant: Tenant, domain_id: str | None) -> None:
    """Record (or, with None, forget) the enterprise's domainId that the tenant's centre reports in
    userinfo `tenant`. Two live tenants never share one: it names a single enterprise."""
    if domain_id is not None:
        if not _DOMAIN_ID.fullmatch(domain_id):
            raise RecordError("a domainId is 1 to 64 printable characters without spaces")
        other = db.session.scalar(db.select(Tenant.tenant_id).where(
            Tenant.domain_id == domain_id, Tenant.tenant_id != tenant.tenant_id, Tenant.deleted_at.is_(None)).limit(1))
        if other:
            raise RecordError(f"domainId {domain_id!r} is already recorded for tenant {other}")
    tenant.domain_id = domain_id
    log.info("tenant_domain_id_recorded tenant=%s domain_id=%r", tenant.tenant_id, domain_id)


# --- basic (general SaaS) interfaces ------------------------------------------------------------
#
# A debug call (testFlag 1) is checked like any other and answered as it would be, but changes no
# production state (DESIGN invariant 11): the marketplace replays its saved cases in any order,
# forever, so a saved releaseInstance runs before the saved refreshInstance on the same instance.


def _suspension_changed(instance: Instance, reason: str) -> None:
    """The instance's state changed: sso re-checks the sessions of the tenants it binds."""
    db.session.flush()
    tenant_ids = db.session.execute(
        db.select(TenantInstance.tenant_id).filter_by(instance_id=instance.instance_id)).scalars().all()
    for tenant_id in tenant_ids:
        revoke_access(tenant_id, None, reason)


def _instance_or_missing(instance_id: str) -> Instance:
    instance = db.session.execute(
        db.select(Instance).filter_by(instance_id=instance_id).with_for_update()
    ).scalar_one_or_none()
    if instance is None:
        raise SyncError(ResultCode.INSTANCE_NOT_FOUND, f"instance {instance_id} does not exist")
    return instance


def _live_instance(instance_id: str) -> Instance:
    instance = _instance_or_missing(instance_id)
    if instance.status == InstanceStatus.RELEASED:
        raise SyncError(ResultCode.INSTANCE_NOT_FOUND, f"instance {instance_id} was released")
    return instance


def _debug(instance_id: str, what: str) -> Outcome:
    return Outcome(message=f"success (debug call: {what}; nothing changed)", instance_id=instance_id)


def _linear_value(body: dict) -> int | None:
    """productInfo.linearValue (V2) or a top-level linearValue / amount: the purchased quantity."""
    info = body.get("productInfo") if isinstance(body.get("productInfo"), dict) else {}
    for source, name in ((info, "linearValue"), (body, "linearValue"), (body, "amount")):
        if source.get(name) not in (None, ""):
            return p.quantity(source, name)
    return None


def new_instance(body: dict) -> Outcome:
    order_id = p.text(body, "orderId")
    order_line_id = p.text(body, "orderLineId")
    business_id = p.text(body, "businessId")
    test = p.test_flag(body)
    seats = _linear_value(body)
    values = dict(instance_id=business_id, order_id=order_id, order_line_id=order_line_id,
                  product_id=p.text(body, "productId", required=False),
                  sku_code=p.text(body, "skuCode", required=False), seats=seats,
                  status=InstanceStatus.ACTIVE, test_flag=test, created_at=utcnow(), updated_at=utcnow())
    # Debug instances are kept (flagged) so the saved case gets the same instanceId every time;
    # they never collide with production rows, which win every key.
    insert_missing(Instance, [values], ("instance_id",))
    instance = db.session.execute(
        db.select(Instance).filter_by(order_id=order_id, order_line_id=order_line_id)
    ).scalar_one_or_none()
    if instance is None:
        if test:
            return Outcome(extra={"instanceId": business_id}, instance_id=business_id,
                           message="success (debug call; businessId belongs to another order line)")
        raise invalid(f"businessId {business_id} is already the instance of another order line")
    return Outcome(extra={"instanceId": instance.instance_id}, instance_id=instance.instance_id)


def query_instance(body: dict, *, login_url_for) -> Outcome:
    requested = [i.strip() for i in p.text(body, "instanceId", max_len=64 * 100 + 99).split(",") if i.strip()]
    if not requested or len(requested) > 100 or any(len(i) > 64 for i in requested):
        raise invalid("instanceId must list 1 to 100 instance IDs of at most 64 characters")
    found = {i.instance_id: i for i in db.session.execute(
        db.select(Instance).where(Instance.instance_id.in_(requested))).scalars()}
    test = p.test_flag(body)
    info = [{"instanceId": iid, "appInfo": {"frontEndUrl": login_url_for(iid),
                                            "memo": f"status: {found[iid].status}" if iid in found else "debug"}}
            for iid in requested if iid in found or test]
    if not info:
        raise SyncError(ResultCode.INSTANCE_NOT_FOUND, "none of the instances exists")
    return Outcome(extra={"info": info}, instance_id=requested[0])


REFRESH_SCENES = ("TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE")


def refresh_instance(body: dict) -> Outcome:
    instance_id = p.text(body, "instanceId")
    expire = p.expire_time(body, "expireTime")
    scene = p.choice(body, "scene", REFRESH_SCENES, required=False)
    order_id = _optional(body, "orderId")
    _optional(body, "orderLineId")
    product_id = _optional(body, "productId")
    seats = _linear_value(body)
    if p.test_flag(body):
        return _debug(instance_id, scene or "refresh")
    instance = _live_instance(instance_id)
    instance.expire_time = expire
    instance.last_order_id = order_id or instance.last_order_id
    instance.product_id = product_id or instance.product_id  # the period type changed
    if seats is not None:
        instance.seats = seats
    elif scene == "RENEWAL_CHANGE" and instance.seats_requested is not None:
        instance.seats, instance.seats_requested = instance.seats_requested, None
    _suspension_changed(instance, "instance_expired")
    return Outcome(message=f"success ({scene or 'refresh'}: expires {instance.expire_time:%Y-%m-%d %H:%M:%S} UTC)",
                   instance_id=instance.instance_id)


def update_instance_status(body: dict) -> Outcome:
    instance_id = p.text(body, "instanceId")
    status = p.choice(body, "status", ("FREEZE", "UNFREEZE"))
    if p.test_flag(body):
        return _debug(instance_id, status)
    instance = _live_instance(instance_id)
    instance.status = InstanceStatus.FROZEN if status == "FREEZE" else InstanceStatus.ACTIVE
    _suspension_changed(instance, "instance_frozen")
    return Outcome(instance_id=instance.instance_id)


def release_instance(body: dict) -> Outcome:
    instance_id = p.text(body, "instanceId")
    order_id = _optional(body, "orderId")
    _optional(body, "orderLineId")
    if p.test_flag(body):
        return _debug(instance_id, "release")
    instance = _instance_or_missing(instance_id)
    if instance.status != InstanceStatus.RELEASED:
        instance.status, instance.released_at = InstanceStatus.RELEASED, utcnow()
        instance.last_order_id = order_id or instance.last_order_id
        _suspension_changed(instance, "instance_released")
    return Outcome(instance_id=instance.instance_id)


def upgrade_instance(body: dict) -> Outcome:
    """V2: instanceId and the new order; product fields (V1) are taken when present."""
    instance_id = p.text(body, "instanceId")
    order_id = p.text(body, "orderId")
    _optional(body, "orderLineId")
    product_id = _optional(body, "productId")
    sku_code = _optional(body, "skuCode")
    seats = _linear_value(body)
    if p.test_flag(body):
        return _debug(instance_id, "upgrade")
    instance = _live_instance(instance_id)
    instance.last_order_id = order_id
    instance.product_id = product_id or instance.product_id
    instance.sku_code = sku_code or instance.sku_code
    if seats is not None:
        instance.seats = seats
    return Outcome(instance_id=instance.instance_id)


def change_instance_check(body: dict, *, seats_count_users: bool) -> Outcome:
    """续费变更校验: may the buyer change spec or quantity at renewal? The vendor's decision: allowed,
    unless quantities count users and the new quantity is below the users already authorised."""
    instance_id = p.text(body, "instanceId")
    info = p.json_object(body, "productInfo")
    p.text(info, "productId")
    sku_code = p.text(info, "skuCode")
    p.text(info, "productName")
    seats = p.quantity(info, "linearValue") if info.get("linearValue") not in (None, "") else None
    if p.test_flag(body):
        return _debug(instance_id, "change check")
    instance = _live_instance(instance_id)
    outcome = Outcome(instance_id=instance_id, message=f"success (change to {sku_code}"
                      + (f", quantity {seats})" if seats is not None else ")"))
    if seats_count_users and seats is not None:
        in_use = authorised_users_of_instance(instance_id)
        if seats < in_use:
            raise SyncError(ResultCode.INVALID_PARAMETER,
                            f"quantity {seats} is below the {in_use} users already authorised; "
                            f"revoke users before reducing seats")
        instance.seats_requested = seats
    return outcome


def authorised_users_of_instance(instance_id: str) -> int:
    tenant_ids = db.select(TenantInstance.tenant_id).filter_by(instance_id=instance_id)
    return db.session.scalar(db.select(db.func.count()).select_from(TenantUser).where(
        TenantUser.tenant_id.in_(tenant_ids), TenantUser.authorized.is_(True), TenantUser.enabled.is_(True),
        TenantUser.deleted_at.is_(None), TenantUser.test_flag.is_(False))) or 0


# The kit's sync interfaces (spec §5), at {PRODUCE_PATH}/produceAPI/v2/<interface>.
KIT_INTERFACES = ("tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync")

BASIC_ACTIVITIES = {
    "newInstance": new_instance,
    "queryInstance": query_instance,
    "refreshInstance": refresh_instance,
    "updateInstanceStatus": update_instance_status,
    "releaseInstance": release_instance,
    "upgradeInstance": upgrade_instance,
    "changeInstanceCheck": change_instance_check,
}
