"""What KooGallery does when the seller, a buyer or a buyer's admin acts. Each operation first
records the change in the simulator (KooGallery's own view changes whether or not the vendor
answers), then sends the signed calls a real KooGallery would send to the bridge."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import replace

from simulator.directory import Directory, Member
from simulator.driver import ADD, CANCEL, DELETE, MODIFY, KooGalleryDriver, new_order_id
from simulator.seed import Tenant
from simulator.state import InstanceRecord, Store

_EXPIRE = re.compile(r"\d{14}")


class Marketplace:
    def __init__(self, directory: Directory, store: Store, driver: KooGalleryDriver,
                 report: Callable[[str], None] = lambda line: None):
        self.directory, self.store, self.driver, self.report = directory, store, driver, report

    def _instance_of(self, tenant: Tenant) -> str:
        """The tenant's order instance, which kit calls after the purchase carry ("" before)."""
        return next((i.instance_id for i in self.store.instances() if i.tenant_code == tenant.tenant_code), "")

    # --- binding: seller credential flow, then a buyer order per tenant ------------------------------

    def sync_everything(self) -> list[InstanceRecord]:
        d = self.directory
        for tenant in d.tenants:
            domain = d.domain_name(tenant)
            self.driver.tenant_sync(tenant, domain)
            self.driver.application_sync(tenant)
            self.driver.all_org_sync(tenant)
            granted = [u for u in d.users(tenant) if u.authorised]
            if granted:
                self.driver.auth_sync(tenant, granted)
            self.store.set_tenant_bound(tenant.tenant_code, True)
            self.report(f"{tenant.tenant_code}: tenantSync, applicationSync, allOrgSync "
                        f"({len(tenant.departments)} departments), authSync ({len(granted)} users) -> 000000")
        records = []
        known = {i.order_id: i for i in self.store.instances()}
        for tenant in d.tenants:
            order = tenant.order
            if order is None:
                continue
            # KooGallery sends a new businessId on every call; the first one became the instance id.
            business_id = str(uuid.uuid4()) if order.order_id in known else order.business_id
            instance_id = self.driver.new_instance(order, business_id=business_id)["instanceId"]
            self.driver.tenant_sync(tenant, d.domain_name(tenant), instance_id=instance_id, order_id=order.order_id)
            previous = known.get(order.order_id)
            record = InstanceRecord(instance_id, tenant.tenant_code, order.order_id, order.order_line_id,
                                    previous.status if previous else "ACTIVE",
                                    previous.expire_time if previous else None)
            self.store.record_instance(record)
            records.append(record)
            self.report(f"{tenant.tenant_code}: newInstance {order.order_id} -> instance {instance_id}; "
                        "tenantSync with it -> 000000")
        return records

    def delete_tenant(self, tenant: Tenant) -> None:
        """The buyer unbinds the app: tenantSync flag 0 for each order that bound it."""
        self.store.set_tenant_bound(tenant.tenant_code, False)
        instances = [i for i in self.store.instances() if i.tenant_code == tenant.tenant_code] or [None]
        for record in instances:
            self.driver.tenant_sync(tenant, self.directory.domain_name(tenant), flag=DELETE,
                                    instance_id=record.instance_id if record else "",
                                    order_id=record.order_id if record else "")
        self.report(f"{tenant.tenant_code}: tenantSync flag 0 -> 000000")

    # --- users: the enterprise admin grants, revokes, disables, deletes -------------------------------

    def grant(self, member: Member) -> None:
        self.store.change_user(member.tenant.tenant_code, member.user.user_name, authorised=True)
        user = replace(member.user, authorised=True)
        self.driver.auth_sync(member.tenant, [user], flag=ADD, instance_id=self._instance_of(member.tenant))
        self.report(f"{member.tenant.tenant_code}/{user.user_name}: authSync flag 1 (grant) -> 000000")

    def revoke(self, member: Member) -> None:
        self.store.change_user(member.tenant.tenant_code, member.user.user_name, authorised=False)
        self.driver.auth_sync(member.tenant, [member.user], flag=CANCEL, instance_id=self._instance_of(member.tenant))
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
        self.driver.auth_sync(member.tenant, [user], flag=MODIFY, instance_id=self._instance_of(member.tenant))
        self.report(f'{where}: authSync flag 2 enable="{str(enabled).lower()}" -> 000000')

    def delete_user(self, member: Member) -> None:
        tenant, user = member.tenant, member.user
        self.store.change_user(tenant.tenant_code, user.user_name, deleted=True)
        self.store.end_user_sessions(tenant.tenant_code, user.user_name)
        self.store.revoke_user_tokens(tenant.tenant_code, user.user_name)
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
        self.driver.update_instance_status(record.instance_id, "FREEZE" if frozen else "UNFREEZE")
        return self._record(record, status="FROZEN" if frozen else "ACTIVE",
                            line=f"updateInstanceStatus {'FREEZE' if frozen else 'UNFREEZE'}")

    def release(self, ref: str) -> InstanceRecord:
        record = self.find_instance(ref)
        self.driver.release_instance(record.instance_id)
        return self._record(record, status="RELEASED", line="releaseInstance")

    def renew(self, ref: str, expire_time: str) -> InstanceRecord:
        if not _EXPIRE.fullmatch(expire_time or ""):
            raise ValueError("--expire must be yyyyMMddHHmmss (UTC), e.g. 20301231235959")
        record = self.find_instance(ref)
        order_id = new_order_id()
        self.driver.refresh_instance(record.instance_id, expire_time, order_id=order_id,
                                     order_line_id=f"{order_id}-000001", scene="RENEWAL")
        return self._record(record, expire_time=expire_time, line=f"refreshInstance RENEWAL until {expire_time} UTC")

    def _record(self, record: InstanceRecord, *, line: str, **changes) -> InstanceRecord:
        updated = replace(record, **changes)
        if record.tenant_code:
            self.store.record_instance(updated)
        self.report(f"instance {record.instance_id}: {line} -> 000000")
        return updated
