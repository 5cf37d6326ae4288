"""Who signed in, as the bridge keeps it: the mapper from the centre's userinfo claims and
KooGallery's authSync row to one normalised identity (kept apart from the admission decision)."""

from __future__ import annotations

from dataclasses import dataclass

from tenants import queries
from tenants.models import Tenant, TenantUser


@dataclass(frozen=True)
class Identity:
    tenant_id: str
    tenant_code: str
    tenant_name: str
    user_name: str
    name: str | None
    role: str
    org_code: str | None
    org_name: str | None
    email: str | None
    mobile: str | None
    jit: bool = False


def claim(info: dict, name: str, max_len: int) -> str | None:
    """A text claim, or None when absent, empty or not text."""
    value = info.get(name)
    return str(value)[:max_len] if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def identity_from(tenant: Tenant, user: TenantUser | None, info: dict, *, jit: bool) -> Identity:
    """authSync's word first (KooGallery is the source of truth), the centre's claims where it is silent."""
    user_name = info["userName"].strip()
    org_code = (user.org_code if user else None) or claim(info, "organizationCode", 64)
    org_name = claim(info, "organizationName", 128)
    if org_code and not org_name:
        org_name = queries.department_name(tenant.tenant_id, org_code)
    role = (user.role if user else (claim(info, "role", 32) or "user")).lower()
    return Identity(
        tenant_id=tenant.tenant_id, tenant_code=tenant.tenant_code, tenant_name=tenant.name, user_name=user_name,
        name=(user.name if user and user.name else claim(info, "name", 64)),
        role="admin" if role == "admin" else "user", org_code=org_code, org_name=org_name,
        email=(user.email if user and user.email else claim(info, "email", 128)),
        mobile=(user.mobile if user and user.mobile else claim(info, "mobile", 32)), jit=jit,
    )
