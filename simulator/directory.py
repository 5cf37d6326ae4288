"""The tenants' user directories as they stand now: the seed plus what KooGallery changed since
(state.py). Everything that asks "who is this user, may they sign in, is the app granted to
them" asks here."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, replace

from simulator.seed import Seed, Tenant, User
from simulator.state import Store


class AmbiguousUserError(LookupError):
    """A userName that exists in several tenants, named without a tenant."""


@dataclass(frozen=True)
class Member:
    tenant: Tenant
    user: User


class Directory:
    def __init__(self, seed: Seed, store: Store, public_url: str):
        self.seed, self.store, self.public_url = seed, store, public_url.rstrip("/")

    @property
    def app_id(self) -> str:
        return self.seed.app_id

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        return self.seed.tenants

    def tenant(self, code: str) -> Tenant | None:
        return self.seed.tenant(code)

    def domain_name(self, tenant: Tenant) -> str:
        """The authentication centre's base URL, as tenantSync.domainName carries it (spec §5.1)."""
        return f"{self.public_url}/t/{tenant.tenant_code}"

    def is_bound(self, tenant: Tenant) -> bool:
        """Whether the tenant still has the app bound (not removed by `sim delete-tenant`)."""
        return tenant.tenant_code not in self.store.unbound_tenants()

    def users(self, tenant: Tenant, *, include_deleted: bool = False) -> list[User]:
        changes = self.store.user_changes()
        users = [self._apply(tenant, u, changes) for u in tenant.users]
        return [u for u in users if include_deleted or not u.deleted]

    def user(self, tenant: Tenant, user_name: str) -> User | None:
        """The user as they are now; None when unknown or deleted."""
        seeded = tenant.user(user_name)
        if seeded is None:
            return None
        user = self._apply(tenant, seeded, self.store.user_changes())
        return None if user.deleted else user

    def authenticate(self, tenant: Tenant, user_name: str, password: str) -> User | None:
        """The user if the password is theirs. A disabled or unauthorised user still signs in at the
        authentication centre: refusing them is the app's decision, which is what the demo shows."""
        user = self.user(tenant, (user_name or "").strip())
        if user is None or not hmac.compare_digest(user.password.encode(), (password or "").encode()):
            return None
        return user

    def find(self, user_name: str, tenant_code: str | None = None) -> Member:
        """A user named on the command line: by userName alone when that is unique."""
        tenants = [self.tenant(tenant_code)] if tenant_code else list(self.tenants)
        if tenants == [None]:
            raise LookupError(f"no tenant with code {tenant_code!r}")
        found = [Member(t, u) for t in tenants for u in self.users(t, include_deleted=True)
                 if u.user_name == user_name]
        if not found:
            where = f" in tenant {tenant_code}" if tenant_code else ""
            raise LookupError(f"no user {user_name!r}{where}")
        if len(found) > 1:
            codes = ", ".join(m.tenant.tenant_code for m in found)
            raise AmbiguousUserError(f"{user_name!r} exists in several tenants ({codes}); add --tenant CODE")
        return found[0]

    @staticmethod
    def user_id(tenant: Tenant, user: User) -> str:
        """A stable id for userinfo's `id`/`userId`: the same user always gets the same one."""
        return uuid.uuid5(uuid.UUID(tenant.tenant_id), user.user_name).hex

    @staticmethod
    def _apply(tenant: Tenant, user: User, changes) -> User:
        change = changes.get((tenant.tenant_code, user.user_name))
        if change is None:
            return user
        return replace(user,
                       authorised=user.authorised if change.authorised is None else change.authorised,
                       enabled=user.enabled if change.enabled is None else change.enabled,
                       deleted=change.deleted)
