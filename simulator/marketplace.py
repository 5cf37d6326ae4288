"""What KooGallery does when the seller, a buyer or a buyer's admin acts. Each operation first
records the change in the simulator (KooGallery's own view changes whether or not the vendor
answers), then sends the signed calls a real KooGallery would send to the bridge."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

from simulator.directory import Directory, Member
from simulator.driver import ADD, CANCEL, DELETE, MODIFY, KooGalleryDriver, new_order_id
from simulator.seed import Tenant
from simulator.state import InstanceRecord, Store

_EXPIRE = re.compile(r"\d{14}(\d{3})?")  # the documented 14 digits, or the 17 of Huawei's example
REFRESH_SCENES = ("TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE")


class Marketplace:
    def __init__(self, directory: Directory, store: Store, driver: KooGalleryDriver,
                 report: Callable[[str], None] = lambda line: None):
        self.directory, self.store, self.driver, self.report = directory, store, driver, report

    def _instance_of(self, tenant: Tenant) -> str:
        """The tenant's order instance, which kit calls after the purchase carry ("" before)."""
        return next((i.instance_id for i in self.store.instances() if i.tenant_code == tenant.tenant_code), "")

    # --- how the marketplace misbehaves for a tenant (faults set with `sim fault`) --------------------

    @contextmanager
    def _calls_for(self, tenant_code: str):
        """The tenant's marketplace faults in force for the calls sent inside the block."""
        previous = self.driver.drops_answers
        self.driver.drops_answers = "drops_answers" in self.store.faults().get(tenant_code, {})
        try:
            yield
        finally:
            self.driver.drops_answers = previous

    def _binds_with_instance(self, tenant: Tenant) -> bool:
        return "binds_with_instance" in self.store.faults().get(tenant.tenant_code, {})

    # --- binding: seller credential flow, then a buyer order per tenant ------------------------------

    def sync_everything(self) -> list[InstanceRecord]:
        """The seller's credential (kit syncs without an instanceId), then each buyer's order and its
        link; a tenant with the binds_with_instance fault is bound the buyer's way instead (`bind`)."""
        d = self.directory
        by_buyer = [t for t in d.tenants if t.order is not None and self._binds_with_instance(t)]
        for tenant in d.tenants:
            if tenant not in by_buyer:
                with self._calls_for(tenant.tenant_code):
                    self._bind_kit(tenant, "")
        records = []
        for tenant in d.tenants:
            if tenant.order is None:
                continue
            if tenant in by_buyer:
                records.append(self.bind(tenant))
                continue
            with self._calls_for(tenant.tenant_code):
                record = self._place_order(tenant)
                self.driver.tenant_sync(tenant, d.domain_name(tenant), instance_id=record.instance_id,
                                        order_id=record.order_id)
            records.append(record)
            self.report(f"{tenant.tenant_code}: newInstance {record.order_id} -> instance {record.instance_id}; "
                        "tenantSync with it -> 000000")
        return records

    def bind(self, tenant: Tenant) -> InstanceRecord:
        """The buyer binds the purchased app to their organisation (买家中心): the order exists first,
        so tenantSync, applicationSync, allOrgSync and authSync all carry its instanceId and orderId."""
        if tenant.order is None:
            raise ValueError(f"tenant {tenant.tenant_code} has no order in the seed; nothing to bind")
        with self._calls_for(tenant.tenant_code):
            record = self._place_order(tenant)
            self._bind_kit(tenant, record.instance_id, order_id=record.order_id)
        self.report(f"{tenant.tenant_code}: newInstance {record.order_id} -> instance {record.instance_id}; "
                    "the binding's syncs carry it -> 000000")
        return record

    def _bind_kit(self, tenant: Tenant, instance_id: str, *, order_id: str = "") -> None:
        d = self.directory
        self.driver.tenant_sync(tenant, d.domain_name(tenant), instance_id=instance_id, order_id=order_id)
        self.driver.application_sync(tenant, instance_id=instance_id)
        self.driver.all_org_sync(tenant, instance_id=instance_id)
        granted = [u for u in d.users(tenant) if u.authorised]
        if granted:
            self.driver.auth_sync(tenant, granted, instance_id=instance_id)
        self.store.set_tenant_bound(tenant.tenant_code, True)
        self.report(f"{tenant.tenant_code}: tenantSync, applicationSync, allOrgSync ({len(tenant.departments)} "
                    f"departments), authSync ({len(granted)} users){' with ' + instance_id if instance_id else ''} "
                    "-> 000000")

    def _place_order(self, tenant: Tenant) -> InstanceRecord:
        """newInstance for the tenant's order; the bridge answers the instance of the order line."""
        order = tenant.order
        previous = next((i for i in self.store.instances() if i.order_id == order.order_id), None)
        # KooGallery sends a new businessId on every call; the first one became the instance id.
        business_id = str(uuid.uuid4()) if previous else order.business_id
        instance_id = self.driver.new_instance(order, business_id=business_id)["instanceId"]
        record = InstanceRecord(instance_id, tenant.tenant_code, order.order_id, order.order_line_id,
                                previous.status if previous else "ACTIVE", previous.expire_time if previous else None)
        self.store.record_instance(record)
        return record

    def delete_tenant(self, tenant: Tenant) -> None:
        """The buyer unbinds the app: tenantSync flag 0 for each order that bound it."""
        self.store.set_tenant_bound(tenant.tenant_code, False)
        instances = [i for i in self.store.instances() if i.tenant_code == tenant.tenant_code] or [None]
        with self._calls_for(tenant.tenant_code):
            for record in instances:
                self.driver.tenant_sync(tenant, self.directory.domain_name(tenant), flag=DELETE,
                                        instance_id=record.instance_id if record else "",
                                        order_id=record.order_id if record else "")
        self.report(f"{tenant.tenant_code}: tenantSync flag 0 -> 000000")

    # --- users: the enterprise admin grants, revokes, disables, deletes -------------------------------

    def grant(self, member: Member) -> None:
        self.store.change_user(member.tenant.tenant_code, member.user.user_name, authorised=True)
        user = replace(member.user, authorised=True)
        with self._calls_for(member.tenant.tenant_code):
            self.driver.auth_sync(member.tenant, [user], flag=ADD, instance_id=self._instance_of(member.tenant))
        self.report(f"{member.tenant.tenant_code}/{user.user_name}: authSync flag 1 (grant) -> 000000")

    def revoke(self, member: Member) -> None:
        self.store.change_user(member.tenant.tenant_code, member.user.user_name, authorised=False)
        with self._calls_for(member.tenant.tenant_code):
            self.driver.auth_sync(member.tenant, [member.user], flag=CANCEL,
                                  instance_id=self._instance_of(member.tenant))
        self.report(f"{member.tenant.tenant_code}/{member.user.user_name}: authSync flag 3 (cancel) -> 000000")

    def set_enabled(self, member: Member, enabled: bool) -> None:
        self.store.change_user(member.tenant.tenant_code, member.user.user_name, enabled=enabled)
        user = replace(member.user, enabled=enabled)
        where = f"{member.tenant.tenant_code}/{user.user_name}"
        if not user.authorised or user.deleted:
            # The app never had this user (or lost them): KooGallery has nothing to tell it.
            self.report(f"{where}: {'enabled' if enabled else 'disabled'} in the simulator; not authorised for the "
                        "app, so nothing is sent")
            return
        with self._calls_for(member.tenant.tenant_code):
            self.driver.auth_sync(member.tenant, [user], flag=MODIFY, instance_id=self._instance_of(member.tenant))
        self.report(f'{where}: authSync flag 2 enable="{str(enabled).lower()}" -> 000000')

    def delete_user(self, member: Member) -> None:
        tenant, user = member.tenant, member.user
        self.store.change_user(tenant.tenant_code, user.user_name, deleted=True)
        self.store.end_user_sessions(tenant.tenant_code, user.user_name)
        self.store.revoke_user_tokens(tenant.tenant_code, user.user_name)
        with self._calls_for(tenant.tenant_code):
            self.driver.auth_sync(tenant, [user], flag=DELETE, instance_id=self._instance_of(tenant))
        self.report(f"{tenant.tenant_code}/{user.user_name}: authSync flag 0 (delete) -> 000000")

    # --- orders: freeze, release, renew ---------------------------------------------------------------

    def find_instance(self, ref: str) -> InstanceRecord:
        """By instanceId, or by tenant code (that tenant's order). An id the simulator never saw is
        sent as given: the bridge decides whether it exists."""
        records = self.store.instances()
        for record in records:
            if ref == record.instance_id:
                return record
        by_tenant = [r for r in records if r.tenant_code == ref]
        if len(by_tenant) == 1:
            return by_tenant[0]
        return InstanceRecord(ref, "", "", "", "UNKNOWN", None)

    def set_frozen(self, ref: str, frozen: bool) -> InstanceRecord:
        record = self.find_instance(ref)
        with self._calls_for(record.tenant_code):
            self.driver.update_instance_status(record.instance_id, "FREEZE" if frozen else "UNFREEZE")
        return self._record(record, status="FROZEN" if frozen else "ACTIVE",
                            line=f"updateInstanceStatus {'FREEZE' if frozen else 'UNFREEZE'}")

    def release(self, ref: str) -> InstanceRecord:
        record = self.find_instance(ref)
        with self._calls_for(record.tenant_code):
            self.driver.release_instance(record.instance_id)
        return self._record(record, status="RELEASED", line="releaseInstance")

    def renew(self, ref: str, expire_time: str) -> InstanceRecord:
        return self.refresh(ref, "RENEWAL", expire_time)

    def refresh(self, ref: str, scene: str, expire_time: str, *, product_id: str | None = None) -> InstanceRecord:
        """refreshInstance in one of its scenes, with a new order; productId when the period type changed."""
        if scene not in REFRESH_SCENES:
            raise ValueError(f"scene must be one of {', '.join(REFRESH_SCENES)}")
        if not _EXPIRE.fullmatch(expire_time or ""):
            raise ValueError("--expire must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC), e.g. 20301231235959")
        record = self.find_instance(ref)
        order_id = new_order_id()
        with self._calls_for(record.tenant_code):
            self.driver.refresh_instance(record.instance_id, expire_time, order_id=order_id,
                                         order_line_id=f"{order_id}-000001", scene=scene, product_id=product_id)
        return self._record(record, expire_time=expire_time[:14],
                            line=f"refreshInstance {scene} until {expire_time} UTC"
                                 + (f", product {product_id}" if product_id else ""))

    def upgrade(self, ref: str) -> InstanceRecord:
        """upgradeInstance, V2 body: the instance and the new order only (no product fields)."""
        record = self.find_instance(ref)
        order_id = new_order_id()
        with self._calls_for(record.tenant_code):
            self.driver.upgrade_instance(record.instance_id, order_id=order_id)
        return self._record(record, line=f"upgradeInstance to order {order_id}")

    def change_check(self, ref: str, product_info: dict) -> dict:
        """changeInstanceCheck: may the buyer change spec or quantity at renewal? The vendor decides;
        its answer is returned whatever it is (a refusal is a legitimate answer)."""
        record = self.find_instance(ref)
        previous, self.driver.raise_on_error = self.driver.raise_on_error, False
        try:
            with self._calls_for(record.tenant_code):
                answer = self.driver.change_instance_check(record.instance_id, product_info)
        finally:
            self.driver.raise_on_error = previous
        self.report(f"instance {record.instance_id}: changeInstanceCheck {product_info.get('skuCode')}"
                    + (f" x{product_info['linearValue']}" if product_info.get("linearValue") is not None else "")
                    + f" -> {answer.get('resultCode')} {answer.get('resultMsg', '')}")
        return answer

    def _record(self, record: InstanceRecord, *, line: str, **changes) -> InstanceRecord:
        updated = replace(record, **changes)
        if record.tenant_code:
            self.store.record_instance(updated)
        self.report(f"instance {record.instance_id}: {line} -> 000000")
        return updated
