"""The demo world: the app credential, tenants with their OAuth clients, departments, users and
one order each (simulator/seed.json, or SIM_SEED_FILE). Read once at start and never written;
what changes at run time (grants, disabled users, faults, ...) lives in state.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from simulator.i18n import N_

DEFAULT_SEED_FILE = Path(__file__).with_name("seed.json")

_TENANT_ID = re.compile(r"[0-9a-f]{32}")
# tenantCode is a URL path segment here (/t/<tenantCode>): keep it plain.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class SeedError(ValueError):
    """seed.json is missing a field or has a bad value; the message says where."""


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    parent_code: str = ""


@dataclass(frozen=True)
class User:
    user_name: str
    name: str
    password: str
    role: str
    enabled: bool
    org_code: str
    authorised: bool
    email: str | None = None
    mobile: str | None = None
    position: str | None = None
    deleted: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def has_app(self) -> bool:
        """What the enterprise workbench shows the app for."""
        return self.authorised and self.enabled and not self.deleted

    @property
    def demonstrates(self) -> str:
        """What this demo account shows, as a message key (i18n.py), from its state now."""
        if self.deleted:
            return N_("demo.deleted")
        if not self.authorised:
            return N_("demo.not_authorised")
        if not self.enabled:
            return N_("demo.disabled")
        return N_("demo.admin") if self.is_admin else N_("demo.ordinary")


@dataclass(frozen=True)
class Order:
    order_id: str
    order_line_id: str
    business_id: str
    product_id: str | None = None
    sku_code: str | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    tenant_code: str
    name: str
    client_id: str
    client_secret: str
    departments: tuple[Department, ...]
    users: tuple[User, ...]
    order: Order | None = None

    def department(self, code: str | None) -> Department | None:
        return next((d for d in self.departments if d.code == code), None)

    def user(self, user_name: str) -> User | None:
        return next((u for u in self.users if u.user_name == user_name), None)


@dataclass(frozen=True)
class Seed:
    app_id: str
    app_names: dict[str, str]
    tenants: tuple[Tenant, ...] = field(default_factory=tuple)

    def tenant(self, code: str) -> Tenant | None:
        return next((t for t in self.tenants if t.tenant_code == code), None)

    def tenant_by_id(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.tenant_id == tenant_id), None)

    def app_name(self, lang: str) -> str:
        return self.app_names.get(lang) or next(iter(self.app_names.values()))


def _text(obj: dict, name: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise SeedError(f"{where}.{name} is missing")
        return None
    if not isinstance(value, str):
        raise SeedError(f"{where}.{name} must be a string")
    return value


def _user(raw: dict, where: str) -> User:
    enable = _text(raw, "enable", where)
    if enable not in ("true", "false"):
        raise SeedError(f'{where}.enable must be "true" or "false" (a string, as authSync sends it)')
    role = _text(raw, "role", where)
    if role not in ("admin", "user"):
        raise SeedError(f"{where}.role must be admin or user")
    if not isinstance(raw.get("authorised"), bool):
        raise SeedError(f"{where}.authorised must be true or false")
    return User(user_name=_text(raw, "userName", where), name=_text(raw, "name", where),
                password=_text(raw, "password", where), role=role, enabled=enable == "true",
                org_code=_text(raw, "orgCode", where), authorised=raw["authorised"],
                email=_text(raw, "email", where, required=False), mobile=_text(raw, "mobile", where, required=False),
                position=_text(raw, "position", where, required=False))


def _tenant(raw: dict, where: str) -> Tenant:
    tenant_id = _text(raw, "tenantId", where)
    if not _TENANT_ID.fullmatch(tenant_id):
        raise SeedError(f"{where}.tenantId must be 32 lower-case hex characters")
    code = _text(raw, "tenantCode", where)
    if not _CODE.fullmatch(code):
        raise SeedError(f"{where}.tenantCode must be letters, digits, '-' or '_'")
    departments = tuple(Department(_text(d, "orgCode", f"{where}.departments[{i}]"),
                                   _text(d, "orgName", f"{where}.departments[{i}]"),
                                   _text(d, "parentCode", f"{where}.departments[{i}]", required=False) or "")
                        for i, d in enumerate(raw.get("departments") or []))
    codes = {d.code for d in departments}
    for d in departments:
        if d.parent_code and d.parent_code not in codes:
            raise SeedError(f"{where}: department {d.code} has unknown parentCode {d.parent_code}")
    users = tuple(_user(u, f"{where}.users[{i}]") for i, u in enumerate(raw.get("users") or []))
    names = [u.user_name for u in users]
    if len(set(names)) != len(names):
        raise SeedError(f"{where}: userName must be unique within a tenant")
    for u in users:
        if u.org_code not in codes:
            raise SeedError(f"{where}: user {u.user_name} has unknown orgCode {u.org_code}")
    order = None
    if raw.get("order"):
        o, ow = raw["order"], f"{where}.order"
        order = Order(_text(o, "orderId", ow), _text(o, "orderLineId", ow), _text(o, "businessId", ow),
                      _text(o, "productId", ow, required=False), _text(o, "skuCode", ow, required=False))
    return Tenant(tenant_id=tenant_id, tenant_code=code, name=_text(raw, "name", where),
                  client_id=_text(raw, "clientId", where), client_secret=_text(raw, "clientSecret", where),
                  departments=departments, users=users, order=order)


def load_seed(path: str | Path | None = None) -> Seed:
    path = Path(path or DEFAULT_SEED_FILE)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"seed file {path} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise SeedError(f"seed file {path} is not valid JSON: {exc}") from None
    app = raw.get("app") or {}
    names = app.get("name")
    names = names if isinstance(names, dict) else {"zh": names or "App", "en": names or "App"}
    tenants = tuple(_tenant(t, f"tenants[{i}]") for i, t in enumerate(raw.get("tenants") or []))
    if not tenants:
        raise SeedError(f"seed file {path} has no tenants")
    for attr in ("tenant_id", "tenant_code", "client_id"):
        values = [getattr(t, attr) for t in tenants]
        if len(set(values)) != len(values):
            raise SeedError(f"seed file {path}: every tenant needs its own {attr}")
    return Seed(app_id=_text(app, "appId", "app"), app_names=names, tenants=tenants)
