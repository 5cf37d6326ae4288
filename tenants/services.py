"""Applying KooGallery's calls to the database. No `request` here: each function takes the parsed
body, changes rows inside the caller's transaction, and returns an Outcome or raises SyncError.

Common rules (spec §2, §5, §7): repeats succeed without duplicates; a delete of something unknown
succeeds (and leaves a tombstone so an older, late "add" cannot resurrect it); an update whose
KooGallery time is older than what is stored is acknowledged and ignored."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from extensions import db
from keys.rsa import DecryptError, decrypt_client_secret
from tenants import parsing as p
from tenants.errors import ResultCode, SyncError, invalid
from tenants.models import (
    Department,
    Instance,
    InstanceStatus,
    SeenNonce,
    Tenant,
    TenantApp,
    TenantInstance,
    TenantUser,
    utcnow,
)
from tenants.signals import revoke_access
from tenants.upsert import create_or_lock, insert_missing, lock_rows, upsert_if_newer

log = logging.getLogger(__name__)

ADD, DELETE, MODIFY, CANCEL = 1, 0, 2, 3


@dataclass
class Outcome:
    message: str = "success"
    extra: dict = field(default_factory=dict)
    tenant_id: str | None = None
    instance_id: str | None = None


# --- replay guard --------------------------------------------------------------------------------


def record_nonce(nonce: str, ttl_seconds: int) -> None:
    """First statement of every verified call's transaction. A concurrent duplicate waits on the
    primary key and then inserts nothing; if the first call rolled back, the retry may use it."""
    row = {"nonce": nonce, "expires_at": utcnow() + timedelta(seconds=ttl_seconds)}
    if not insert_missing(SeenNonce, [row], ("nonce",)):
        raise SyncError(ResultCode.AUTH_FAILED, "nonce was already used (replayed request)")


def purge_expired_nonces(now: datetime | None = None) -> int:
    result = db.session.execute(db.delete(SeenNonce).where(SeenNonce.expires_at < (now or utcnow())))
    return result.rowcount or 0


# --- kit: tenantSync -----------------------------------------------------------------------------


def apply_tenant_sync(body: dict, *, allow_insecure_idp: bool) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    instance_id = p.text(body, "instanceId", required=False, allow_empty=True) or None
    order_id = p.text(body, "orderId", required=False, allow_empty=True) or None
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=instance_id)

    if flag == DELETE:
        values = dict(tenant_code=p.text(body, "tenantCode", required=False) or "",
                      name=p.text(body, "name", required=False, max_len=255) or "",
                      domain_name="", test_flag=test, last_sync_ts=ts, deleted_at=utcnow())
        tenant, created = create_or_lock(Tenant, {"tenant_id": tenant_id}, values)
        if created or tenant.last_sync_ts > ts:
            outcome.message = "success (nothing to delete)" if created else "success (older than stored data; ignored)"
            return outcome
        if instance_id:
            # One order unbinding: the tenant stays while another order still binds it.
            db.session.execute(db.delete(TenantInstance).filter_by(tenant_id=tenant_id, instance_id=instance_id))
            remaining = db.session.scalar(db.select(db.func.count()).select_from(TenantInstance)
                                          .filter_by(tenant_id=tenant_id))
            if remaining:
                tenant.last_sync_ts = ts
                outcome.message = f"success (unbound from {instance_id}; {remaining} order(s) still bind the tenant)"
                return outcome
        tenant.deleted_at = tenant.deleted_at or utcnow()
        tenant.last_sync_ts = ts
        revoke_access(tenant_id, None, "tenant_deleted")
        return outcome

    name = p.text(body, "name", max_len=255)
    domain = p.normalise_domain_name(p.text(body, "domainName", max_len=255), allow_insecure=allow_insecure_idp)
    tenant_code = p.text(body, "tenantCode", required=flag == ADD)
    values = dict(tenant_code=tenant_code or "", name=name, domain_name=domain, test_flag=test, last_sync_ts=ts)
    update = dict(name=name, domain_name=domain, last_sync_ts=ts)  # modify: only name and domainName
    if flag == ADD:
        update |= dict(tenant_code=tenant_code, test_flag=test, deleted_at=None)
    elif tenant_code:  # a modify that names the code fills it in when we had none
        update["tenant_code"] = lambda new, old: db.func.coalesce(db.func.nullif(old.tenant_code, ""), new.tenant_code)
    if not upsert_if_newer(Tenant, {"tenant_id": tenant_id}, values, update, version="last_sync_ts"):
        outcome.message = "success (older than stored data; ignored)"
        return outcome
    if instance_id:
        insert_missing(TenantInstance, [dict(tenant_id=tenant_id, instance_id=instance_id, order_id=order_id,
                                             created_at=utcnow())], ("tenant_id", "instance_id"))
    return outcome


# --- kit: applicationSync ------------------------------------------------------------------------


def apply_application_sync(body: dict, *, private_key, secret_box) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    app_id = p.text(body, "appId")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    instance_id = p.text(body, "instanceId", required=False, allow_empty=True) or None
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=instance_id)
    key = {"tenant_id": tenant_id, "app_id": app_id}

    if flag == DELETE:
        values = dict(instance_id=instance_id, test_flag=test, last_sync_ts=ts, deleted_at=utcnow())
        app, created = create_or_lock(TenantApp, key, values)
        if not created and app.last_sync_ts <= ts:
            app.client_secret_enc, app.deleted_at, app.last_sync_ts = None, app.deleted_at or utcnow(), ts
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
    values = dict(instance_id=instance_id, client_id=client_id, client_secret_enc=secret_box.encrypt(secret),
                  test_flag=test, last_sync_ts=ts, deleted_at=None)
    app, created = create_or_lock(TenantApp, key, values)
    if not created:
        if app.last_sync_ts > ts:
            outcome.message = "success (older than stored data; ignored)"
            return outcome
        for name, value in values.items():
            setattr(app, name, value)
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
                profile[column] = p.text(merged, wire, required=False, max_len=max_len) or None
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
    instance_id = p.text(body, "instanceId", required=False, allow_empty=True) or None
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
        changes[user_name] = {**profile, **state, "app_id": app_id, "test_flag": test, "last_sync_time": sync_time}

    names = sorted(changes)
    # A multi-row INSERT needs the same columns in every row: absent profile fields are NULL.
    blank = {column: None for _, column, _ in _USER_TEXT_FIELDS} | {"employee_type": None, "role": "user",
                                                                     "enabled": True, "deleted_at": None}
    new_rows = [{**blank, "tenant_id": tenant_id, "user_name": n, "created_at": utcnow(), "updated_at": utcnow(),
                 **changes[n]} for n in names]
    inserted = {name for _, name in insert_missing(TenantUser, new_rows, ("tenant_id", "user_name"))}
    stale = 0
    lost_access = []
    for user in lock_rows(TenantUser, "user_name", [n for n in names if n not in inserted], tenant_id=tenant_id):
        if user.last_sync_time > sync_time:
            stale += 1
            continue
        for column, value in changes[user.user_name].items():
            if column == "deleted_at" and value is not None and user.deleted_at is not None:
                continue  # keep the first deletion time
            setattr(user, column, value)
        if not user.may_sign_in:
            lost_access.append(user.user_name)
    if lost_access:
        reason = {DELETE: "user_deleted", CANCEL: "user_revoked"}.get(flag, "user_disabled")
        revoke_access(tenant_id, lost_access, reason)
    message = f"success ({len(names)} user(s)"
    message += f"; {stale} older than stored data, ignored)" if stale else ")"
    return Outcome(message=message, tenant_id=tenant_id, instance_id=instance_id)


# --- kit: departments ----------------------------------------------------------------------------


def apply_single_org_sync(body: dict) -> Outcome:
    tenant_id = p.text(body, "tenantId")
    org_code = p.text(body, "orgCode")
    flag = p.small_int(body, "flag", (DELETE, ADD, MODIFY))
    ts = p.sync_time(body, "timeStamp")
    test = p.test_flag(body)
    outcome = Outcome(tenant_id=tenant_id, instance_id=p.text(body, "instanceId", required=False, allow_empty=True) or None)
    key = {"tenant_id": tenant_id, "org_code": org_code}
    if flag == DELETE:
        values = dict(org_name=p.text(body, "orgName", required=False, max_len=128) or "", test_flag=test,
                      last_sync_ts=ts, deleted_at=utcnow())
        org, created = create_or_lock(Department, key, values)
        if not created and org.last_sync_ts <= ts:
            org.deleted_at, org.last_sync_ts = org.deleted_at or utcnow(), ts
        return outcome
    values = dict(org_name=p.text(body, "orgName", max_len=128),
                  parent_code=p.text(body, "parentCode", required=False, allow_empty=True) or None,
                  test_flag=test, last_sync_ts=ts, deleted_at=None)
    org, created = create_or_lock(Department, key, values)
    if not created:
        if org.last_sync_ts > ts:
            outcome.message = "success (older than stored data; ignored)"
            return outcome
        for name, value in values.items():
            setattr(org, name, value)
    return outcome


def apply_all_org_sync(body: dict) -> Outcome:
    """The full department list replaces the tenant's: upsert what is listed, delete the rest."""
    tenant_id = p.text(body, "tenantId")
    ts = p.sync_time(body, "timeStamp")
    test = p.test_flag(body)
    field_name, items = p.json_list(body, "orgInfoList", "orgInfo")
    listed: dict[str, dict] = {}
    for i, item in enumerate(items):
        try:
            code = p.text(item, "orgCode")
            name_key = next((k for k in ("orgName", "OrgName", "name") if item.get(k) not in (None, "")), "orgName")
            name = p.text(item, name_key, max_len=128)
            parent = p.text(item, "parentCode", required=False, allow_empty=True) or None
        except SyncError as exc:
            raise invalid(f"{field_name}[{i}].{exc.message}") from None
        listed[code] = dict(org_name=name, parent_code=parent, test_flag=test, last_sync_ts=ts, deleted_at=None)

    # Lock every department of the tenant in code order, then decide row by row.
    codes = sorted(listed)
    inserted = {code for _, code in insert_missing(
        Department, [{"tenant_id": tenant_id, "org_code": c, "created_at": utcnow(), "updated_at": utcnow(),
                      **listed[c]} for c in codes], ("tenant_id", "org_code"))}
    existing = db.session.execute(
        db.select(Department).filter_by(tenant_id=tenant_id).order_by(Department.org_code).with_for_update()
    ).scalars()
    removed = stale = 0
    for org in existing:
        if org.org_code in inserted or org.last_sync_ts > ts:
            stale += org.org_code not in inserted
            continue
        if org.org_code in listed:
            for name, value in listed[org.org_code].items():
                setattr(org, name, value)
        elif org.deleted_at is None:
            org.deleted_at, org.last_sync_ts = utcnow(), ts
            removed += 1
    message = f"success ({len(listed)} department(s), {removed} removed"
    message += f", {stale} newer kept)" if stale else ")"
    return Outcome(message=message, tenant_id=tenant_id,
                   instance_id=p.text(body, "instanceId", required=False, allow_empty=True) or None)


# --- basic (general SaaS) interfaces ------------------------------------------------------------


def tenant_login_block(tenant: Tenant | None) -> str | None:
    """Why nobody of this tenant may sign in now, or None. The tenant's orders admit logins when
    at least one of them is active and unexpired, or has not been reported by the basic
    interfaces yet; a tenant bound by no order (the seller's test credential) is admitted."""
    if tenant is None:
        return "unknown_tenant"
    if tenant.deleted_at is not None:
        return "tenant_deleted"
    # One round trip: this runs on every signed-in request.
    orders = db.session.execute(
        db.select(TenantInstance.instance_id, Instance)
        .outerjoin(Instance, Instance.instance_id == TenantInstance.instance_id)
        .where(TenantInstance.tenant_id == tenant.tenant_id)).all()
    if not orders or any(instance is None or instance.admits_logins() for _, instance in orders):
        return None
    return "instance_suspended"


def _revoke_if_suspended(instance: Instance, reason: str) -> None:
    db.session.flush()
    tenant_ids = db.session.execute(
        db.select(TenantInstance.tenant_id).filter_by(instance_id=instance.instance_id)).scalars().all()
    for tenant_id in tenant_ids:
        if tenant_login_block(db.session.get(Tenant, tenant_id)) is not None:
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


def new_instance(body: dict) -> Outcome:
    order_id = p.text(body, "orderId")
    order_line_id = p.text(body, "orderLineId")
    business_id = p.text(body, "businessId")
    test = p.test_flag(body)
    values = dict(instance_id=business_id, order_id=order_id, order_line_id=order_line_id,
                  product_id=p.text(body, "productId", required=False),
                  sku_code=p.text(body, "skuCode", required=False),
                  status=InstanceStatus.ACTIVE, test_flag=test, created_at=utcnow(), updated_at=utcnow())
    insert_missing(Instance, [values], ("instance_id",))
    instance = db.session.execute(
        db.select(Instance).filter_by(order_id=order_id, order_line_id=order_line_id)
    ).scalar_one_or_none()
    if instance is None:
        raise invalid(f"businessId {business_id} is already the instance of another order line")
    return Outcome(extra={"instanceId": instance.instance_id}, instance_id=instance.instance_id)


def query_instance(body: dict, *, login_url_for) -> Outcome:
    requested = [i.strip() for i in p.text(body, "instanceId", max_len=64 * 100 + 99).split(",") if i.strip()]
    if not requested or len(requested) > 100:
        raise invalid("instanceId must list 1 to 100 instance IDs")
    found = {i.instance_id: i for i in db.session.execute(
        db.select(Instance).where(Instance.instance_id.in_(requested))).scalars()}
    info = [{"instanceId": iid, "appInfo": {"frontEndUrl": login_url_for(iid),
                                            "memo": f"status: {found[iid].status}"}}
            for iid in requested if iid in found]
    if not info:
        raise SyncError(ResultCode.INSTANCE_NOT_FOUND, "none of the instances exists")
    return Outcome(extra={"info": info}, instance_id=requested[0])


def refresh_instance(body: dict) -> Outcome:
    instance = _live_instance(p.text(body, "instanceId"))
    instance.expire_time = p.expire_time(body, "expireTime")
    instance.last_order_id = p.text(body, "orderId", required=False) or instance.last_order_id
    scene = p.text(body, "scene", required=False)
    _revoke_if_suspended(instance, "instance_expired")
    return Outcome(message=f"success ({scene or 'refresh'}: expires {instance.expire_time:%Y-%m-%d %H:%M:%S} UTC)",
                   instance_id=instance.instance_id)


def update_instance_status(body: dict) -> Outcome:
    status = p.text(body, "status", max_len=16).upper()
    if status not in ("FREEZE", "UNFREEZE"):
        raise invalid("status must be FREEZE or UNFREEZE")
    instance = _live_instance(p.text(body, "instanceId"))
    instance.status = InstanceStatus.FROZEN if status == "FREEZE" else InstanceStatus.ACTIVE
    _revoke_if_suspended(instance, "instance_frozen")
    return Outcome(instance_id=instance.instance_id)


def release_instance(body: dict) -> Outcome:
    instance = _instance_or_missing(p.text(body, "instanceId"))
    if instance.status != InstanceStatus.RELEASED:
        instance.status, instance.released_at = InstanceStatus.RELEASED, utcnow()
        instance.last_order_id = p.text(body, "orderId", required=False) or instance.last_order_id
        _revoke_if_suspended(instance, "instance_released")
    return Outcome(instance_id=instance.instance_id)


def upgrade_instance(body: dict) -> Outcome:
    instance = _live_instance(p.text(body, "instanceId"))
    instance.last_order_id = p.text(body, "orderId")
    instance.product_id = p.text(body, "productId", required=False) or instance.product_id
    instance.sku_code = p.text(body, "skuCode", required=False) or instance.sku_code
    return Outcome(instance_id=instance.instance_id)


BASIC_ACTIVITIES = {
    "newInstance": new_instance,
    "queryInstance": query_instance,
    "refreshInstance": refresh_instance,
    "updateInstanceStatus": update_instance_status,
    "releaseInstance": release_instance,
    "upgradeInstance": upgrade_instance,
}
