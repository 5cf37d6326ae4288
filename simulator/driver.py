"""KooGallery's calls to a vendor's production address, sent for real over HTTP: the five kit
sync interfaces (spec §5, signed per §3.2) and the basic instance interfaces (§7, signed per
§3.3). Used by `flask sim ...`, `make run` and the end-to-end tests; usable on its own:

    driver = KooGalleryDriver("http://127.0.0.1:5000", kit_access_key=..., basic_access_key=...,
                              bridge_public_key="MIIBojANBgkqh...", app_id="9eef08ffe9e63c84")
    driver.tenant_sync(tenant, "http://127.0.0.1:5001/t/huashan")
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterable

import requests

from simulator.clock import SyncClock
from simulator.seed import Department, Order, Tenant, User
from simulator.signing import basic_query, encrypt_client_secret, kit_headers, load_public_key

DELETE, ADD, MODIFY, CANCEL = 0, 1, 2, 3
MAX_USERS_PER_AUTH_SYNC = 500  # spec §5.3
SUCCESS = "000000"


class SyncCallError(RuntimeError):
    """A call that did not answer resultCode 000000 (or no KooGallery answer at all)."""

    def __init__(self, call: str, message: str, answer: dict | None = None, status: int | None = None):
        super().__init__(f"{call}: {message}")
        self.call, self.answer, self.status = call, answer, status

    @property
    def result_code(self) -> str | None:
        return (self.answer or {}).get("resultCode")


def user_entry(user: User) -> dict:
    """One authSync userList entry (spec §5.3): enable is the string "true"/"false"."""
    entry = {"userName": user.user_name, "name": user.name, "orgCode": user.org_code, "role": user.role,
             "enable": "true" if user.enabled else "false"}
    for key, value in (("position", user.position), ("mobile", user.mobile), ("email", user.email)):
        if value:
            entry[key] = value
    return entry


class KooGalleryDriver:
    def __init__(self, bridge_url: str, *, kit_access_key: str, basic_access_key: str, produce_path: str = "/produce",
                 app_id: str | None = None, bridge_public_key=None, sync_clock: Callable[[], str] | None = None,
                 raise_on_error: bool = True, timeout: float = 15, http: requests.Session | None = None,
                 drops_answers: bool = False):
        self.production_address = bridge_url.rstrip("/") + "/" + produce_path.strip("/")
        self.production_address = self.production_address.rstrip("/")
        self.kit_access_key, self.basic_access_key = kit_access_key, basic_access_key
        self.app_id = app_id
        self._public_key = (load_public_key(bridge_public_key) if isinstance(bridge_public_key, str)
                            else bridge_public_key)
        self.sync_clock = sync_clock or SyncClock()
        self.raise_on_error, self.timeout = raise_on_error, timeout
        self.drops_answers = drops_answers
        self.http = http or requests.Session()

    # --- transport -------------------------------------------------------------------------------

    def send_kit(self, interface: str, body: dict, *, nonce: str | None = None) -> dict:
        """POST {production address}/produceAPI/v2/<interface>, signed in the x-sign headers."""
        url = f"{self.production_address}/produceAPI/v2/{interface}"
        nonce = nonce or secrets.token_hex(32).upper()
        return self._deliver(lambda: self._post(interface, url, body, headers={
            "Content-Type": "application/json", **kit_headers(self.kit_access_key, body, nonce=nonce)}))

    def send_basic(self, body: dict, *, nonce: str | None = None) -> dict:
        """POST {production address}?signature=…&timestamp=…&nonce=…"""
        nonce = nonce or secrets.token_hex(32).upper()
        return self._deliver(lambda: self._post(
            body.get("activity", "basic"), self.production_address, body,
            headers={"Content-Type": "application/json;charset=utf8"},
            params=basic_query(self.basic_access_key, body, nonce=nonce)))

    def _deliver(self, send: Callable[[], dict]) -> dict:
        """One call; with `drops_answers`, the marketplace loses the first answer and re-sends the
        identical call (same nonce and body, fresh timestamp and signature): the second answer counts."""
        if self.drops_answers:
            try:
                send()
            except SyncCallError:
                pass  # lost: whatever it said, only the re-send's answer reaches the marketplace
        return send()

    def _post(self, call: str, url: str, body: dict, *, headers: dict, params: dict | None = None) -> dict:
        # Sent in the order built (not sorted): the receiver must canonicalise, as with KooGallery.
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            response = self.http.post(url, data=raw, headers=headers, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SyncCallError(call, f"no answer from {url}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code != 200:
            raise SyncCallError(call, f"HTTP {response.status_code} from {url} (KooGallery needs 200); "
                                      f"body: {response.text[:200]!r}", status=response.status_code)
        try:
            answer = response.json()
        except ValueError:
            raise SyncCallError(call, f"answer from {url} is not JSON: {response.text[:200]!r}",
                                status=200) from None
        if not isinstance(answer, dict):
            raise SyncCallError(call, f"answer from {url} is not a JSON object", status=200)
        if self.raise_on_error and answer.get("resultCode") != SUCCESS:
            raise SyncCallError(call, f"resultCode {answer.get('resultCode')!r}: {answer.get('resultMsg', '')}",
                                answer=answer, status=200)
        return answer

    def _kit_body(self, tenant: Tenant, instance_id: str, **fields) -> dict:
        return {"instanceId": instance_id, "tenantId": tenant.tenant_id, **fields, "testFlag": 0,
                "timeStamp": self.sync_clock()}

    # --- kit interfaces (spec §5) ------------------------------------------------------------------

    def tenant_sync(self, tenant: Tenant, domain_name: str, *, flag: int = ADD, instance_id: str = "",
                    order_id: str = "") -> dict:
        body = {"instanceId": instance_id, "orderId": order_id, "tenantId": tenant.tenant_id,
                "tenantCode": tenant.tenant_code, "name": tenant.name, "domainName": domain_name, "flag": flag,
                "testFlag": 0, "timeStamp": self.sync_clock()}
        return self.send_kit("tenantSync", body)

    def application_sync(self, tenant: Tenant, *, flag: int = ADD, instance_id: str = "",
                         client_secret: str | None = None) -> dict:
        """clientSecret goes RSA-OAEP encrypted with the bridge's public key (spec §5.2)."""
        if self._public_key is None:
            raise ValueError("applicationSync needs the bridge's public key to encrypt clientSecret with "
                             "(SIM_BRIDGE_PUBLIC_KEY, or KooGalleryDriver(bridge_public_key=...))")
        secret = encrypt_client_secret(client_secret or tenant.client_secret, self._public_key)
        return self.send_kit("applicationSync", self._kit_body(
            tenant, instance_id, appId=self._app_id(), clientId=tenant.client_id, clientSecret=secret, flag=flag))

    def all_org_sync(self, tenant: Tenant, *, instance_id: str = "", departments: Iterable[Department] | None = None,
                     as_string: bool = True) -> dict:
        """The full department list. Sent as a JSON *string*, as Huawei's own example does."""
        orgs = [{"orgCode": d.code, "orgName": d.name, "parentCode": d.parent_code}
                for d in (tenant.departments if departments is None else departments)]
        org_info = json.dumps(orgs, ensure_ascii=False, separators=(",", ":")) if as_string else orgs
        return self.send_kit("allOrgSync", self._kit_body(tenant, instance_id, orgInfoList=org_info, flag=ADD))

    def single_org_sync(self, tenant: Tenant, department: Department, *, flag: int = ADD,
                        instance_id: str = "") -> dict:
        return self.send_kit("singleOrgSync", self._kit_body(
            tenant, instance_id, orgCode=department.code, orgName=department.name,
            parentCode=department.parent_code, flag=flag))

    def auth_sync(self, tenant: Tenant, users: Iterable[User], *, flag: int = ADD, instance_id: str = "") -> dict:
        """flag 1 add, 2 modify, 3 cancel authorisation, 0 delete; batches of at most 500 users.
        Returns the last batch's answer."""
        entries = [user_entry(u) for u in users]
        if not entries:
            raise ValueError("authSync needs at least one user")
        answer: dict = {}
        for start in range(0, len(entries), MAX_USERS_PER_AUTH_SYNC):
            stamp = self.sync_clock()
            body = {"instanceId": instance_id, "tenantId": tenant.tenant_id, "appId": self._app_id(),
                    "userList": entries[start:start + MAX_USERS_PER_AUTH_SYNC], "currentSyncTime": stamp,
                    "flag": flag, "testFlag": 0, "timeStamp": stamp}
            answer = self.send_kit("authSync", body)
        return answer

    def _app_id(self) -> str:
        if not self.app_id:
            raise ValueError("this call needs the appId (KooGalleryDriver(app_id=...))")
        return self.app_id

    # --- basic interfaces (spec §7); production calls carry no testFlag ------------------------------

    def new_instance(self, order: Order, *, business_id: str | None = None) -> dict:
        """Answer has instanceId: the first call's businessId. A repeat (same order line) gets the
        same instance back, whatever businessId it carries."""
        body = {"activity": "newInstance", "businessId": business_id or order.business_id, "orderId": order.order_id,
                "orderLineId": order.order_line_id}
        if order.product_id:
            body["productId"] = order.product_id
        if order.sku_code:
            body["skuCode"] = order.sku_code
        return self.send_basic(body)

    def query_instance(self, instance_ids: Iterable[str]) -> dict:
        return self.send_basic({"activity": "queryInstance", "instanceId": ",".join(instance_ids)})

    def refresh_instance(self, instance_id: str, expire_time: str, *, order_id: str, order_line_id: str,
                         scene: str = "RENEWAL", product_id: str | None = None) -> dict:
        """expire_time is yyyyMMddHHmmss (UTC)."""
        body = {"activity": "refreshInstance", "instanceId": instance_id, "orderId": order_id,
                "orderLineId": order_line_id, "scene": scene, "expireTime": expire_time}
        if product_id:
            body["productId"] = product_id
        return self.send_basic(body)

    def update_instance_status(self, instance_id: str, status: str) -> dict:
        if status not in ("FREEZE", "UNFREEZE"):
            raise ValueError("status must be FREEZE or UNFREEZE")
        return self.send_basic({"activity": "updateInstanceStatus", "instanceId": instance_id, "status": status})

    def release_instance(self, instance_id: str, *, order_id: str | None = None,
                         order_line_id: str | None = None) -> dict:
        body = {"activity": "releaseInstance", "instanceId": instance_id}
        if order_id:
            body.update(orderId=order_id, orderLineId=order_line_id or f"{order_id}-000001")
        return self.send_basic(body)

    def upgrade_instance(self, instance_id: str, *, order_id: str, order_line_id: str | None = None,
                         product_id: str | None = None, sku_code: str | None = None) -> dict:
        body = {"activity": "upgradeInstance", "instanceId": instance_id, "orderId": order_id,
                "orderLineId": order_line_id or f"{order_id}-000001"}
        if product_id:
            body["productId"] = product_id
        if sku_code:
            body["skuCode"] = sku_code
        return self.send_basic(body)


    def change_instance_check(self, instance_id: str, product_info: dict) -> dict:
        """productInfo: productId, skuCode, productName, and linearValue (the quantity) when the product has one."""
        return self.send_basic({"activity": "changeInstanceCheck", "instanceId": instance_id,
                                "productInfo": product_info})


def new_order_id(prefix: str = "CS") -> str:
    """A KooGallery-looking order id for renewals and upgrades (CS + 15 upper-case characters)."""
    return prefix + uuid.uuid4().hex[:15].upper()
