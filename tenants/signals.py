"""What other packages may react to, without `tenants` knowing them (sso ends sessions here).

Sent inside the sync call's transaction, so a reaction commits or rolls back with the change."""

from blinker import Namespace

_signals = Namespace()

# sender: the tenants blueprint name; kwargs: tenant_id, user_names (a list, or None for every
# user of the tenant), reason (a short machine word: user_revoked, user_disabled, user_deleted,
# tenant_deleted, instance_frozen, instance_released, instance_expired).
access_revoked = _signals.signal("access-revoked")


def revoke_access(tenant_id: str, user_names: list[str] | None, reason: str) -> None:
    access_revoked.send("tenants", tenant_id=tenant_id, user_names=user_names, reason=reason)
