"""What KooGallery told us, as it told us (spec §10).

There are no foreign keys between the sync tables on purpose: KooGallery's calls are asynchronous
and may arrive in any order (applicationSync or authSync before tenantSync), and each must be
stored when it arrives. Rows are never hard-deleted by a sync: a delete leaves a tombstone
(`deleted_at`) with its sync time, so a late, older "add" cannot bring the row back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from extensions import db
from keys.datakey import register_encrypted_column


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Tenant(Timestamped, db.Model):
    __tablename__ = "kg_tenant"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_code: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # Normalised base URL of the tenant's authentication centre (https://host[/path], no trailing /).
    domain_name: Mapped[str] = mapped_column(String(255))
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    # KooGallery's own timeStamp (yyyyMMddHHmmssSSS, UTC+8) of the newest sync applied.
    last_sync_ts: Mapped[str] = mapped_column(String(17))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The enterprise's domainId at its authentication centre (what userinfo `tenant` reports), as the
    # operator recorded it (`flask tenants set-domain-id`); no sync call carries or changes it.
    domain_id: Mapped[str | None] = mapped_column(String(64))

    # People type the code at the login page: two live tenants may not share it in any case.
    # Lookups by code (the login page, tenantSync's check that a code is free) read all tenants, any
    # state: they need an index of their own, beside the partial unique one.
    __table_args__ = (Index("uq_kg_tenant_code_live", db.func.lower(tenant_code), unique=True,
                            postgresql_where=db.text("tenant_code <> '' AND deleted_at IS NULL"),
                            sqlite_where=db.text("tenant_code <> '' AND deleted_at IS NULL")),
                      Index("ix_kg_tenant_code_lower", db.func.lower(tenant_code)),
                      # The console lists live tenants, then deleted ones, each by code, along this.
                      Index("ix_kg_tenant_console_order", db.text("(deleted_at IS NOT NULL)"), tenant_code, tenant_id))


class TenantInstance(db.Model):
    """Which orders (instances) bound this tenant: one tenant may be bound by several orders."""

    __tablename__ = "kg_tenant_instance"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_kg_tenant_instance_instance", "instance_id"),)


class TenantApp(Timestamped, db.Model):
    """The tenant's OAuth client at its authentication centre (applicationSync)."""

    __tablename__ = "kg_app"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    # The decrypted clientSecret, re-encrypted with the bridge's data key (keys.datakey).
    client_secret_enc: Mapped[str | None] = mapped_column(Text)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sync_ts: Mapped[str] = mapped_column(String(17))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


register_encrypted_column(TenantApp.client_secret_enc)


class TenantUser(Timestamped, db.Model):
    """A user KooGallery authorised (or revoked) for the app; unique per (tenant, userName)."""

    __tablename__ = "kg_user"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    org_code: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[str | None] = mapped_column(String(64))
    employee_code: Mapped[str | None] = mapped_column(String(64))
    employee_type: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32), default="user")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # authSync flag 1/2 grant; flag 3 (cancel authorisation) and 0 (delete) revoke.
    authorized: Mapped[bool] = mapped_column(Boolean, default=True)
    mobile: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(128))
    work_place: Mapped[str | None] = mapped_column(String(255))
    entry_date: Mapped[str | None] = mapped_column(String(32))
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    # authSync currentSyncTime (or timeStamp) of the newest batch applied to this user.
    last_sync_ts: Mapped[str] = mapped_column(String(17))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Department(Timestamped, db.Model):
    __tablename__ = "kg_org"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_name: Mapped[str] = mapped_column(String(128))
    parent_code: Mapped[str | None] = mapped_column(String(64))
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sync_ts: Mapped[str] = mapped_column(String(17))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DepartmentList(db.Model):
    """The version of the tenant's full department list (allOrgSync): an older full list that
    arrives late must not re-add what a newer one left out."""

    __tablename__ = "kg_org_list"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sync_ts: Mapped[str] = mapped_column(String(17))


class InstanceStatus:
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    RELEASED = "RELEASED"


class Instance(Timestamped, db.Model):
    """An order line (basic interfaces, spec §7). The instanceId is the first call's businessId."""

    __tablename__ = "kg_instance"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    order_line_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    sku_code: Mapped[str | None] = mapped_column(String(64))
    # The order that last changed the instance (renewal, upgrade, release).
    last_order_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.ACTIVE)
    expire_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Purchased quantity (productInfo.linearValue); counts users when SEATS_FROM_LINEAR_VALUE is on.
    seats: Mapped[int | None] = mapped_column(Integer)
    # The quantity of the last allowed changeInstanceCheck, taken at the RENEWAL_CHANGE refresh.
    seats_requested: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        # newInstance is idempotent per order line: the same pair always maps to one instance.
        db.UniqueConstraint("order_id", "order_line_id", name="uq_kg_instance_order_line"),
    )


class SeenNonce(db.Model):
    """Nonces of verified sync calls, shared by every endpoint and every process (replay guard),
    with what was answered: an identical re-send (same interface and body) gets that answer again."""

    __tablename__ = "kg_nonce"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # SHA-256 of the interface and the body as sent.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The JSON answer of the first call (no secrets: answers never carry any).
    answer: Mapped[str | None] = mapped_column(Text)


class SyncCall(db.Model):
    """The audit of every sync call, accepted or refused."""

    __tablename__ = "kg_sync_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(64))
    nonce: Mapped[str | None] = mapped_column(String(128))
    result_code: Mapped[str] = mapped_column(String(6), index=True)
    result_msg: Mapped[str] = mapped_column(String(255))
    duration_ms: Mapped[int] = mapped_column(Integer)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    # Which key and payload form verified the signature, e.g. "primary/canonical"; helps debug §11 U2.
    signature_form: Mapped[str | None] = mapped_column(String(64))
    # A debug call (testFlag 1): the marketplace's seller-centre debugging and daily probes.
    debug: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str | None] = mapped_column(Text)

    # The console's sync log lists failures first, newest first, along this (admin/services.py).
    __table_args__ = (Index("ix_kg_sync_call_failed", "id", postgresql_where=db.text("result_code <> '000000'"),
                            sqlite_where=db.text("result_code <> '000000'")),)
